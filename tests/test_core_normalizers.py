"""One test per log-format trap (docs/log-formats.md), on real lines taken from the fixtures."""

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
    CODEX_8BFE,
    CODEX_EXCERPT,
    GEMINI_POMODORO,
    GEMINI_PRO,
    GEMINI_RUN4,
    feed_all,
    gemini_messages,
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


def _dumps(d: object) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- Claude


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
    (t,) = CLAUDE.parser(path).feed(_dumps(d))
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
    store.apply(parser.feed(_dumps(replay)))
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
    (t,) = CLAUDE.parser(CLAUDE_MAIN).feed(_dumps(d))
    assert t.cache_write == 77251
    assert t.cache_write_1h == 70000


# ---------------------------------------------------------------------------------------------- Codex


def test_codex_reemitted_token_count_counted_once() -> None:
    parser = CODEX.parser(CODEX_8BFE)
    feed_all(parser, [line(CODEX_8BFE, n) for n in range(1, 18)])
    first = parser.feed(line(CODEX_8BFE, 18))
    again = line(CODEX_8BFE, 21)  # the same event re-emitted 1.7 s later
    assert (
        json.loads(again)["payload"]["info"]["total_token_usage"]
        == (json.loads(line(CODEX_8BFE, 18))["payload"]["info"]["total_token_usage"])
    )
    assert len(first) == 1
    assert parser.feed(again) == []
    turns = feed_all(CODEX.parser(CODEX_8BFE), real_lines(CODEX_8BFE))
    assert len(turns) == 6
    assert len({t.turn_id for t in turns}) == 6
    assert sum(t.total for t in turns) == 299496


def test_codex_info_null_is_ignored() -> None:
    parser = CODEX.parser(CODEX_8BFE)
    null_event = line(CODEX_8BFE, 12)
    assert json.loads(null_event)["payload"]["info"] is None
    assert parser.feed(null_event) == []
    assert len(parser.feed(line(CODEX_8BFE, 18))) == 1  # the first real event still counts


def test_codex_model_comes_from_turn_context() -> None:
    parser = CODEX.parser(CODEX_8BFE)
    meta = line(CODEX_8BFE, 1)
    assert "model" not in json.loads(meta)["payload"]
    parser.feed(meta)
    (t,) = parser.feed(line(CODEX_8BFE, 18))
    assert t.model == "unknown"  # session_meta names no model; no turn_context seen yet
    assert t.session_id == "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"
    parser = CODEX.parser(CODEX_8BFE)
    feed_all(parser, [line(CODEX_8BFE, n) for n in (1, 11)])
    (t,) = parser.feed(line(CODEX_8BFE, 18))
    assert t.model == "gpt-5.3-codex"
    # a later turn_context switches the model for the following events only
    ctx = json.loads(line(CODEX_8BFE, 20))
    ctx["payload"]["model"] = "gpt-5.2-codex"
    parser.feed(_dumps(ctx))
    (t2,) = parser.feed(line(CODEX_8BFE, 27))
    assert t2.model == "gpt-5.2-codex"
    assert t.model == "gpt-5.3-codex"


def test_codex_inclusive_input_is_normalized() -> None:
    parser = CODEX.parser(CODEX_8BFE)
    feed_all(parser, [line(CODEX_8BFE, n) for n in (1, 11)])
    (t,) = parser.feed(line(CODEX_8BFE, 18))
    # last_token_usage: input 42772 (3456 of them cached), output 204 (124 of them reasoning)
    assert (t.input, t.cache_read, t.cache_write, t.output, t.reasoning) == (39316, 3456, 0, 204, 124)
    assert t.context == 42772
    assert t.total == 42976  # = the event's own total_tokens
    assert t.context_window == 258400
    assert t.project == "/redacted/path/ea96e59ed9"


def test_codex_cache_write_input_tokens_is_inside_input() -> None:
    d = json.loads(line(CODEX_8BFE, 18))
    d["payload"]["info"]["last_token_usage"]["cache_write_input_tokens"] = 1000
    (t,) = CODEX.parser(CODEX_8BFE).feed(_dumps(d))
    assert (t.input, t.cache_read, t.cache_write) == (42772 - 3456 - 1000, 3456, 1000)
    assert t.context == 42772


