"""Claude Code's normalizer on real log lines: streaming duplicates, subagents, sidechain replays, nested usage, compaction, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import (
    CLAUDE_API_ERROR,
    CLAUDE_COMPACT,
    CLAUDE_MAIN,
    CLAUDE_SESSION,
    CLAUDE_SUB,
    dumps,
    feed_all,
    line,
    make_engine,
    real_lines,
    write_lines,
)

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine
from tokwatch.core.store import Store
from tokwatch.ingest.setup import make_pricer

CLAUDE = get_agent("claude")
CODEX = get_agent("codex")
GEMINI = get_agent("gemini")
KEY = ("claude", CLAUDE_SESSION)


def test_claude_streaming_duplicates_keep_largest() -> None:
    # Lines 21, 22, 23, 27, 31: one response (msg_01Aci…, req_011CY4Td…) written as five lines.
    lines = [line(CLAUDE_MAIN, n) for n in (21, 22, 23, 27, 31)]
    turns = feed_all(CLAUDE.parser(CLAUDE_MAIN), lines)
    assert [t.output for t in turns] == [10, 10, 10, 10, 299]
    assert len({t.turn_id for t in turns}) == 1
    for order in (turns, list(reversed(turns))):  # keep the largest, not the first nor the last
        store = Store(make_pricer())
        changes = [store.apply([t]) for t in order]
        s = store.sessions[KEY]
        assert s.totals.turns == 1
        assert s.totals.output == 299
        assert s.totals.cache_read == 29509  # not 5 x 29509
        assert s.totals.cache_write == 5601
        assert s.totals.input == 1
        assert s.context_used == 1 + 5601 + 29509
        (kept,) = store.turns_of(KEY)
        assert kept.output == 299
        # a placeholder copy after the real one changes nothing and is not reported
        if order[0].output == 299:
            assert not any(changes[1:])
    # in log order, the first copy's time is the turn's time
    store = Store(make_pricer())
    store.apply(turns)
    assert store.turns_of(KEY)[0].timestamp == turns[0].timestamp
    assert store.sessions[KEY].first_seen == turns[0].timestamp


def test_claude_streaming_duplicates_over_the_whole_file() -> None:
    turns = feed_all(CLAUDE.parser(CLAUDE_MAIN), real_lines(CLAUDE_MAIN))
    assert len(turns) == 12  # assistant lines in the excerpt
    store = Store(make_pricer())
    store.apply(turns)
    s = store.sessions[KEY]
    assert s.totals.turns == 5
    assert s.totals.output == 9 + 299 + 1 + 9 + 88
    assert s.totals.cache_read == 11442 + 29509 + 163346 + 21478 + 21478


def test_claude_subagent_turns_belong_to_parent_without_moving_gauge() -> None:
    sub_turns = feed_all(CLAUDE.parser(CLAUDE_SUB), real_lines(CLAUDE_SUB))
    assert sub_turns
    assert {t.session_id for t in sub_turns} == {CLAUDE_SESSION}
    assert all(t.sidechain for t in sub_turns)
    assert {t.model for t in sub_turns} == {"claude-sonnet-4-5-20250929"}
    main_first = CLAUDE.parser(CLAUDE_MAIN).feed(line(CLAUDE_MAIN, 8))
    store = Store(make_pricer())
    store.apply(main_first)  # 16:02:27, prompt 3 + 15005 + 11442
    store.apply(sub_turns)  # 16:02:50 .. 16:02:58: later, but sidechain
    s = store.sessions[KEY]
    assert s.context_used == 26450
    assert s.context_model == "claude-opus-4-6"
    assert s.max_context == 26450
    assert s.by_model["claude-sonnet-4-5-20250929"].turns == 2
    assert s.by_model["claude-sonnet-4-5-20250929"].total == 38623
    assert s.totals.turns == 3
    assert s.project == "/home/USER/projects/spotter-worktrees/spotter-dov"


def test_claude_subagent_file_without_session_id_falls_back_to_parent_folder(tmp_path: Path) -> None:
    d = json.loads(line(CLAUDE_SUB, 23))
    del d["sessionId"]
    path = tmp_path / "projects" / "-p" / "parent-sess" / "subagents" / "agent-x.jsonl"
    (t,) = CLAUDE.parser(path).feed(dumps(d))
    assert t.session_id == "parent-sess"
    assert t.sidechain


def test_claude_sidechain_replay_of_a_parent_message_counts_once() -> None:
    main = line(CLAUDE_MAIN, 42)
    replay = json.loads(main)
    replay["isSidechain"] = True
    replay["timestamp"] = "2026-02-12T21:03:31.000Z"
    parser = CLAUDE.parser(CLAUDE_MAIN)
    store = Store(make_pricer())
    store.apply(parser.feed(main))
    store.apply(parser.feed(dumps(replay)))
    s = store.sessions[KEY]
    assert s.totals.turns == 1
    assert s.totals.total == 3 + 77251 + 21478 + 88
    assert not store.turns_of(KEY)[0].sidechain
    assert s.context_used == 98732


def test_claude_nested_progress_and_tool_result_usage_not_counted() -> None:
    parser = CLAUDE.parser(CLAUDE_MAIN)
    progress = line(CLAUDE_MAIN, 19)  # embeds the subagent's msg_016x… with its usage
    assert b'"usage"' in progress and b'"type":"progress"' in progress
    assert parser.feed(progress) == []
    tool_result = line(CLAUDE_MAIN, 20)  # toolUseResult.usage / totalTokens 76365
    assert json.loads(tool_result)["toolUseResult"]["totalTokens"] == 76365
    assert parser.feed(tool_result) == []
    ids = {t.turn_id.split(":")[0] for t in feed_all(CLAUDE.parser(CLAUDE_MAIN), real_lines(CLAUDE_MAIN))}
    assert "msg_016xcKQRzQXv2gLKoiSyUZxc" not in ids  # only counted from the subagent's own file
    assert ids == {
        "msg_01PdWvcjJ6E9BgscDveYt9YV",
        "msg_01Aci2WjhVxhEoZK5GJvwVrD",
        "msg_01YDBjrSefBazorPPwZ73AgR",
        "msg_01MCP4jmhxhddhtDDbhCqRq8",
        "msg_01NvVN4PVKoD4wgRrBm3Vwyj",
    }


def test_claude_synthetic_api_error_is_not_a_turn() -> None:
    raw = CLAUDE_API_ERROR.read_bytes().strip()
    assert b'"<synthetic>"' in raw and b'"isApiErrorMessage":true' in raw
    assert CLAUDE.parser(CLAUDE_API_ERROR).feed(raw) == []
    engine = make_engine(CLAUDE_API_ERROR)
    engine.backfill()
    assert engine.store.sessions == {}
    assert engine.skips.lines == 0
    assert CLAUDE_API_ERROR in engine.files  # recognised as a Claude log, just nothing billed


def test_claude_compaction_gauge_falls_totals_do_not() -> None:
    parser = CLAUDE.parser(CLAUDE_MAIN)
    store = Store(make_pricer())
    lines = real_lines(CLAUDE_MAIN)
    for raw in lines[:38]:
        store.apply(parser.feed(raw))
    assert store.sessions[KEY].context_used == 164831
    # the compaction call is a sidechain in its own file: does not move the gauge
    store.apply(feed_all(CLAUDE.parser(CLAUDE_COMPACT), real_lines(CLAUDE_COMPACT)))
    assert store.sessions[KEY].context_used == 164831
    total_before = store.sessions[KEY].totals.total
    boundary, summary = lines[38], lines[39]
    assert json.loads(boundary)["subtype"] == "compact_boundary"
    assert json.loads(summary)["isCompactSummary"] is True
    assert parser.feed(boundary) == [] and parser.feed(summary) == []
    store.apply(parser.feed(lines[40]))
    assert store.sessions[KEY].context_used == 36081
    assert store.sessions[KEY].totals.total > total_before
    store.apply(parser.feed(lines[41]))
    assert store.sessions[KEY].context_used == 98732


def test_claude_one_hour_cache_write_is_kept_apart() -> None:
    d = json.loads(line(CLAUDE_MAIN, 42))
    d["message"]["usage"]["cache_creation"] = {
        "ephemeral_1h_input_tokens": 70000,
        "ephemeral_5m_input_tokens": 7251,
    }
    (t,) = CLAUDE.parser(CLAUDE_MAIN).feed(dumps(d))
    assert t.cache_write == 77251
    assert t.cache_write_1h == 70000


# ---------------------------------------------------------------------------------------------- Codex


def _bad_claude_lines() -> list[bytes]:
    good = json.loads(line(CLAUDE_MAIN, 42))
    wrong_type = json.loads(line(CLAUDE_MAIN, 42))
    wrong_type["message"]["id"] = "msg_bad1"
    wrong_type["message"]["usage"]["output_tokens"] = "88"
    negative = json.loads(line(CLAUDE_MAIN, 42))
    negative["message"]["id"] = "msg_bad2"
    negative["message"]["usage"]["cache_read_input_tokens"] = -5
    usage_list = json.loads(line(CLAUDE_MAIN, 42))
    usage_list["message"]["id"] = "msg_bad3"
    usage_list["message"]["usage"] = [1, 2]
    boolean = json.loads(line(CLAUDE_MAIN, 42))
    boolean["message"]["id"] = "msg_bad4"
    boolean["message"]["usage"]["input_tokens"] = True
    assert good
    return [
        line(CLAUDE_MAIN, 42)[:-40],  # torn: not JSON, but has the "assistant" needle
        dumps(wrong_type),
        dumps(negative),
        dumps(usage_list),
        dumps(boolean),
        b'["assistant"]',  # JSON, not an object
    ]


@pytest.mark.parametrize("index", range(6))
def test_claude_malformed_line_raises_badline(index: int) -> None:
    bad = _bad_claude_lines()[index]
    with pytest.raises(BadLine):
        CLAUDE.parser(CLAUDE_MAIN).feed(bad)


def test_claude_malformed_lines_skipped_and_counted_by_engine(tmp_path: Path) -> None:
    path = tmp_path / "projects" / "-p" / f"{CLAUDE_SESSION}.jsonl"
    bad = _bad_claude_lines()
    write_lines(
        path, [line(CLAUDE_MAIN, 8), *bad, line(CLAUDE_MAIN, 41), b"not json at all", line(CLAUDE_MAIN, 42)]
    )
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.skips.lines == len(bad) + 1  # + the needle-less "not json at all"
    assert engine.skips.by_file == {path: len(bad) + 1}
    assert engine.skips.files == 1
    s = engine.store.sessions[KEY]
    assert s.totals.turns == 3
    assert s.totals.total == (3 + 15005 + 11442 + 9) + (3 + 14600 + 21478 + 9) + (3 + 77251 + 21478 + 88)
