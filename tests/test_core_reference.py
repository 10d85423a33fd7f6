"""`tokwatch export` on the real logs reproduces the reference totals of SOURCES.md, exactly."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from helpers import (
    CLAUDE_API_ERROR,
    CLAUDE_COMPACT,
    CLAUDE_MAIN,
    CLAUDE_SESSION,
    CLAUDE_SUB,
    REAL,
    isolate_env,
    real_lines,
)

from tokwatch.agents import get_agent
from tokwatch.cli import main
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.ingest.setup import make_pricer

# (agent, session, model) -> (input, cache_read, cache_write, output, reasoning, total), the table
# of SOURCES.md (the en-dash reasoning of Claude, which does not log it, is 0).
REFERENCE: dict[tuple[str, str, str], tuple[int, int, int, int, int, int]] = {
    ("claude", CLAUDE_SESSION, "claude-opus-4-6"): (14, 412083, 122622, 414, 0, 535133),
    ("claude", CLAUDE_SESSION, "claude-sonnet-4-5-20250929"): (10, 13522, 25085, 6, 0, 38623),
    ("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff", "gpt-5.3-codex"): (59525, 238848, 0, 1123, 483, 299496),
    ("codex", "019aad50-a7e6-7422-b7a8-0b384290624f", "gpt-5.1-codex-max"): (
        1130901,
        29513728,
        0,
        183421,
        82880,
        30828050,
    ),
    ("codex", "019a085e-04c1-7f81-a09e-9555f6a1fb40", "gpt-5-codex"): (33995, 181760, 0, 14976, 8448, 230731),
    ("gemini", "b36c9e17-99f8-4acf-b1b3-cef1081a98f6", "gemini-3.1-pro-preview"): (
        190042,
        716017,
        0,
        28299,
        25010,
        934358,
    ),
    ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88", "gemini-3.1-pro-preview"): (
        34436,
        80178,
        0,
        4386,
        2000,
        119000,
    ),
    ("gemini", "0b23371a-ce2e-4b1c-81a0-44af5d94d9ce", "gemini-2.5-pro"): (
        34028,
        86702,
        0,
        6223,
        1348,
        126953,
    ),
}

# Not in the SOURCES table: the Codex excerpt (019c8a59…), summed by hand from its five distinct
# token_count events (lines 20, 33, 43, 47, 61): input = Σ(input_tokens - cached_input_tokens).
EXCERPT = ("codex", "019c8a59-e9dd-71f0-9ae3-4079fe9726a9", "gpt-5.3-codex")
EXCERPT_NUMBERS = (42891, 460160, 0, 4229, 532, 507280)

# Turns per row, counted by hand on the raw files: distinct (message.id, requestId) for Claude, distinct
# consecutive total_token_usage for Codex (703 events - 351 repeats - 1 info:null for rtchess), nonzero
# `gemini` messages for Gemini.
TURNS = {
    ("claude", CLAUDE_SESSION, "claude-opus-4-6"): 6,  # 5 main-chain + the compaction call
    ("claude", CLAUDE_SESSION, "claude-sonnet-4-5-20250929"): 2,
    ("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff", "gpt-5.3-codex"): 6,
    ("codex", "019aad50-a7e6-7422-b7a8-0b384290624f", "gpt-5.1-codex-max"): 351,
    ("codex", "019a085e-04c1-7f81-a09e-9555f6a1fb40", "gpt-5-codex"): 21,
    ("gemini", "b36c9e17-99f8-4acf-b1b3-cef1081a98f6", "gemini-3.1-pro-preview"): 39,
    ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88", "gemini-3.1-pro-preview"): 10,
    ("gemini", "0b23371a-ce2e-4b1c-81a0-44af5d94d9ce", "gemini-2.5-pro"): 13,
    EXCERPT: 5,
}

# (agent, session) -> (context tokens = last main-chain full prompt, context window)
CONTEXT = {
    ("claude", CLAUDE_SESSION): (98732, 200_000),
    ("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"): (63441, 258_400),
    ("codex", "019aad50-a7e6-7422-b7a8-0b384290624f"): (153122, 258_400),
    ("codex", "019a085e-04c1-7f81-a09e-9555f6a1fb40"): (18733, 272_000),
    ("codex", "019c8a59-e9dd-71f0-9ae3-4079fe9726a9"): (48297, 258_400),
    ("gemini", "b36c9e17-99f8-4acf-b1b3-cef1081a98f6"): (45026, 1_048_576),
    ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88"): (14522, 1_048_576),
    ("gemini", "0b23371a-ce2e-4b1c-81a0-44af5d94d9ce"): (12707, 1_048_576),
}

# first_seen / last_seen: the first and last billed turn of each session, as logged.
SEEN = {
    ("claude", CLAUDE_SESSION): ("2026-02-12T16:02:27.718Z", "2026-02-12T21:03:30.594Z"),
    ("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"): (
        "2026-02-23T19:34:39.388Z",
        "2026-02-23T19:36:02.633Z",
    ),
    ("gemini", "b36c9e17-99f8-4acf-b1b3-cef1081a98f6"): (
        "2026-03-26T04:33:57.960Z",
        "2026-03-26T04:47:42.450Z",
    ),
    # the last message (09:41:45) is all-zero: not a request
    ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88"): (
        "2026-03-26T09:37:51.767Z",
        "2026-03-26T09:39:50.148Z",
    ),
    # the first gemini message (20:04:39) is all-zero: not a request
    ("gemini", "0b23371a-ce2e-4b1c-81a0-44af5d94d9ce"): (
        "2025-10-21T20:04:54.195Z",
        "2025-10-21T20:08:49.642Z",
    ),
}

COLUMNS = [
    "agent",
    "session_id",
    "project",
    "model",
    "turns",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "first_seen",
    "last_seen",
    "context_tokens",
    "context_window",
    "context_window_assumed",
]
NUMBER_COLUMNS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)
# The agents of the reference table; rows of other agents (OpenCode, Copilot…) are not checked here.
AGENTS = {"claude", "codex", "gemini"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_env(monkeypatch, tmp_path)


def _expected() -> dict[tuple[str, str, str], tuple[int, ...]]:
    return {**REFERENCE, EXCERPT: EXCERPT_NUMBERS}


EN_DASH = "\u2013"


def test_reference_table_matches_sources_md() -> None:
    """The numbers hard-coded above are the ones in SOURCES.md (no drift between doc and test)."""
    text = (REAL / "SOURCES.md").read_text()
    table = text.split("## Reference totals", 1)[1]
    parsed: dict[tuple[str, str, str], tuple[int, ...]] = {}
    last_session = None
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[2].isdigit():
            continue
        if cells[0].startswith("(same"):
            agent, session = last_session
        else:
            agent, session = cells[0].split()[:2]
            last_session = (agent, session)
        nums = tuple(0 if c == EN_DASH else int(c) for c in cells[2:])
        parsed[(agent, session, cells[1])] = nums
    assert parsed == REFERENCE


def _export_json(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    rc = main(["export", str(REAL), "--format", "json", *extra])
    out = capsys.readouterr().out
    assert rc == 0
    return json.loads(out)


def test_export_json_matches_every_reference_row(capsys: pytest.CaptureFixture[str]) -> None:
    data = [r for r in _export_json(capsys) if r["agent"] in AGENTS]
    got = {(r["agent"], r["session_id"], r["model"]): r for r in data}
    expected = _expected()
    # Every row of the table, and no other Claude/Codex/Gemini row (the <synthetic> API error line
    # is not a session).
    assert set(got) == set(expected)
    assert len(data) == len(expected)
    for key, (inp, cr, cw, out, reasoning, total) in expected.items():
        r = got[key]
        assert (
            r["input_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
            r["output_tokens"],
            r["reasoning_tokens"],
            r["total_tokens"],
        ) == (inp, cr, cw, out, reasoning, total), key
        assert total == inp + cr + cw + out
        assert r["turns"] == TURNS[key], key
        assert list(r) == COLUMNS
        # every model in the fixtures is priced: a real, positive dollar amount
        assert isinstance(r["cost_usd"], float) and r["cost_usd"] > 0, key
        assert ISO_Z.match(r["first_seen"]) and ISO_Z.match(r["last_seen"]), key
        assert r["first_seen"] <= r["last_seen"]
        ctx, window = CONTEXT[(r["agent"], r["session_id"])]
        assert (r["context_tokens"], r["context_window"]) == (ctx, window), key


def test_export_json_context_and_seen_times(capsys: pytest.CaptureFixture[str]) -> None:
    data = _export_json(capsys)
    by_session = {(r["agent"], r["session_id"]): r for r in data if r["agent"] in AGENTS}
    assert set(by_session) == set(CONTEXT)
    for key, (first, last) in SEEN.items():
        assert (by_session[key]["first_seen"], by_session[key]["last_seen"]) == (first, last), key
    # The last Gemini requests' full prompts (input + tool, cached included)
    assert by_session[("gemini", "b36c9e17-99f8-4acf-b1b3-cef1081a98f6")]["context_tokens"] == 45026
    assert by_session[("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88")]["context_tokens"] == 14522
    assert by_session[("gemini", "0b23371a-ce2e-4b1c-81a0-44af5d94d9ce")]["context_tokens"] == 12707
    # Projects: Claude's and Codex's cwd, Gemini's projectHash (no slug map in the fixtures)
    assert (
        by_session[("claude", CLAUDE_SESSION)]["project"]
        == "/home/USER/projects/spotter-worktrees/spotter-dov"
    )
    assert by_session[("codex", "019aad50-a7e6-7422-b7a8-0b384290624f")]["project"] == (
        "/Users/pinouchon/code/rtchess"
    )


def test_export_csv_matches_every_reference_row(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", str(REAL)])  # CSV is the default format
    out = capsys.readouterr().out
    assert rc == 0
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames == COLUMNS
    rows = [r for r in reader if r["agent"] in AGENTS]
    got = {(r["agent"], r["session_id"], r["model"]): r for r in rows}
    expected = _expected()
    assert set(got) == set(expected)
    assert len(rows) == len(expected)
    for key, numbers in expected.items():
        r = got[key]
        assert tuple(int(r[c]) for c in NUMBER_COLUMNS) == numbers, key
        assert int(r["turns"]) == TURNS[key]
        assert float(r["cost_usd"]) > 0
        assert ISO_Z.match(r["first_seen"]) and ISO_Z.match(r["last_seen"])
        ctx, window = CONTEXT[(r["agent"], r["session_id"])]
        assert (int(r["context_tokens"]), int(r["context_window"])) == (ctx, window)


def test_export_csv_and_json_agree(capsys: pytest.CaptureFixture[str]) -> None:
    data = _export_json(capsys)
    main(["export", str(REAL), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(data)
    for j, c in zip(data, rows, strict=True):
        for col in COLUMNS:
            if col == "cost_usd":
                assert float(c[col]) == pytest.approx(j[col], abs=1e-9)
            elif j[col] is None:  # unknown (a context window): null in JSON, empty in CSV, never 0
                assert c[col] == "", col
            else:
                assert str(j[col]) == c[col], col


def test_export_to_file_is_the_same_snapshot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = _export_json(capsys)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "snap.json"
    rc = main(["export", str(REAL), "--format", "json", "-o", str(target)])
    assert rc == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text()) == data
    assert [p.name for p in out_dir.iterdir()] == ["snap.json"]  # no temporary file left behind


def test_export_warm_ledger_equals_cold_read(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    cold = _export_json(capsys, "--no-cache")
    first = _export_json(capsys)  # fills the ledger
    assert (Path(os.environ["TOKWATCH_DATA_DIR"]) / "ledger.db").is_file()
    warm = _export_json(capsys)  # resumes from it
    assert first == cold
    assert warm == cold


def test_export_of_one_file_is_that_session_only(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", str(CLAUDE_API_ERROR), "--format", "json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out) == []  # the <synthetic> error line bills nothing


def _claude_events() -> list[tuple[float, int, Turn | None, bytes]]:
    """Every line of the Claude session and its subagents, in log-time order, with its turns."""
    from tokwatch.agents.base import parse_ts

    agent = get_agent("claude")
    assert agent is not None
    events = []
    seq = 0
    for path in (CLAUDE_MAIN, CLAUDE_SUB, CLAUDE_COMPACT):
        parser = agent.parser(path)
        for raw in real_lines(path):
            ts = parse_ts(json.loads(raw).get("timestamp"))
            turns = parser.feed(raw)
            assert len(turns) <= 1
            events.append((ts, seq, turns[0] if turns else None, raw))
            seq += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def test_claude_context_gauge_falls_after_compaction_progressively() -> None:
    store = Store(make_pricer())
    key = ("claude", CLAUDE_SESSION)
    before = None
    after_first = None
    totals_seen = []
    gauges = []
    for _ts, _seq, t, raw in _claude_events():
        d = json.loads(raw)
        if d.get("subtype") == "compact_boundary":
            assert d["compactMetadata"]["preTokens"] == 170251
            before = store.sessions[key].context_used
        if t is not None:
            store.apply([t])
            s = store.sessions[key]
            totals_seen.append(s.totals.total)
            gauges.append(s.context_used)
            if before is not None and after_first is None and not t.sidechain:
                after_first = s.context_used
    s = store.sessions[key]
    assert before == 164831  # last main-chain prompt before compaction
    assert after_first == 36081  # first main-chain prompt after it: the gauge falls
    assert s.context_used == 98732  # final
    # The compaction call itself (a sidechain, prompt 173514) never moved the gauge.
    assert 173514 not in gauges
    assert s.max_context == 164831
    assert s.context_window == 200_000
    # Totals never fall, and end at the reference numbers.
    assert totals_seen == sorted(totals_seen)
    assert s.totals.total == 535133 + 38623
