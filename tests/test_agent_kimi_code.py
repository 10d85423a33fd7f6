"""Kimi Code plug-in: a real lab session (main + subagent wires), `usage.record` vs the duplicate
`step.end`, compaction records, forks and rewrites, and live follow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import Following, append_bytes, feed_all, make_engine, real_lines, write_lines

from tokwatch.agents import get_agent
from tokwatch.agents.kimi_code import KimiCodeParser
from tokwatch.ingest.discover import detect

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "kimi-code" / "sessions"
WS = "wd_project_ac3bb318f98e"
SID = "session_1bcbe023-4f7e-4971-9dc9-43b8756045b0"
SESSION = FIX / WS / SID
MAIN = SESSION / "agents" / "main" / "wire.jsonl"
SUB = SESSION / "agents" / "agent-0" / "wire.jsonl"
AGENT = get_agent("kimi-code")
USAGE = ("inputOther", "output", "inputCacheRead", "inputCacheCreation")


def records(path: Path, kind: str) -> list[dict]:
    return [d for d in map(json.loads, real_lines(path)) if d.get("type") == kind]


def step_ends(path: Path) -> list[dict]:
    return [
        d["event"]
        for d in map(json.loads, real_lines(path))
        if d.get("type") == "context.append_loop_event" and d["event"].get("type") == "step.end"
    ]


def usage_line(time: int, inp: int, out: int, scope: str | None = "turn") -> bytes:
    d: dict = {"type": "usage.record", "model": "moonshot-ai/kimi-k2.7-code",
               "usage": {"inputOther": inp, "output": out, "inputCacheRead": 24064, "inputCacheCreation": 0},
               "time": time}  # fmt: skip
    if scope is not None:
        d["usageScope"] = scope
    return json.dumps(d).encode()


def copy_home(tmp_path: Path) -> Path:
    home = tmp_path / ".kimi-code"
    shutil.copytree(FIX, home / "sessions")
    return home


def test_real_session_counts_usage_records_not_step_ends(tmp_path: Path) -> None:
    main, sub = records(MAIN, "usage.record"), records(SUB, "usage.record")
    assert (len(main), len(sub), len(step_ends(MAIN))) == (23, 3, 22)
    assert [r.get("usageScope") for r in main].count("session") == 1
    engine = make_engine(copy_home(tmp_path))
    engine.backfill()
    s = engine.store.sessions[("kimi-code", SID)]
    every = main + sub
    assert s.totals.turns == 26
    assert s.totals.input == sum(r["usage"]["inputOther"] for r in every)
    assert s.totals.cache_read == sum(r["usage"]["inputCacheRead"] for r in every)
    assert s.totals.output == sum(r["usage"]["output"] for r in every)
    assert s.models == ["kimi-k2.7-code"]  # the concrete model of the preceding llm.request
    assert s.project == "/private/tmp/as-agent-lab/kimi/project"  # state.json workDir
    assert s.totals.cost_usd is not None
    assert engine.skips.lines == 0


def test_compaction_record_is_billed_but_does_not_move_the_gauge() -> None:
    turns = feed_all(KimiCodeParser(MAIN), real_lines(MAIN))
    compaction = [t for t in turns if t.output == 937]
    assert len(compaction) == 1 and compaction[0].sidechain  # usageScope "session": the summarizer
    last_turn = [t for t in turns if not t.sidechain][-1]
    assert (last_turn.input, last_turn.cache_read, last_turn.output) == (647, 40448, 304)
    engine = make_engine(MAIN)
    engine.backfill()
    s = engine.store.sessions[("kimi-code", SID)]
    assert s.context_used == 647 + 40448  # the last turn-scope request, not the summarizer's prompt


def test_subagent_records_belong_to_the_session_as_sidechain() -> None:
    turns = feed_all(KimiCodeParser(SUB), real_lines(SUB))
    assert len(turns) == 3 and all(t.sidechain and t.session_id == SID for t in turns)


def test_record_without_scope_is_counted() -> None:
    (t,) = KimiCodeParser(MAIN).feed(usage_line(1785613809994, 10, 5, scope=None))
    assert not t.sidechain and t.model == "moonshot-ai/kimi-k2.7-code"  # no llm.request seen: the alias


def test_fork_and_in_place_rewrite_are_counted_once(tmp_path: Path) -> None:
    home = copy_home(tmp_path)
    src = home / "sessions" / WS / SID
    fork = home / "sessions" / WS / "session_99999999-0000-4000-8000-000000000000"
    shutil.copytree(src, fork)  # `fork` = cp -r of the session folder, then a marker per wire
    for wire in fork.glob("agents/*/wire.jsonl"):
        append_bytes(wire, json.dumps({"type": "forked", "time": 1785620000000}).encode() + b"\n")
    append_bytes(fork / "agents" / "main" / "wire.jsonl", usage_line(1785620001000, 111, 11) + b"\n")
    engine = make_engine(home)
    engine.backfill()
    assert engine.store.totals().turns == 27  # 26 copied once + the fork's own request
    # opening an older-protocol wire migrates and rewrites it: same records, nothing added
    main = src / "agents" / "main" / "wire.jsonl"
    data = main.read_bytes()
    main.write_bytes(data.replace(b'"protocol_version": "1.4"', b'"protocol_version": "1.5"'))
    engine.refresh([main])
    assert engine.store.totals().turns == 27


def test_roots_and_ownership(tmp_path: Path) -> None:
    assert AGENT.roots({}, tmp_path) == [tmp_path / ".kimi-code" / "sessions"]
    assert AGENT.roots({"KIMI_CODE_HOME": "/kc"}, tmp_path) == [Path("/kc/sessions")]
    assert detect(MAIN) is AGENT and detect(SUB) is AGENT
    flat = tmp_path / "w.jsonl"
    shutil.copy(MAIN, flat)
    assert detect(flat) is AGENT
    head = MAIN.read_bytes()[:4096]
    for other in ("claude", "codex", "qwen", "copilot", "pi", "openclaw", "kimi"):
        assert not get_agent(other).sniff(head), other


@pytest.mark.parametrize(
    "bad", [b"{", b'{"type":"usage.record","usage":{"output":"x"}}', b'{"type":"usage.record"}']
)
def test_malformed_records_are_badlines(bad: bytes) -> None:
    from tokwatch.agents.base import BadLine

    with pytest.raises(BadLine):
        KimiCodeParser(MAIN).feed(bad)


def test_live_append_is_followed(tmp_path: Path) -> None:
    home = copy_home(tmp_path)
    wire = home / "sessions" / WS / "session_live" / "agents" / "main" / "wire.jsonl"
    write_lines(wire, [b'{"type": "metadata", "protocol_version": "1.4", "created_at": 1785612803281}'])
    engine = make_engine(home / "sessions")
    engine.backfill()
    with Following(engine) as f:
        append_bytes(wire, usage_line(1785700000000, 321, 12) + b"\n")
        t = f.wait_for(lambda t: t.input == 321)
        assert t.session_id == "session_live" and t.agent == "kimi-code"


def test_compaction_is_marked_with_its_logged_figures() -> None:
    """`context.apply_compaction` after a manual `full_compaction.begin`: one compaction, with
    Kimi's before/after estimates as logged (they are not the whole prompt: the gauge waits for
    the next request)."""
    from tokwatch.core.observations import Compaction
    from tokwatch.reports import limits

    p = KimiCodeParser(MAIN)
    feed_all(p, real_lines(MAIN))
    assert p.observations() == [
        Compaction("kimi-code", SID, "1785619064648", 1785619064.648, "manual", 15912, 654)
    ]
    engine = make_engine(MAIN)
    engine.backfill()
    s = engine.store.sessions[("kimi-code", SID)]
    assert limits.road(engine.ledger, s).count == 1
    sub = KimiCodeParser(SUB)
    assert feed_all(sub, real_lines(SUB)) and sub.observations() == []  # a subagent marks nothing