def test_codex_all_zero_last_usage_after_compaction_adds_nothing() -> None:
    zero = line(CODEX_EXCERPT, 49)
    info = json.loads(zero)["payload"]["info"]
    assert info["last_token_usage"]["total_tokens"] == 940499
    assert not any(v for k, v in info["last_token_usage"].items() if k != "total_tokens")
    assert CODEX.parser(CODEX_EXCERPT).feed(zero) == []  # even as a "new" event
    assert CODEX.parser(CODEX_EXCERPT).feed(line(CODEX_EXCERPT, 53)) == []
    turns = feed_all(CODEX.parser(CODEX_EXCERPT), real_lines(CODEX_EXCERPT))
    assert [t.total for t in turns] == [17438, 19142, 209879, 212134, 48687]
    # the cumulative total jumps from 36580 to 22333715 across the excerpt's gap: the turn is
    # still last_token_usage (209879), never a difference of totals
    assert turns[2].timestamp > turns[1].timestamp
    store = Store(make_pricer())
    store.apply(turns)
    s = store.sessions[("codex", "019c8a59-e9dd-71f0-9ae3-4079fe9726a9")]
    assert s.totals.total == 507280
    assert s.context_used == 48297  # after compaction the gauge falls to the new prompt


# --------------------------------------------------------------------------------------------- Gemini


def _gemini_doc(messages: list[dict], session: str = "s-gem") -> bytes:
    return _dumps({"sessionId": session, "projectHash": "ph", "messages": messages})


def _message(path: Path, mid: str) -> dict:
    return next(m for m in gemini_messages(path) if m["id"] == mid)


def test_gemini_cached_is_inside_input_and_thoughts_outside_output() -> None:
    m = _message(GEMINI_PRO, "cb6c25d7-5aba-4934-a461-fb184d56de43")
    assert m["tokens"] == {
        "input": 8868,
        "output": 17,
        "cached": 5736,
        "thoughts": 255,
        "tool": 0,
        "total": 9140,
    }
    (t,) = GEMINI.parser(GEMINI_PRO).parse_document(_gemini_doc([m]))
    assert (t.input, t.cache_read, t.cache_write) == (8868 - 5736, 5736, 0)
    assert t.output == 17 + 255  # thoughts billed as output
    assert t.reasoning == 255
    assert t.context == 8868
    assert t.total == m["tokens"]["total"]
    assert t.model == "gemini-3.1-pro-preview"


def test_gemini_tool_tokens_are_prompt_tokens() -> None:
    m = _message(GEMINI_PRO, "cb6c25d7-5aba-4934-a461-fb184d56de43")
    m["tokens"]["tool"] = 500
    m["tokens"]["total"] += 500
    (t,) = GEMINI.parser(GEMINI_PRO).parse_document(_gemini_doc([m]))
    assert t.input == 8868 - 5736 + 500
    assert t.cache_read == 5736
    assert t.context == 8868 + 500
    assert t.total == m["tokens"]["total"]


def test_gemini_all_zero_messages_skipped() -> None:
    zero_first = "e5679916-ec14-4bec-a6a3-53cf2b0e601b"
    assert not any(_message(GEMINI_POMODORO, zero_first)["tokens"].values())
    turns = GEMINI.parser(GEMINI_POMODORO).parse_document(GEMINI_POMODORO.read_bytes())
    assert zero_first not in {t.turn_id for t in turns}
    assert len(turns) == 13
    zero_last = "6f3010d4-1b55-4b40-be54-a6a8231fecdb"
    turns = GEMINI.parser(GEMINI_RUN4).parse_document(GEMINI_RUN4.read_bytes())
    assert zero_last not in {t.turn_id for t in turns}
    assert turns[-1].context == 14522


def test_gemini_json_document_session_and_project() -> None:
    turns = GEMINI.parser(GEMINI_PRO).parse_document(GEMINI_PRO.read_bytes())
    assert {t.session_id for t in turns} == {"b36c9e17-99f8-4acf-b1b3-cef1081a98f6"}
    assert {t.project for t in turns} == {"4aa4775945ced8117110c7783b5623297e21836cf04a6e1dba9fbfeecfc7fcc1"}
    assert not any(t.sidechain for t in turns)
    assert sum(t.total for t in turns) == 934358


# ------------------------------------------------------------------------------ Gemini JSONL (v0.39+)


