"""Codex CLI's normalizer on real rollouts: re-emitted token counts, null info, inclusive input, compaction, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import (
    CLAUDE_SESSION,
    CODEX_8BFE,
    CODEX_EXCERPT,
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
    parser.feed(dumps(ctx))
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
    (t,) = CODEX.parser(CODEX_8BFE).feed(dumps(d))
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
        dumps(negative),
        dumps(info_list),
        dumps(string_count),
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
