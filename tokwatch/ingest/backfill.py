"""Reading many files from 0, spread over the CPU cores.

With more than PARALLEL_MIN_BYTES to read and several cores, spawned worker processes read part
of the files and hand back, per file, its cursor record and turns. This process then follows each
such file from that record exactly as from the ledger (identity and fingerprints checked, anything
appended since read on), so a worker's result is never trusted blindly.

Files are cut into chunks of about 4 MB, largest first. The workers take chunks from the front;
this process takes them from the back for as long as it can still cancel their futures, and between
two chunks it takes in what the workers handed back: both sides stay busy to the end.

Workers are spawned, not forked (the dashboard backfills from a thread), with their standard
streams on /dev/null: they never depend on the parent's (Textual replaces `sys.stderr` with an
object without a file descriptor). They exit when their parent dies (`_orphan_watch`). If the
pool cannot start or a worker fails, its files are read here instead: slower, never lost.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from tokwatch.core import logs, observations
from tokwatch.core.ledger import FileRecord
from tokwatch.core.models import Turn
from tokwatch.ingest.files import Followed, Skips, open_fresh, read

log = logging.getLogger(__name__)

PARALLEL_MIN_BYTES = 48 << 20  # below this, starting another process costs more than it saves
PARALLEL_CHUNK_BYTES = 4 << 20

#: (path, its record or None when no agent claims it, its turns as JSON rows, skipped lines,
#: its observations as JSON rows)
WorkerResult = tuple[str, FileRecord | None, bytes, int, bytes]
#: What reading one file gave: the file followed (None: unclaimed or unreadable) and its turns.
Taken = tuple[Path, int, Followed | None, list[Turn]]


def read_from_zero(path: Path, skips: Skips) -> tuple[Followed | None, list[Turn]]:
    f = open_fresh(path)
    if f is None:
        return None, []
    turns = read(f, skips, first=True)
    return f, turns or []


def read_all(
    todo: list[tuple[Path, int]],
    skips: Skips,
    resume: Callable[[Path, FileRecord], Followed | None],
    workers: int | None = None,
    on_error: Callable[[str], None] | None = None,
) -> Iterator[Taken]:
    """Read `todo` (path, size) from 0, in parallel when worth it; yields each file once."""
    total = sum(size for _, size in todo)
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n <= 1 or total < PARALLEL_MIN_BYTES or len(todo) < 2:
        for path, size in todo:
            yield (path, size, *read_from_zero(path, skips))
        return
    try:
        yield from _parallel(todo, skips, resume, n - 1, on_error)
    except _PoolFailed as e:
        # The pool could not start (or broke): say so, and read what is left here.
        if on_error is not None:
            on_error(
                f"Reading history in parallel failed ({logs.one_line(e.cause)}); reading it in one process instead"
            )
        for path, size in todo:
            if path not in e.done:
                yield (path, size, *read_from_zero(path, skips))


class _PoolFailed(Exception):
    def __init__(self, cause: BaseException, done: set[Path]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.done = done


def _chunks(todo: list[tuple[Path, int]]) -> list[list[tuple[Path, int]]]:
    chunks: list[list[tuple[Path, int]]] = []
    chunk: list[tuple[Path, int]] = []
    acc = 0
    for item in sorted(todo, key=lambda t: -t[1]):
        chunk.append(item)
        acc += item[1]
        if acc >= PARALLEL_CHUNK_BYTES:
            chunks.append(chunk)
            chunk, acc = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def _parallel(
    todo: list[tuple[Path, int]],
    skips: Skips,
    resume: Callable[[Path, FileRecord], Followed | None],
    n: int,
    on_error: Callable[[str], None] | None,
) -> Iterator[Taken]:
    import concurrent.futures
    import multiprocessing

    chunks = _chunks(todo)
    done: set[Path] = set()

    def here(chunk: list[tuple[Path, int]]) -> Iterator[Taken]:
        for path, size in chunk:
            done.add(path)
            yield (path, size, *read_from_zero(path, skips))

    def harvest(
        fut: concurrent.futures.Future[list[WorkerResult]], chunk: list[tuple[Path, int]]
    ) -> Iterator[Taken]:
        try:
            results = fut.result()
        except Exception as e:  # a worker died: read its files here instead
            if on_error is not None:
                on_error(
                    f"A history reading process failed ({logs.one_line(e)}); its files were read in this one"
                )
            yield from here(chunk)
            return
        sizes = dict(chunk)
        for p_str, rec, rows, skipped, observed in results:
            path = Path(p_str)
            done.add(path)
            f = resume(path, rec) if rec is not None else None
            if f is None:  # unclaimed, or the file changed since the worker read it
                yield (path, sizes[path], *read_from_zero(path, skips))
                continue
            f.skipped = skipped
            skips.set(path, skipped)
            turns = [Turn.from_row(r) for r in orjson.loads(rows)]
            f.observed = [observations.from_row(r) for r in orjson.loads(observed)]
            more = read(f, skips)  # whatever was appended after the worker's read
            yield path, sizes[path], f, turns + (more or [])

    ctx = multiprocessing.get_context("spawn")  # safe beside the UI's threads, unlike fork
    try:
        _start_resource_tracker()
        log_file = logs.current()
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=n,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(), str(log_file) if log_file else None),
        )
        futures = [pool.submit(read_paths, [str(p) for p, _ in c]) for c in chunks]
    except Exception as e:  # e.g. no usable standard streams for the resource tracker
        raise _PoolFailed(e, done) from e
    try:
        front = 0  # futures before this index were harvested
        back = len(futures)  # chunks from this index on were read here
        while back > front and futures[back - 1].cancel():
            back -= 1
            yield from here(chunks[back])
            while front < back and futures[front].done():
                yield from harvest(futures[front], chunks[front])
                front += 1
        for i in range(front, back):
            yield from harvest(futures[i], chunks[i])
    finally:
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_tracker_lock = threading.Lock()


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with usable standard streams.

    It passes `sys.stderr.fileno()` to its process; under Textual `sys.stderr` is a capture object
    whose `fileno()` is -1, and the spawn fails ("bad value(s) in fds_to_keep"). For the moment
    it starts, `sys.stderr` is /dev/null: the tracker never writes to the user's terminal."""
    from multiprocessing import resource_tracker

    with _tracker_lock:
        try:
            ok = sys.stderr is not None and sys.stderr.fileno() >= 0
        except (AttributeError, OSError, ValueError):
            ok = False
        if ok:
            resource_tracker.ensure_running()
            return
        saved = sys.stderr
        with open(os.devnull, "w") as null:
            sys.stderr = null
            try:
                resource_tracker.ensure_running()
            finally:
                sys.stderr = saved