def _gem_record(mid: str, ts: str, *, inp: int, out: int, cached: int = 0, thoughts: int = 0) -> bytes:
    return _dumps(
        {
            "id": mid,
            "timestamp": ts,
            "type": "gemini",
            "content": "[redacted]",
            "model": "gemini-2.5-pro",
            "tokens": {
                "input": inp,
                "output": out,
                "cached": cached,
                "thoughts": thoughts,
                "tool": 0,
                "total": inp + out + thoughts,
            },
        }
    )


def _gem_meta(session: str) -> bytes:
    return _dumps(
        {
            "sessionId": session,
            "projectHash": "2d33ff9193c39ffa4b8352af23f3b106d1ceaff756665e12408cb64657965d22",
            "startTime": "2026-04-01T10:00:00.000Z",
            "lastUpdated": "2026-04-01T10:00:00.000Z",
            "kind": "main",
        }
    )


def _gem_user(mid: str, ts: str) -> bytes:
    return _dumps({"id": mid, "timestamp": ts, "type": "user", "content": [{"text": "[redacted]"}]})


PARENT = "11111111-2222-3333-4444-555555555555"


def _gemini_jsonl_home(tmp_path: Path) -> tuple[Path, Path, Path]:
    chats = tmp_path / ".gemini" / "tmp" / "myproj" / "chats"
    main = chats / "session-2026-04-01T10-00-11111111.jsonl"
    write_lines(
        main,
        [
            _gem_meta(PARENT),
            _gem_user("u1", "2026-04-01T10:00:01.000Z"),
            # g1 first appended while streaming, then re-appended with its final numbers
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=5),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=6000, thoughts=100),
            _gem_record("g2", "2026-04-01T10:00:10.000Z", inp=12000, out=300, cached=8000, thoughts=50),
            _dumps({"$rewindTo": "g2"}),  # g2 leaves the conversation, its request was billed
            _dumps({"$set": {"lastUpdated": "2026-04-01T10:00:20.000Z", "summary": "[redacted]"}}),
            _gem_user("u2", "2026-04-01T10:00:21.000Z"),
            _gem_record("g3", "2026-04-01T10:00:22.000Z", inp=9500, out=20, cached=9000),
        ],
    )
    sub = chats / PARENT / "sub-aaaa.jsonl"
    write_lines(
        sub,
        [
            _gem_meta("99999999-0000-0000-0000-000000000000"),
            _gem_record("s1", "2026-04-01T10:00:30.000Z", inp=50000, out=700, cached=1000),
        ],
    )
    return tmp_path / ".gemini" / "tmp", main, sub


def test_gemini_jsonl_parser_records() -> None:
    path = Path("/h/.gemini/tmp/myproj/chats/session-x.jsonl")
    parser = GEMINI.parser(path)
    assert parser.feed(_gem_meta(PARENT)) == []
    assert parser.feed(_gem_user("u1", "2026-04-01T10:00:01.000Z")) == []
    (t,) = parser.feed(
        _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=6000, thoughts=100)
    )
    assert t.session_id == PARENT
    assert t.project == "myproj"
    assert (t.input, t.cache_read, t.output, t.reasoning) == (3000, 6000, 140, 100)
    assert parser.feed(_dumps({"$rewindTo": "g1"})) == []
    assert parser.feed(_dumps({"$set": {"lastUpdated": "2026-04-01T10:00:20.000Z"}})) == []


def test_gemini_jsonl_last_copy_wins_rewind_keeps_billed_turns_and_subagent(tmp_path: Path) -> None:
    root, main, sub = _gemini_jsonl_home(tmp_path)
    engine = make_engine(root)
    engine.backfill()
    assert engine.skips.lines == 0
    assert set(engine.files) == {main, sub}
    assert list(engine.store.sessions) == [("gemini", PARENT)]  # the subagent is billed to its parent
    s = engine.store.sessions[("gemini", PARENT)]
    by_id = {t.turn_id: t for t in engine.store.turns_of(s.key)}
    assert set(by_id) == {"g1", "g2", "g3", "s1"}  # g2 was rewound away but stays billed
    g1 = by_id["g1"]
    assert (g1.input, g1.cache_read, g1.output) == (3000, 6000, 140)  # the last copy, not the first
    assert by_id["s1"].sidechain
    assert s.totals.turns == 4
    assert s.totals.input == 3000 + 4000 + 500 + 49000
    assert s.totals.cache_read == 6000 + 8000 + 9000 + 1000
    assert s.totals.output == 140 + 350 + 20 + 700
    assert s.totals.reasoning == 150
    # the gauge follows the main chain: g3 (9500), not the later subagent request (50000)
    assert s.context_used == 9500
    assert s.max_context == 12000
    assert s.context_window == 1_048_576
    assert s.project == "myproj"


