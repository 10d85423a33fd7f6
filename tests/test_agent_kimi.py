"""Kimi CLI plug-in: StatusUpdates with token usage, subagent files vs their wrapped copies in the
parent wire, forks, context-only updates, Kimi's own context figures, config and live follow."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import Following, append_bytes, make_engine, real_lines, write_lines

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine
from tokwatch.agents.kimi import KimiParser
from tokwatch.core.models import Session
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "kimi-cli"
WD = "0f7d8e1c2b3a495867f0a1b2c3d4e5f6"
SID = "6a1f2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
SESSION = FIX / "sessions" / WD / SID
MAIN = SESSION / "wire.jsonl"
SUB = SESSION / "subagents" / "a3f9c2d10" / "wire.jsonl"
AGENT = get_agent("kimi")


def status(
    ts: float, mid: str | None, inp: int, out: int, cache_read: int = 0, ctx: int | None = None
) -> bytes:
    """A StatusUpdate as Kimi CLI's wire recorder writes it (json.dumps default separators)."""
    payload = {
        "context_usage": 0.05,
        "context_tokens": ctx if ctx is not None else inp + cache_read,
        "max_context_tokens": 262144,
        "token_usage": {
            "input_other": inp,
            "output": out,
            "input_cache_read": cache_read,
            "input_cache_creation": 0,
        },
        "message_id": mid,
        "plan_mode": False,
        "mcp_status": None,
    }
    return json.dumps({"timestamp": ts, "message": {"type": "StatusUpdate", "payload": payload}}).encode()


def share_copy(tmp_path: Path) -> Path:
    share = tmp_path / ".kimi"
    shutil.copytree(FIX / "sessions", share / "sessions")
    return share


def session_of(engine: Engine, sid: str = SID) -> Session:
    return engine.store.sessions[("kimi", sid)]


def test_subagent_usage_is_counted_once_from_its_own_file(tmp_path: Path) -> None:
    wrapped = [json.loads(x) for x in real_lines(MAIN) if b'"SubagentEvent"' in x]
    assert wrapped and wrapped[0]["message"]["payload"]["agent_id"] == "a3f9c2d10"
    engine = make_engine(share_copy(tmp_path))
    engine.backfill()
    s = session_of(engine)
    # 2 main steps + the subagent's step (in its own file AND wrapped in the parent's wire)
    assert s.totals.turns == 3
    assert (s.totals.input, s.totals.output) == (2490 + 1634 + 3170, 106 + 240 + 88)
    assert engine.skips.lines == 0
    sub = [t for t in engine.store.turns_of(s.key) if t.sidechain]
    assert [t.turn_id for t in sub] == ["chatcmpl-sub-1|3170|88|0|0"]


def test_old_sessions_without_subagent_files_count_the_wrapped_copies(tmp_path: Path) -> None:
    share = share_copy(tmp_path)
    shutil.rmtree(share / "sessions" / WD / SID / "subagents")  # Kimi CLI < 1.25 wrote none
    engine = make_engine(share)
    engine.backfill()
    s = session_of(engine)
    assert s.totals.turns == 3 and s.totals.output == 106 + 240 + 88


def test_gauge_takes_kimis_context_figures_and_subagents_do_not_move_it(tmp_path: Path) -> None:
    engine = make_engine(share_copy(tmp_path))
    engine.backfill()
    s = session_of(engine)
    # the /compact StatusUpdate carries only context figures: not a request (3 turns), but Kimi's
    # own figure for the context after it moves the gauge (was 13650 after the last request)
    assert b'"token_usage": null' in real_lines(MAIN)[9]
    assert (s.context_used, s.context_window, s.totals.turns) == (1800, 262144, 3)
    assert s.context_ts == 1784000131.0


def test_fork_copies_lines_into_another_session_counted_once(tmp_path: Path) -> None:
    share = share_copy(tmp_path)
    fork = share / "sessions" / WD / "7b2e0000-0000-4000-8000-000000000001"
    fork.mkdir()
    shutil.copy(MAIN, fork / "wire.jsonl")  # /fork copies wire lines byte for byte
    append_bytes(fork / "wire.jsonl", status(1784000200.5, "chatcmpl-fork-1", 500, 50) + b"\n")
    imported = share / "imported_sessions" / SID  # `kimi vis` zip import: another copy
    shutil.copytree(share / "sessions" / WD / SID, imported)
    engine = make_engine(share)
    engine.backfill()
    total = engine.store.totals()
    assert total.turns == 4 and total.output == 106 + 240 + 88 + 50


