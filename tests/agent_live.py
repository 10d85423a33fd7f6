"""Following an engine in a thread for the agent plug-ins' live tests: the watcher is awaited
(`on_started`), and each test waits for the turn it expects, never for a fixed time."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tokwatch.core.models import Turn
from tokwatch.ingest.engine import Engine

LATENCY = 1.5  # generous for a loaded CI machine; the product target is well under a second


class Following:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.turns: queue.Queue[Turn] = queue.Queue()

    def on_turns(self, turns: list[Turn]) -> None:
        for t in self.engine.store.apply(turns).turns:
            self.turns.put(t)

    def wait_for(self, pred: Callable[[Turn], bool], timeout: float = LATENCY) -> Turn:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                t = self.turns.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            if pred(t):
                return t
        raise AssertionError(f"no matching turn within {timeout} s")


@contextmanager
def following(engine: Engine) -> Iterator[Following]:
    """`engine.follow` in a thread, returned once its OS watches exist (nothing is missed after)."""
    f = Following(engine)
    stop, started = threading.Event(), threading.Event()
    th = threading.Thread(
        target=engine.follow, args=(stop, f.on_turns), kwargs={"on_started": started.set}, daemon=True
    )
    th.start()
    try:
        assert started.wait(10), "the watcher did not start"
        yield f
    finally:
        stop.set()
        th.join(timeout=5)
    assert not th.is_alive()


def replace_atomically(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path` and rename it over it, as the agents do."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