def _worker_init(parent: int, log_file: str | None) -> None:
    """A worker never writes to the user's terminal (the dashboard draws there): its standard input
    and output are /dev/null, its standard error the log file (else /dev/null). It ends itself when
    its parent is gone (killed mid-backfill: no orphan blocked on a pipe)."""
    null = os.open(os.devnull, os.O_RDWR)
    err = null
    if log_file:
        with contextlib.suppress(OSError):
            err = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd, target in ((0, null), (1, null), (2, err)):
        with contextlib.suppress(OSError):
            os.dup2(target, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (lives as long as the worker)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True, name="tokwatch-orphan-watch").start()


def _orphan_watch(parent: int) -> None:
    import time

    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def read_paths(paths: list[str]) -> list[WorkerResult]:
    """Backfill worker (another process): read files from 0 and describe where each stands."""
    gc.disable()  # reading creates many objects and no cycles: the collector's passes are waste
    skips = Skips()
    out: list[WorkerResult] = []
    for p in paths:
        path = Path(p)
        f, turns = read_from_zero(path, skips)
        if f is None:
            out.append((p, None, b"[]", 0, b"[]"))
            continue
        obs = orjson.dumps([o.to_row() for o in f.take_observed()])
        out.append((p, f.record(), orjson.dumps([t.storable().to_row() for t in turns]), f.skipped, obs))
    return out
