"""Regressions found in review: hostile agent costs and counts, repeated shutdowns, watch limits."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

from tokwatch.agents.copilot import CopilotParser
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

COPILOT = Path(__file__).parent / "fixtures" / "agents" / "copilot" / "session-state"


def test_absurd_agent_cost_is_not_believed() -> None:
    pricer = make_pricer()
    base = {
        "agent": "claude",
        "session_id": "s",
        "turn_id": "t",
        "model": "claude-sonnet-4-5",
        "timestamp": 1.0,
        "input": 1000,
    }
    by_tokens = pricer.cost_pico(Turn(**base))
    assert by_tokens is not None and by_tokens > 0
    for bad in (1e300, float("inf"), float("nan"), -1.0):
        assert pricer.cost_pico(Turn(**base, cost_usd=bad)) == by_tokens
    assert pricer.cost_pico(Turn(**base, cost_usd=0.25)) == 250_000_000_000
    store = Store(pricer)
    store.apply([Turn(**base, cost_usd=1e300)])  # must not raise OverflowError
    assert store.totals().cost_pico == by_tokens


def _copilot_totals(root: Path) -> tuple[int, int, int, int]:
    engine = Engine(Store(make_pricer()), [root])
    engine.backfill()
    t = engine.store.totals()
    return (t.turns, t.input, t.cache_read, t.output)


def test_copilot_repeated_shutdown_is_counted_once(tmp_path: Path) -> None:
    src = next(p for p in COPILOT.glob("*/events.jsonl") if p.read_bytes().count(b'"session.shutdown"') == 1)
    dst = tmp_path / "session-state" / src.parent.name / "events.jsonl"
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    once = _copilot_totals(tmp_path)
    shutdown = next(line for line in src.read_bytes().splitlines() if b'"session.shutdown"' in line)
    with open(dst, "ab") as f:
        f.write(shutdown + b"\n")
    assert _copilot_totals(tmp_path) == once


def test_copilot_huge_request_count_is_cheap() -> None:
    parser = CopilotParser(Path("/x/session-state/s/events.jsonl"))
    line = orjson.dumps(
        {
            "type": "session.shutdown",
            "id": "e1",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "data": {
                "modelMetrics": {
                    "gpt-5-mini": {
                        "requests": {"count": 10**11},
                        "usage": {"inputTokens": 1000, "outputTokens": 10, "cacheReadTokens": 100},
                    }
                }
            },
        }
    )
    t0 = time.perf_counter()
    turns = parser.feed(line)
    assert time.perf_counter() - t0 < 0.5
    assert sum(t.input + t.cache_read for t in turns) == 1000
    assert sum(t.output for t in turns) == 10


def test_watch_limit_falls_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import watchfiles._rust_notify as rn

    real = rn.RustNotify

    def limited(paths: list[str], debug: bool, force_polling: bool, *rest: object) -> object:
        if not force_polling:
            raise OSError("OS file watch limit reached")
        return real(paths, debug, force_polling, *rest)

    monkeypatch.setattr(rn, "RustNotify", limited)
    root = tmp_path / "claude" / "projects" / "-p"
    root.mkdir(parents=True)
    engine = Engine(Store(make_pricer()), [tmp_path / "claude"], debounce_ms=20, step_ms=10)
    engine.backfill()
    started = threading.Event()
    got: list[Turn] = []
    stop = threading.Event()
    th = threading.Thread(
        target=engine.follow,
        args=(stop, lambda changes: got.extend(c.turn for c in changes.turns)),
        kwargs={"on_started": started.set},
        daemon=True,
    )
    th.start()
    try:
        assert started.wait(5), "never announced ready"
        line = orjson.dumps(
            {
                "type": "assistant",
                "sessionId": "s1",
                "timestamp": "2026-01-01T00:00:00.000Z",
                "requestId": "r1",
                "message": {
                    "id": "m1",
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": 5, "output_tokens": 1},
                },
            }
        )
        (root / "s1.jsonl").write_bytes(line + b"\n")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [t.turn_id for t in got] == ["m1:r1"]
        assert "watch limit" in engine.watch_error
    finally:
        stop.set()
        th.join(5)


def test_gemini_project_slugs_load_without_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill worker process never calls roots(): the slug map must still apply."""
    from tokwatch.agents.gemini import Gemini

    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "projects.json").write_text('{"projects": {"/home/me/real": "myslug"}}')
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    agent = Gemini()
    parser = agent.parser(tmp_path / ".gemini" / "tmp" / "myslug" / "chats" / "session-1.json")
    assert parser.project == "/home/me/real"
