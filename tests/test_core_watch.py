"""`tokwatch watch --jsonl` as a real process: a turn appended to a log shows up within 0.5 s."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import CLAUDE_MAIN, CLAUDE_SESSION, append_bytes, claude_line, line, write_lines

from tokwatch.ingest.setup import make_pricer

LATENCY = 0.5
SLUG = "-home-u-proj"


class Watch:
    """The subprocess and a reader thread turning its stdout into parsed JSON events."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.events: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            received = time.monotonic()
            try:
                self.events.put((received, json.loads(raw)))
            except ValueError:
                self.events.put((received, {"event": "garbage", "raw": raw.decode(errors="replace")}))

    def wait_for(self, pred: Callable[[dict], bool], timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout} s (exit code {self.proc.poll()})")
            try:
                received, ev = self.events.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            assert ev.get("event") != "garbage", ev
            if pred(ev):
                return received, ev


@pytest.fixture()
def watch(tmp_path: Path) -> Iterator[tuple[Watch, Path]]:
    root = tmp_path / "claude" / "projects"
    log = root / SLUG / f"{CLAUDE_SESSION}.jsonl"
    write_lines(log, [line(CLAUDE_MAIN, 8)])  # one real turn already there (the backfill)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "TOKWATCH_CACHE_DIR": str(tmp_path / "tokwatch-cache"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TOKWATCH_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", "watch", str(tmp_path / "claude"), "--jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        yield Watch(proc), log
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_watch_jsonl_reports_an_appended_turn_within_half_a_second(watch: tuple[Watch, Path]) -> None:
    w, log = watch
    _, ready = w.wait_for(lambda e: e.get("event") == "ready", timeout=20)
    assert ready["sessions"] == 1 and ready["files"] == 1 and ready["turns"] == 1
    assert ready["skipped_lines"] == 0

    new = claude_line(
        "msg_watch_1",
        request_id="req_watch_1",
        input_tokens=2,
        cache_read=26450,
        cache_write=120,
        output=42,
        timestamp="2026-02-12T16:03:00.000Z",
    )
    written = time.monotonic()
    append_bytes(log, new + b"\n")
    received, ev = w.wait_for(lambda e: e.get("event") == "turn", timeout=5)
    latency = received - written
    assert latency < LATENCY, f"turn event {latency:.3f} s after the write"

    assert ev["agent"] == "claude"
    assert ev["session_id"] == CLAUDE_SESSION
    assert ev["turn_id"] == f"claude:{CLAUDE_SESSION}:msg_watch_1:req_watch_1"
    assert ev["model"] == "claude-opus-4-6"
    assert ev["timestamp"] == "2026-02-12T16:03:00.000Z"
    assert ev["tokens"] == {
        "input": 2,
        "cache_read": 26450,
        "cache_write": 120,
        "cache_write_1h": 0,
        "output": 42,
        "reasoning": 0,
        "total": 26614,
        "context": 26572,
    }
    expected_cost = (2 * 5 + 26450 * 0.5 + 120 * 6.25 + 42 * 25) / 1e6
    assert ev["cost_usd"] == pytest.approx(expected_cost, abs=1e-12)
    first_total = 3 + 15005 + 11442 + 9
    sess = ev["session"]
    assert sess["turns"] == 2
    assert sess["total"] == first_total + 26614
    assert sess["input"] == 3 + 2 and sess["output"] == 9 + 42
    first_cost = make_pricer().cost_pico(_first_turn()) / 1e12
    assert sess["cost_usd"] == pytest.approx(first_cost + expected_cost, abs=1e-12)
    assert sess["context_tokens"] == 26572
    assert sess["context_window"] == 200_000


def test_watch_jsonl_finds_a_new_file_in_a_new_subfolder(watch: tuple[Watch, Path], tmp_path: Path) -> None:
    w, _log = watch
    w.wait_for(lambda e: e.get("event") == "ready", timeout=20)
    other = "22222222-3333-4444-5555-666666666666"
    new_file = tmp_path / "claude" / "projects" / "-home-u-new" / "nested" / f"{other}.jsonl"
    written = time.monotonic()
    write_lines(new_file, [claude_line("msg_new_file", session_id=other, input_tokens=7, output=3)])
    received, ev = w.wait_for(lambda e: e.get("event") == "turn", timeout=5)
    assert ev["session_id"] == other
    assert ev["tokens"]["total"] == 10
    assert ev["session"]["turns"] == 1
    assert received - written < 5
    # and it keeps following that new file
    written = time.monotonic()
    append_bytes(new_file, claude_line("msg_new_file_2", session_id=other, input_tokens=1, output=1) + b"\n")
    received, ev = w.wait_for(lambda e: e.get("event") == "turn", timeout=5)
    assert ev["turn_id"].endswith("msg_new_file_2:req_test")
    assert ev["session"]["turns"] == 2
    assert received - written < LATENCY


def _first_turn():
    from tokwatch.agents import get_agent

    (t,) = get_agent("claude").parser(CLAUDE_MAIN).feed(line(CLAUDE_MAIN, 8))
    return t