def test_gemini_jsonl_reappended_smaller_copy_replaces(tmp_path: Path) -> None:
    """Last copy wins even when it is smaller (unlike Claude's max-merge)."""
    chats = tmp_path / ".gemini" / "tmp" / "p" / "chats"
    f = chats / "session-a.jsonl"
    write_lines(
        f,
        [
            _gem_meta("sess-a"),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=500),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=8000),
        ],
    )
    engine = make_engine(tmp_path / ".gemini" / "tmp")
    engine.backfill()
    s = engine.store.sessions[("gemini", "sess-a")]
    assert (s.totals.turns, s.totals.input, s.totals.cache_read, s.totals.output) == (1, 1000, 8000, 40)


# ------------------------------------------------------------------------------------ malformed lines


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
        _dumps(wrong_type),
        _dumps(negative),
        _dumps(usage_list),
        _dumps(boolean),
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


def test_codex_malformed_lines_skipped_and_counted(tmp_path: Path) -> None:
    lines = real_lines(CODEX_8BFE)
    negative = json.loads(line(CODEX_8BFE, 27))
    negative["payload"]["info"]["total_token_usage"]["input_tokens"] = 1  # a distinct event…
    negative["payload"]["info"]["last_token_usage"]["output_tokens"] = -1  # …with a negative count
    info_list = json.loads(line(CODEX_8BFE, 27))
    info_list["payload"]["info"] = [1]
    string_count = json.loads(line(CODEX_8BFE, 27))
    string_count["payload"]["info"]["total_token_usage"]["total_tokens"] = "87290"
    bad = [
        b'{"type":"event_msg","payload":{"type":"token_count"',
        _dumps(negative),
        _dumps(info_list),
        _dumps(string_count),
    ]
    parser = CODEX.parser(CODEX_8BFE)
    for b in bad:
        with pytest.raises(BadLine):
            parser.feed(b)
    path = tmp_path / "sessions" / "2026" / "02" / "23" / CODEX_8BFE.name
    write_lines(path, [*lines[:25], *bad, *lines[25:]])
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.skips.lines == len(bad)
    s = engine.store.sessions[("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff")]
    assert s.totals.turns == 6
    assert s.totals.total == 299496


def test_gemini_malformed_jsonl_records_skipped_and_counted(tmp_path: Path) -> None:
    chats = tmp_path / ".gemini" / "tmp" / "p" / "chats"
    f = chats / "session-b.jsonl"
    neg = json.loads(_gem_record("g2", "2026-04-01T10:00:03.000Z", inp=100, out=1))
    neg["tokens"]["thoughts"] = -3
    no_id = json.loads(_gem_record("g3", "2026-04-01T10:00:04.000Z", inp=100, out=1))
    del no_id["id"]
    tokens_str = json.loads(_gem_record("g4", "2026-04-01T10:00:05.000Z", inp=100, out=1))
    tokens_str["tokens"] = "lots"
    bad = [b'{"type":"gemini","tokens":', _dumps(neg), _dumps(no_id), _dumps(tokens_str)]
    parser = GEMINI.parser(f)
    for b in bad:
        with pytest.raises(BadLine):
            parser.feed(b)
    write_lines(
        f,
        [
            _gem_meta("sess-b"),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40),
            *bad,
            _gem_record("g5", "2026-04-01T10:00:06.000Z", inp=9100, out=10),
        ],
    )
    engine = make_engine(tmp_path / ".gemini")
    engine.backfill()
    assert engine.skips.lines == len(bad)
    s = engine.store.sessions[("gemini", "sess-b")]
    assert s.totals.turns == 2
    assert s.totals.total == 9040 + 9110


def test_gemini_torn_document_keeps_previous_turns(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_bytes(GEMINI_RUN4.read_bytes())
    engine = make_engine(path)
    engine.backfill()
    key = ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88")
    assert engine.store.sessions[key].totals.total == 119000
    data = GEMINI_RUN4.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn mid-rewrite
    assert not engine.refresh([path])
    assert engine.skips.lines == 1
    assert engine.store.sessions[key].totals.total == 119000
    path.write_bytes(data)  # the rewrite completes
    assert engine.refresh([path]).turns == []  # nothing new, nothing doubled
    assert engine.store.sessions[key].totals.total == 119000
