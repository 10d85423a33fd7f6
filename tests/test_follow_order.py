"""The follow loop hands out what changed before its slow safety rescan: the first turn after a
quiet half-minute used to wait for every followed file to be stat'ed and every root walked."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import claude_line, write_lines

from tokwatch.core.store import Changes, Store
from tokwatch.ingest import follow as follow_mod
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer


def test_a_changed_file_is_handed_out_before_the_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_mod, "RESCAN_SECONDS", 0.0)  # every wake-up is also due for a rescan
    monkeypatch.setattr(follow_mod, "HEARTBEAT_MS", 60_000)  # only the file event wakes the loop
    log = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    log.parent.mkdir(parents=True)
    write_lines(log, [claude_line("msg_first", session_id="s", cwd="/p")])
    engine = Engine(Store(make_pricer()), [tmp_path / "claude"], debounce_ms=20, step_ms=10)
    engine.backfill()
    events: list[str] = []
    rescan = engine.rescan

    def recording_rescan() -> Changes:
        events.append("rescan")
        return rescan()

    monkeypatch.setattr(engine, "rescan", recording_rescan)
    started, arrived, stop = threading.Event(), threading.Event(), threading.Event()

    def on_turns(changes: Changes) -> None:
        ids = {c.turn.turn_id for c in changes.turns}
        events.append("turns:" + ",".join(sorted(ids)))
        if any(i.startswith("msg_second") for i in ids):
            arrived.set()

    worker = threading.Thread(target=engine.follow, args=(stop, on_turns), kwargs={"on_started": started.set})
    worker.start()
    try:
        assert started.wait(10)
        events.append("append")
        write_lines(log, [claude_line("msg_second", session_id="s", cwd="/p")], mode="ab")
        assert arrived.wait(10)
    finally:
        stop.set()
        worker.join(10)
    after = events[events.index("append") + 1 :]
    first_batch = next(i for i, e in enumerate(after) if e.startswith("turns:"))
    assert "rescan" not in after[:first_batch], events
    assert "msg_second" in after[first_batch]


def test_a_log_that_is_a_symlink_to_a_file_elsewhere_is_followed_live(tmp_path: Path) -> None:
    """Only the roots are watched: a log symlinked to a file outside them used to update only on
    the 30 s rescan. The target's folder is watched too."""
    from helpers import Following

    target = tmp_path / "elsewhere" / "real.jsonl"
    write_lines(target, [claude_line("msg_first", session_id="s", cwd="/p")])
    link = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    engine = Engine(Store(make_pricer()), [tmp_path / "claude"], debounce_ms=20, step_ms=10)
    engine.backfill()
    assert engine.store.sessions[("claude", "s")].totals.turns == 1
    with Following(engine) as live:
        write_lines(target, [claude_line("msg_second", session_id="s", cwd="/p")], mode="ab")
        live.wait_for(lambda t: t.turn_id.startswith("msg_second"), timeout=5.0)  # (the rescan is 30 s away)
    assert engine.store.sessions[("claude", "s")].totals.turns == 2