def test_configured_model_provider_convention_and_project(tmp_path: Path) -> None:
    share = share_copy(tmp_path)
    (share / "config.toml").write_text(
        'default_model = "gem"\n[models.gem]\nprovider = "g"\nmodel = "gemini-2.5-pro"\nmax_context_size = 1048576\n'
        '[providers.g]\ntype = "google_genai"\nbase_url = "https://example.invalid"\n'
    )
    work = "/home/u/proj"
    (share / "kimi.json").write_text(json.dumps({"work_dirs": [{"path": work, "kaos": "local"}]}))
    key = hashlib.md5(work.encode()).hexdigest()
    wire = share / "sessions" / key / "s1" / "wire.jsonl"
    # google_genai's input_other includes the cached part; a negative one is clamped, not dropped
    write_lines(
        wire, [status(1784000001.0, "r1", 9000, 10, cache_read=8000), status(1784000002.0, "r2", -5, 10)]
    )
    engine = make_engine(share / "sessions" / key)
    engine.backfill()
    s = engine.store.sessions[("kimi", "s1")]
    assert s.models == ["gemini-2.5-pro"] and s.project == work
    assert (s.totals.input, s.totals.cache_read, s.totals.turns) == (1000, 8000, 2)
    assert engine.skips.lines == 0


def test_unknown_model_without_config(tmp_path: Path) -> None:
    engine = make_engine(share_copy(tmp_path))
    engine.backfill()
    s = session_of(engine)
    assert s.models == ["unknown"] and s.totals.cost_usd is None  # unknown, never $0


def test_no_message_id_falls_back_to_the_raw_timestamp() -> None:
    p = KimiParser(MAIN)
    (a,) = p.feed(status(1784000004.512345, None, 10, 1))
    (b,) = p.feed(status(1784000005.1, None, 10, 1))
    assert a.turn_id != b.turn_id and a.dedup_key == a.turn_id


def test_malformed_usage_is_a_badline() -> None:
    p = KimiParser(MAIN)
    bad = json.dumps({"timestamp": 1.0, "message": {"type": "StatusUpdate", "payload": {"token_usage": "x"}}})
    with pytest.raises(BadLine):
        p.feed(bad.encode())
    assert p.feed(b'{"type": "metadata", "protocol_version": "1.10"}') == []


def test_roots_and_ownership(tmp_path: Path) -> None:
    assert AGENT.roots({}, tmp_path) == [
        tmp_path / ".kimi" / "sessions",
        tmp_path / ".kimi" / "imported_sessions",
    ]
    assert AGENT.roots({"KIMI_SHARE_DIR": "/k"}, tmp_path)[0] == Path("/k/sessions")
    assert detect(MAIN) is AGENT and detect(SUB) is AGENT
    code = tmp_path / "sessions" / "wd_x_1" / "session_1" / "agents" / "main" / "wire.jsonl"
    assert not AGENT.owns_path(code)
    flat = tmp_path / "w.jsonl"
    shutil.copy(MAIN, flat)
    assert detect(flat) is AGENT
    head = MAIN.read_bytes()[:4096]
    for other in ("claude", "codex", "qwen", "copilot", "pi", "openclaw", "kimi-code"):
        assert not get_agent(other).sniff(head), other


def test_live_append_is_followed(tmp_path: Path) -> None:
    share = share_copy(tmp_path)
    engine = make_engine(share / "sessions")
    engine.backfill()
    s = session_of(engine)
    with Following(engine) as f:
        append_bytes(
            share / "sessions" / WD / SID / "wire.jsonl", status(1784000300.0, "live-1", 77, 7, 14000) + b"\n"
        )
        t = f.wait_for(lambda t: t.turn_id.startswith("live-1"))
        assert t.context_tokens == 14077 and t.context_window == 262144
    s = session_of(engine)  # (sessions are published anew with each batch)
    assert s.totals.turns == 4 and s.context_used == 14077


def test_context_only_update_moves_the_gauge_until_the_next_request(tmp_path: Path) -> None:
    """After `/compact` the gauge shows Kimi's new figure; an older figure never wins over a newer
    request, and the next request moves the gauge again (its prompt, not the totals, grew)."""
    share = share_copy(tmp_path)
    main = share / "sessions" / WD / SID / "wire.jsonl"
    engine = make_engine(share)
    engine.backfill()
    assert session_of(engine).context_used == 1800
    late = json.loads(real_lines(MAIN)[9])
    late["timestamp"] = 1784000100.5  # before the /compact figure: stale, ignored
    late["message"]["payload"]["context_tokens"] = 99999
    append_bytes(main, json.dumps(late).encode() + b"\n")
    engine.refresh([main])
    assert session_of(engine).context_used == 1800
    append_bytes(main, status(1784000200.0, "chatcmpl-after", 400, 30, cache_read=1600) + b"\n")
    engine.refresh([main])
    s = session_of(engine)
    assert (s.context_used, s.totals.turns) == (2000, 4)
