"""GitHub Copilot CLI plug-in: live output-only turns, authoritative numbers at `session.shutdown`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine
from tokwatch.agents.copilot import CopilotParser, split
from tokwatch.cli import main
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "copilot"
SINGLE_ID = "87ecd1bd-04f8-4b58-b837-a583e194be8f"
MULTI_ID = "3fb12c66-34de-4800-88bd-cdc369a4b9e0"
SINGLE = FIX / "session-state" / SINGLE_ID / "events.jsonl"
MULTI = FIX / "session-state" / MULTI_ID / "events.jsonl"
AGENT = get_agent("copilot")
HAS_CONTEXT_FIELD = "context_tokens" in Turn.__dataclass_fields__


def feed(p: CopilotParser, lines: list[bytes]) -> list[Turn]:
    out: list[Turn] = []
    for line in lines:
        out.extend(p.feed(line))
    return out


def ev(kind: str, data: dict, eid: str, ts: str = "2026-06-27T10:00:00.000Z") -> bytes:
    return json.dumps({"type": kind, "data": data, "id": eid, "timestamp": ts, "parentId": None}).encode()


def test_split_is_exact_and_proportional() -> None:
    assert split(10, [1, 1, 1]) == [4, 3, 3]
    assert split(271, [263, 8]) == [263, 8]
    assert split(100, [0, 0]) == [50, 50]
    assert split(0, [5, 5]) == [0, 0]
    assert split(7, []) == []
    for total in (0, 1, 99, 1000003):
        for w in ([1], [3, 1], [0, 2, 5], [1, 1, 1, 1, 1, 1, 1]):
            assert sum(split(total, w)) == total


def test_single_turn_real_log() -> None:
    p = CopilotParser(SINGLE)
    turns = feed(p, SINGLE.read_bytes().splitlines())
    live, final = turns
    assert live.turn_id == final.turn_id == "99d00191-bb9c-476c-ba59-fa884d338c77"
    # live: only the output is known, and it stays off the context gauge
    assert (live.input, live.output, live.sidechain) == (0, 79, True)
    # shutdown: modelMetrics.gpt-5-mini.usage, input inclusive of cache
    assert (final.input, final.cache_read, final.cache_write, final.output, final.reasoning) == (
        11637,
        0,
        0,
        79,
        64,
    )
    assert not final.sidechain and final.model == "gpt-5-mini"
    assert final.session_id == SINGLE_ID and final.project == "/home/ngsupb/repos/twitech/devchain"
    if HAS_CONTEXT_FIELD:
        assert final.context == 12558  # currentTokens


def test_multi_turn_real_log_counts_each_process_once() -> None:
    store = Store(make_pricer())
    Engine(store, [MULTI]).backfill()
    s = store.sessions[("copilot", MULTI_ID)]
    # the sum of both shutdowns' modelMetrics: 1 request before the resume, 2 after
    assert s.totals.turns == 3
    assert s.totals.input == 9 + 13
    assert s.totals.cache_read == 30371
    assert s.totals.cache_write == 15139 + 385
    assert s.totals.output == 63 + 271
    assert s.totals.reasoning == 46 + 162
    turns = {t.turn_id: t for t in store.turns_of(("copilot", MULTI_ID))}
    assert set(turns) == {
        "32759e1d-b8dd-41f4-aea3-7f82ec252cd7",
        "a7d355e0-2508-46eb-8dd3-87db3dd095ab",
        "d0bd6fa5-ca2b-4bab-bc39-54ac0abaab06",
    }
    # each message keeps its own logged output; the prompt is spread evenly over the requests
    a = turns["a7d355e0-2508-46eb-8dd3-87db3dd095ab"]
    b = turns["d0bd6fa5-ca2b-4bab-bc39-54ac0abaab06"]
    assert (a.output, b.output) == (263, 8)
    assert a.cache_read + b.cache_read == 30371 and abs(a.cache_read - b.cache_read) <= 1
    assert a.reasoning + b.reasoning == 162


def test_live_turns_before_shutdown(tmp_path: Path) -> None:
    lines = MULTI.read_bytes().splitlines()
    cut = next(i for i, ln in enumerate(lines) if b'"session.resume"' in ln)
    # a session still running after the resume: two messages seen, no shutdown yet
    live = lines[: cut + 1] + [ln for ln in lines[cut + 1 :] if b'"session.shutdown"' not in ln]
    log = tmp_path / "session-state" / MULTI_ID / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"\n".join(live) + b"\n")
    store = Store(make_pricer())
    engine = Engine(store, [tmp_path])
    engine.backfill()
    s = store.sessions[("copilot", MULTI_ID)]
    assert (s.totals.turns, s.totals.input, s.totals.output) == (3, 9, 63 + 263 + 8)
    # the shutdown arrives: the same turn ids are replaced, nothing is counted twice
    shutdown = [ln for ln in lines[cut + 1 :] if b'"session.shutdown"' in ln]
    with log.open("ab") as f:
        f.write(shutdown[0] + b"\n")
    engine.refresh([log])
    s = store.sessions[("copilot", MULTI_ID)]
    assert (s.totals.turns, s.totals.input, s.totals.cache_read, s.totals.output) == (3, 22, 30371, 334)


def test_requests_without_messages_get_one_aggregate_turn() -> None:
    p = CopilotParser(Path("/x/session-state/s1/events.jsonl"))
    out = feed(
        p,
        [
            ev("session.start", {"sessionId": "s1", "context": {"cwd": "/w"}}, "e0"),
            ev(
                "assistant.message",
                {"messageId": "m1", "model": "claude-sonnet-4.5", "outputTokens": 10},
                "e1",
            ),
            ev(
                "session.shutdown",
                {
                    "modelMetrics": {
                        "claude-sonnet-4.5": {
                            "requests": {"count": 3, "cost": 1},
                            "usage": {
                                "inputTokens": 3000,
                                "outputTokens": 40,
                                "cacheReadTokens": 1500,
                                "cacheWriteTokens": 300,
                                "reasoningTokens": 0,
                            },
                        },
                        "gpt-4.1": {  # a model with no message at all (e.g. a helper call)
                            "requests": {"count": 1, "cost": 0},
                            "usage": {"inputTokens": 500, "outputTokens": 5, "cacheReadTokens": 0},
                        },
                    },
                    "currentModel": "claude-sonnet-4.5",
                },
                "shut",
            ),
        ],
    )
    final = {t.turn_id: t for t in out[1:]}
    m1, agg, other = final["m1"], final["shut:claude-sonnet-4.5"], final["shut:gpt-4.1"]
    assert (m1.input, m1.cache_read, m1.cache_write, m1.output) == (400, 500, 100, 10)
    assert (agg.input, agg.cache_read, agg.cache_write, agg.output) == (800, 1000, 200, 30)
    assert agg.sidechain and other.sidechain and not m1.sidechain
    assert (other.input, other.output) == (500, 5)
    assert p.pending == []


def test_output_metrics_below_logged_messages_are_trusted() -> None:
    p = CopilotParser(Path("events.jsonl"))
    out = feed(
        p,
        [
            ev("assistant.message", {"messageId": "m1", "model": "m", "outputTokens": 30}, "e1"),
            ev("assistant.message", {"messageId": "m2", "model": "m", "outputTokens": 10}, "e2"),
            ev(
                "session.shutdown",
                {"modelMetrics": {"m": {"usage": {"inputTokens": 100, "outputTokens": 20}}}},
                "s",
            ),
        ],
    )
    final = out[2:]
    assert [t.output for t in final] == [15, 5]
    assert sum(t.input for t in final) == 100


def test_crashed_process_keeps_output_only_turns() -> None:
    p = CopilotParser(Path("events.jsonl"))
    out = feed(
        p,
        [
            ev("session.start", {"sessionId": "s"}, "e0"),
            ev("assistant.message", {"messageId": "m1", "model": "m", "outputTokens": 30}, "e1"),
            ev("session.resume", {"context": {"cwd": "/w"}}, "e2"),  # no shutdown before: crashed
            ev("assistant.message", {"messageId": "m2", "model": "m", "outputTokens": 10}, "e3"),
            ev(
                "session.shutdown",
                {"modelMetrics": {"m": {"usage": {"inputTokens": 100, "outputTokens": 10}}}},
                "s",
            ),
        ],
    )
    by_id: dict[str, Turn] = {}
    for t in out:
        by_id[t.turn_id] = t
    assert (by_id["m1"].input, by_id["m1"].output) == (0, 30)  # never learned its prompt
    assert (by_id["m2"].input, by_id["m2"].output) == (100, 10)


def test_state_restore_mid_segment() -> None:
    lines = SINGLE.read_bytes().splitlines()
    p = CopilotParser(SINGLE)
    feed(p, lines[:-1])
    q = CopilotParser(SINGLE)
    q.restore(json.loads(json.dumps(p.state())))
    (final,) = q.feed(lines[-1])
    assert (final.input, final.output, final.session_id) == (11637, 79, SINGLE_ID)


def test_malformed() -> None:
    p = CopilotParser(SINGLE)
    with pytest.raises(BadLine):
        p.feed(b"[1]")
    with pytest.raises(BadLine):
        p.feed(ev("assistant.message", {"outputTokens": "many", "messageId": "m"}, "e"))
    with pytest.raises(BadLine):
        p.feed(b'{"type":"assistant.message","data":{}}')
    assert p.feed(ev("session.shutdown", {"modelMetrics": None}, "s")) == []


def test_path_and_sniff_claims(tmp_path: Path) -> None:
    for log in (SINGLE, MULTI):
        assert detect(log) is AGENT
        head = log.read_bytes()[:4096]
        for other in ("codex", "gemini"):
            a = get_agent(other)
            assert not a.owns_path(log) and not a.sniff(head)
        assert not get_agent("claude").owns_path(log)
    flat = tmp_path / "anything.jsonl"
    shutil.copy(SINGLE, flat)
    assert detect(flat) is AGENT  # Copilot's sniff is asked before Claude's looser one
    assert AGENT.owns_path(Path("/h/.copilot/session-state/abc.jsonl"))  # older flat layout
    assert not AGENT.owns_path(Path("/h/.copilot/logs/events.jsonl"))
    assert AGENT.roots({}, tmp_path) == [tmp_path / ".copilot" / "session-state"]
    assert AGENT.roots({"COPILOT_HOME": "/c"}, tmp_path) == [Path("/c/session-state")]


def test_export_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIX, tmp_path / "copilot")
    assert main(["export", "--no-cache", "--format", "json", str(tmp_path)]) == 0
    rows = {r["session_id"]: r for r in json.loads(capsys.readouterr().out) if r["agent"] == "copilot"}
    assert set(rows) == {SINGLE_ID, MULTI_ID}
    single, multi = rows[SINGLE_ID], rows[MULTI_ID]
    assert (single["model"], single["turns"], single["input_tokens"], single["output_tokens"]) == (
        "gpt-5-mini",
        1,
        11637,
        79,
    )
    assert (multi["model"], multi["turns"], multi["cache_write_tokens"], multi["total_tokens"]) == (
        "claude-haiku-4.5",
        3,
        15524,
        22 + 30371 + 15524 + 334,
    )


def test_fuzz_events_only_badline() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(
        [
            "type",
            "data",
            "id",
            "timestamp",
            "messageId",
            "model",
            "outputTokens",
            "modelMetrics",
            "usage",
            "requests",
            "count",
            "inputTokens",
            "cacheReadTokens",
            "cacheWriteTokens",
            "reasoningTokens",
            "currentModel",
            "currentTokens",
            "sessionId",
            "context",
            "cwd",
        ]
    )
    kinds = st.sampled_from(["assistant.message", "session.shutdown", "session.start", "session.resume"])
    values = st.recursive(
        st.none() | st.integers(-5, 10**13) | kinds | st.sampled_from(["m", "gpt-5"]) | st.floats(),
        lambda c: st.dictionaries(keys, c, max_size=6) | st.lists(c, max_size=3),
        max_leaves=30,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=st.lists(values, max_size=6))
    def check(events: list[object]) -> None:
        p = CopilotParser(SINGLE)
        for e in events:
            try:
                turns = p.feed(json.dumps(e).encode())
            except BadLine:
                continue
            for t in turns:
                assert min(t.input, t.cache_read, t.cache_write, t.output, t.reasoning) >= 0
                assert t.reasoning <= t.output

    check()
