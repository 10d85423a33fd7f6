"""Shared paths and small builders for the core tests (test_core_*.py).

Real logs live under tests/fixtures/real/ (copied byte-for-byte from shared/fixtures, same layout);
see tests/fixtures/real/SOURCES.md for where each file comes from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from tokwatch.agents.base import LogParser
from tokwatch.core.models import Turn
from tokwatch.core.pricing import Pricer
from tokwatch.core.store import Changes, Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
REAL = FIXTURES / "real"

CLAUDE_PROJECT = REAL / "claude" / "projects" / "-home-USER-projects-spotter-worktrees-spotter-dov"
CLAUDE_SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"
CLAUDE_MAIN = CLAUDE_PROJECT / f"{CLAUDE_SESSION}.jsonl"
CLAUDE_SUB = CLAUDE_PROJECT / CLAUDE_SESSION / "subagents" / "agent-a2898e3.jsonl"
CLAUDE_COMPACT = CLAUDE_PROJECT / CLAUDE_SESSION / "subagents" / "agent-acompact-e1f845.jsonl"
CLAUDE_API_ERROR = REAL / "claude" / "edge_cases" / "api_error_rate_limit.jsonl"

CODEX_DIR = REAL / "codex" / "sessions"
CODEX_8BFE = CODEX_DIR / "2026/02/23/rollout-2026-02-23T20-34-25-019c8bfe-ec25-79e0-97d7-bda6a9c575ff.jsonl"
CODEX_EXCERPT = (
    CODEX_DIR / "2026/02/23/rollout-2026-02-23T12-54-34-019c8a59-e9dd-71f0-9ae3-4079fe9726a9.excerpt.jsonl"
)
CODEX_RTCHESS = CODEX_DIR / "2025/11/22/rollout-2025-11-22T19-30-00-rtchess-gpt-5.1-codex-max.jsonl"
CODEX_POMODORO = CODEX_DIR / "2025/10/21/rollout-2025-10-21T20-00-00-pomodoro-gpt-5-codex.jsonl"

GEMINI_DIR = REAL / "gemini"
GEMINI_PRO = GEMINI_DIR / "BrianV1981-aim__control_pro.json"
GEMINI_RUN4 = GEMINI_DIR / "BrianV1981-aim__control_pro_run4_abandoned.json"
GEMINI_POMODORO = GEMINI_DIR / "yoavf-ai-sessions__gemini-cli-pomodoro-timer.json"


def dumps(d: object) -> bytes:
    """A JSON line as agents write them (compact)."""
    return json.dumps(d, separators=(",", ":")).encode()


def real_lines(path: Path) -> list[bytes]:
    """The file's lines as the tailer yields them (no newline)."""
    return path.read_bytes().splitlines()


def line(path: Path, n: int) -> bytes:
    """Line `n` (1-based) of a real log."""
    return real_lines(path)[n - 1]


def feed_all(parser: LogParser, lines: Iterable[bytes]) -> list[Turn]:
    out: list[Turn] = []
    for raw in lines:
        out.extend(parser.feed(raw))
    return out


def gemini_messages(path: Path) -> list[dict]:
    return json.loads(path.read_bytes())["messages"]


# Line 31 of the real Claude session: the last streaming copy of msg_01Aci… (output_tokens 299).
_CLAUDE_TEMPLATE_LINE = 31


def claude_line(
    msg_id: str,
    *,
    request_id: str = "req_test",
    session_id: str = CLAUDE_SESSION,
    model: str = "claude-opus-4-6",
    input_tokens: int = 1,
    cache_write: int = 0,
    cache_read: int = 0,
    output: int = 1,
    cache_write_1h: int = 0,
    timestamp: str = "2026-02-12T16:05:15.558Z",
    sidechain: bool = False,
    cwd: str = "/home/USER/projects/spotter-worktrees/spotter-dov",
) -> bytes:
    """A Claude assistant line shaped exactly like a real one (line 31 of the real session)."""
    d = json.loads(line(CLAUDE_MAIN, _CLAUDE_TEMPLATE_LINE))
    d["message"]["id"] = msg_id
    d["message"]["model"] = model
    d["requestId"] = request_id
    d["sessionId"] = session_id
    d["timestamp"] = timestamp
    d["isSidechain"] = sidechain
    d["cwd"] = cwd
    u = d["message"]["usage"]
    u["input_tokens"] = input_tokens
    u["cache_creation_input_tokens"] = cache_write
    u["cache_read_input_tokens"] = cache_read
    u["output_tokens"] = output
    u["cache_creation"] = {
        "ephemeral_1h_input_tokens": cache_write_1h,
        "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
    }
    return json.dumps(d, separators=(",", ":")).encode()


def write_lines(path: Path, lines: Iterable[bytes], mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        for raw in lines:
            f.write(raw + b"\n")


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def isolate_env(monkeypatch, tmp_path: Path) -> None:
    """Keep the CLI away from the user's config and cache: both under this test's tmp_path."""
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "tokwatch-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("TOKWATCH_CONFIG", raising=False)


def make_engine(*paths: Path, pricer: Pricer | None = None) -> Engine:
    return Engine(Store(pricer or make_pricer()), list(paths))


def turn(
    turn_id: str = "t1",
    *,
    agent: str = "claude",
    session_id: str = "s1",
    model: str = "claude-opus-4-6",
    timestamp: float = 1_770_000_000.0,
    **numbers: int | bool | str,
) -> Turn:
    """A hand-built Turn for store/pricing tests."""
    return Turn(
        agent=agent, session_id=session_id, turn_id=turn_id, model=model, timestamp=timestamp, **numbers
    )  # type: ignore[arg-type]


class Following:
    """`engine.follow` in a thread, every recorded batch's turns queued one by one.

    Entering waits for `on_started` (the OS watches exist and the backfill gap is closed), so a
    test writes only after that, never after a sleep; `wait_for` awaits the turn it expects.
    """

    def __init__(self, engine: Engine) -> None:
        import queue
        import threading

        self.engine = engine
        self.turns: queue.Queue[Turn] = queue.Queue()
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=engine.follow,
            args=(self.stop, self._on_turns),
            kwargs={"on_started": self.started.set},
            daemon=True,
        )

    def _on_turns(self, changes: Changes) -> None:
        for c in changes.turns:
            self.turns.put(c.turn)

    def __enter__(self) -> Following:
        self.thread.start()
        assert self.started.wait(10), "follow never started"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()

    def wait_for(self, pred: Callable[[Turn], bool], timeout: float = 5.0) -> Turn:
        import queue
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                t = self.turns.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            if pred(t):
                return t
        raise AssertionError("no matching turn in time")
