"""Following live writes: block on file-system events, read what changed, record it.

Events are hints: every touched path is `stat`ed and read from its cursor, so truncation (arrives
as "modified"), atomic replacement (unordered add/delete), folders created with files already
inside (one event for the top folder: it is walked) and roots that appear later (checked on the
heartbeat) all take the same path. With nothing happening the process sleeps in watchfiles' Rust
loop and wakes every HEARTBEAT_MS for a cheap check; a safety rescan runs every RESCAN_SECONDS.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tokwatch.core.store import Changes

if TYPE_CHECKING:
    from tokwatch.ingest.engine import Engine

log = logging.getLogger(__name__)

RESCAN_SECONDS = 30.0
HEARTBEAT_MS = 2000


class _Callback(Exception):
    """An exception raised by the consumer (a closed stdout, say): not the watcher's business."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def watch_set(engine: Engine) -> list[Path]:
    """Existing folders to watch: roots (or a file root's folder), the folders holding the
    targets of followed symlinks that point outside them, and the engine's extra folders (the
    ledger's); never single files."""
    out: list[Path] = []
    for r in engine.roots:
        target = r if r.is_dir() else (r.parent if r.is_file() else None)
        if target is not None and target not in out:
            out.append(target)
    for target in _links(engine).values():
        real = target.parent
        if real not in out and not any(real == w or w in real.parents for w in out):
            out.append(real)
    for extra in engine.extra_folders():
        if extra.is_dir() and extra not in out:
            out.append(extra)
    return out


def _links(engine: Engine) -> dict[Path, Path]:
    """Followed logs that are symlinks, and their targets (a change there is a change of the log)."""
    out = {}
    for p in list(engine.files):
        if p.is_symlink():
            try:
                out[p] = p.resolve(strict=True)
            except OSError:
                continue
    return out


def follow(
    engine: Engine,
    stop: threading.Event,
    on_changes: Callable[[Changes], None],
    on_started: Callable[[], None] | None = None,
) -> None:
    """Block until `stop`, handing each recorded batch to `on_changes`.

    `on_started` is called once the OS watches exist and a rescan has closed the window between
    backfill and watching: from then on, no write is missed or reported late."""
    # RustNotify is what watchfiles.watch() wraps; used directly so the watches are known to
    # exist before we rescan and announce readiness (watch() only creates them on first next()).
    from watchfiles._rust_notify import RustNotify

    force_polling = engine.force_polling or os.environ.get("WATCHFILES_FORCE_POLLING", "") not in ("", "0")
    last_rescan = time.monotonic()
    started = False

    def start() -> None:
        nonlocal started
        if not started:
            started = True
            if on_started:
                on_started()

    def hand(changes: Changes) -> None:
        if changes:
            try:
                on_changes(changes)
            except BaseException as e:
                raise _Callback(e) from e

    try:
        while not stop.is_set():
            watched = watch_set(engine)
            if not watched:
                start()
                if stop.wait(HEARTBEAT_MS / 1000):
                    return
                hand(engine.rescan())
                continue
            symlinked = _links(engine)
            followed = len(engine.files)
            missing = [r for r in engine.roots if not r.exists()]
            try:
                with RustNotify([str(w) for w in watched], False, force_polling, 300, True, True) as watcher:
                    hand(engine.rescan())
                    start()
                    while True:
                        raw = watcher.watch(engine.debounce_ms, engine.step_ms, HEARTBEAT_MS, stop)
                        if raw in ("stop", "signal"):
                            return
                        now = time.monotonic()
                        changed = [] if raw == "timeout" else sorted({Path(p) for _, p in raw})
                        if changed and symlinked:  # a change at a link's target is a change of the link
                            targets = {t: link for link, t in symlinked.items()}
                            changed += [targets[p] for p in changed if p in targets]
                        rescan = now - last_rescan > RESCAN_SECONDS
                        # What changed is handed out first; the safety rescan (every followed file
                        # stat'ed, every root walked: a second on a big history) comes after, as
                        # its own batch, so it never delays the turn that woke us.
                        if changed:
                            hand(engine.refresh(changed))
                        if rescan:
                            last_rescan = now
                            hand(engine.rescan())
                        if any(r.exists() for r in missing) or any(not w.exists() for w in watched):
                            break  # the set of folders to watch changed: restart the watcher
                        if (rescan or len(engine.files) != followed) and _links(engine) != symlinked:
                            break  # a symlinked log appeared or moved: watch its target's folder
            except FileNotFoundError as e:  # a root vanished between the check and the watch
                log.debug("watch restarted: %s", e)
                if stop.wait(0.5):
                    return
            except OSError as e:
                # The OS refused to watch (inotify limits, an odd filesystem): poll instead of
                # retrying forever, and say so. Polling still reads only what changed.
                if force_polling:
                    raise
                log.warning("file watching unavailable (%s): polling instead", e)
                engine.watch_error = str(e)
                force_polling = True
    except _Callback as e:
        raise e.error from None
