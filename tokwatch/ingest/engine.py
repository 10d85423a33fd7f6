"""The data path in one place: discover -> tail -> normalize, feeding a `Store`.

`Engine.backfill()` reads history; `Engine.follow()` then blocks on watchfiles events (no polling
loop re-reading files) and hands each batch of new turns to a callback. Events are only hints:
every touched path is `stat`ed and read from its cursor, so truncation, atomic replacement,
deletion and folders that appear later are all handled the same way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tokwatch.agents import all_agents, get_agent
from tokwatch.agents.base import Agent, LogParser
from tokwatch.core import logs
from tokwatch.core.cache import Cache, Entry, Loaded
from tokwatch.core.models import Session, Turn
from tokwatch.core.store import Changes, SessionKey, Store
from tokwatch.core.tailer import Change, Cursor, open_cursor
from tokwatch.ingest.discover import default_roots, detect, is_candidate, walk, walk_stat

if TYPE_CHECKING:
    import concurrent.futures


log = logging.getLogger(__name__)

RESCAN_SECONDS = 30.0
CACHE_SAVE_SECONDS = 300.0
PARALLEL_MIN_BYTES = 48 << 20  # below this, starting another process costs more than it saves
PARALLEL_CHUNK_BYTES = 4 << 20
HEARTBEAT_MS = 2000  # idle wake-up: missing roots, safety rescan, cache save


def _needle_lines(buf: bytearray, n: int, needle: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of `buf[:n]` holding `needle`, each line once, in order."""
    find, rfind = buf.find, buf.rfind
    i = find(needle, 0, n)
    while i >= 0:
        end = find(b"\n", i, n)
        if end < 0:
            end = n
        yield rfind(b"\n", 0, i) + 1, end
        i = find(needle, end, n)


def _select(buf: bytearray, n: int, needles: tuple[bytes, ...]) -> Iterator[tuple[int, int]]:
    """Where the lines of `buf[:n]` that contain a needle are, in order, found with C-speed
    `find` (memchr and friends).

    Most lines of a log cannot carry usage (Claude user lines with megabytes of tool output):
    they are never copied out, let alone parsed.
    """
    if not needles:
        start = 0
        while start <= n:
            end = buf.find(b"\n", start, n)
            if end < 0:
                end = n
            if end > start:
                yield start, end
            start = end + 1
        return
    if len(needles) == 1:
        yield from _needle_lines(buf, n, needles[0])
    else:  # a line may hold several needles: once, in file order
        yield from sorted({span for nd in needles for span in _needle_lines(buf, n, nd)})


def _misshapen(buf: bytearray, n: int, needles: tuple[bytes, ...]) -> int:
    """How many lines that will not be parsed are not even shaped like a JSON object (`{...}`).

    A JSONL record is an object; anything else is malformed and counted. One walk from newline to
    newline (memchr) checking the bytes on either side: 8x cheaper than counting `}\\n{` joints.
    Only a line that fails it is copied out and looked at closely.
    """
    find = buf.find
    bad = 0
    start = 0
    while start < n:
        end = find(b"\n", start, n)
        if end < 0:
            end = n
        if buf[start] != 123 or buf[end - 1] != 125:  # "{" ... "}"
            line = bytes(buf[start:end])
            stripped = line.strip()
            shaped = stripped[:1] == b"{" and stripped[-1:] == b"}"
            # (a needle line is parsed, and counted there if bad)
            if stripped and not shaped and not any(nd in line for nd in needles):
                bad += 1
        start = end + 1
    return bad


@dataclass(slots=True)
class Followed:
    """One log file being followed: where we are in it and the parser holding its state."""

    agent: Agent
    cursor: Cursor
    _parser: LogParser | None
    document: bool
    skipped: int = 0
    #: The parser's state to restore when it is first needed (a file resumed from the cache
    #: that never changes never builds one).
    _state: dict[str, object] | None = None
    #: The cache entry this file resumed from, while nothing new was read: its turns are then
    #: parsed only if needed, and saved back untouched.
    base: Entry | None = None
    _turns: dict[str, Turn] | None = None
    _sids: set[str] | None = None

    @property
    def parser(self) -> LogParser:
        if self._parser is None:
            self._parser = self.agent.parser(self.cursor.path)
            if self._state is not None:
                self._parser.restore(self._state)
        return self._parser

    @parser.setter
    def parser(self, value: LogParser) -> None:
        self._parser, self._state = value, None

    @property
    def turns(self) -> dict[str, Turn]:
        """This file's turns by id, merged as the store merges them: what the cache remembers."""
        if self._turns is None:
            self._turns = {t.turn_id: t for t in self.base.turns} if self.base is not None else {}
        return self._turns

    def has_turns(self) -> bool:
        return bool(self._turns) if self._turns is not None else bool(self.base and self.base.count)

    def sessions(self) -> set[str]:
        """The session ids of this file's turns (from the cache header while they are not parsed)."""
        if self._sids is None:
            if self._turns is None and self.base is not None:
                self._sids = set(self.base.sessions)
            else:
                self._sids = {t.session_id for t in self.turns.values()}
        return self._sids

    def entry(self) -> Entry:
        """Where this file stands, as the cache (and a backfill worker) records it."""
        c = self.cursor
        b = self.base
        state = self._state if self._parser is None and self._state is not None else self.parser.state()
        if b is not None:  # no new turns since the cache: reuse them as they are
            ident = (c.offset, c.size, c.mtime_ns, c.dev, c.ino, c.fingerprint, c.tail)
            if (
                ident == (b.offset, b.size, b.mtime_ns, b.dev, b.ino, b.fingerprint, b.tail)
                and state == b.state
            ):
                return b
            return Entry(
                self.agent.name, c.dev, c.ino, c.size, c.mtime_ns, c.offset, c.fingerprint, c.fp_len, c.tail, state,
                raw=b.rows_json(), sessions=b.sessions, count=b.count,
            )  # fmt: skip
        return Entry(
            agent=self.agent.name,
            dev=c.dev,
            ino=c.ino,
            size=c.size,
            mtime_ns=c.mtime_ns,
            offset=c.offset,
            fingerprint=c.fingerprint,
            fp_len=c.fp_len,
            tail=c.tail,
            state=state,
            turns=list(self.turns.values()),
        )

    def seed(self, turns: Iterable[Turn]) -> None:
        """Turns this file held before it was rewritten or replaced: billed, so kept, unless the
        file was just read holding them again (those copies are newer)."""
        mine = self.turns
        sids = self.sessions()
        for t in turns:
            if mine.setdefault(t.turn_id, t) is t:
                sids.add(t.session_id)
                self.base = None

    def record(self, turns: list[Turn]) -> None:
        mine = self.turns
        sids = self.sessions()
        for t in turns:
            old = mine.get(t.turn_id)
            mine[t.turn_id] = old.merged(t) if old is not None else t
            sids.add(t.session_id)
        self.base = None


@dataclass(slots=True)
class Progress:
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


@dataclass
class Skips:
    """Malformed lines per file: shown, never fatal."""

    by_file: dict[Path, int] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return sum(self.by_file.values())

    @property
    def files(self) -> int:
        return sum(1 for n in self.by_file.values() if n)


class Engine:
    def __init__(
        self,
        store: Store,
        paths: Sequence[Path] | None = None,
        *,
        debounce_ms: int = 50,
        step_ms: int = 20,
        force_polling: bool = False,
        cache: Cache | None = None,
    ) -> None:
        self.store = store
        self.explicit = bool(paths)
        self.roots: list[Path] = (
            [Path(p).expanduser().absolute() for p in paths] if paths else default_roots()
        )
        self.files: dict[Path, Followed] = {}
        self.skips = Skips()
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling = force_polling
        self.ready = threading.Event()
        self.cache = cache
        self._cached: dict[str, Entry] = {}  # loaded entries not (yet) followed: other roots, deleted logs
        self.archived_files = 0
        self.watch_error = ""  # why OS file watching was replaced by polling, if it was
        self._dirty = False
        self._saved_at = time.monotonic()
        self._pricing_key = ""
        self._index: dict[SessionKey, list[Followed | Entry]] | None = None
        #: Batches handed to `follow`'s callback, and how many of them reached the store (the
        #: consumer calls `delivered_batch` after applying one). The snapshot of the folded
        #: sessions is only saved when they are equal: otherwise it would miss turns whose files
        #: the cache already counts as read.
        self.emitted = 0
        self.delivered = 0
        #: False while the store may lag behind what the files produced: during a backfill, and
        #: in `follow` between reading a batch and handing it out. No snapshot is saved then.
        self._consistent = True
        #: Held while the followed files or their turns change, and by `_session_turns`, which a
        #: view may call from another thread (always after `store.lock`: one lock order).
        self.files_lock = threading.RLock()
        #: Told (from the reading thread) when something went wrong that the user should know
        #: about, with a one-line message; the details and traceback go to the log.
        self.on_problem: Callable[[str], None] | None = None
        self.problems: list[str] = []

    def _problem(self, message: str) -> None:
        """Something failed and was worked around: say so once, never silently."""
        log.warning(message, exc_info=sys.exc_info()[0] is not None)
        if message in self.problems:
            return
        self.problems.append(message)
        if self.on_problem is not None:
            self.on_problem(message)

    # ---------------------------------------------------------------- reading
    def backfill(
        self, progress: Callable[[Progress], None] | None = None, workers: int | None = None
    ) -> Changes:
        """Read every existing log; the store gets all history before `ready`.

        Files the cache vouches for resume at their cached offset. The rest are read from 0,
        spread over the CPU cores when there is enough to read (`workers`, default: the cores).

        The cyclic garbage collector is paused meanwhile: reading creates hundreds of thousands
        of objects, none in cycles, and its passes over them cost 5-10% of a cold start.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._backfill(progress, workers)
        finally:
            if was_enabled:
                gc.enable()

    def _backfill(self, progress: Callable[[Progress], None] | None, workers: int | None) -> Changes:
        self._consistent = False  # (an exception half-way leaves it so: no snapshot saved)
        found_st = [item for root in self.roots for item in walk_stat(root)]
        prog = Progress(files_total=len(found_st), bytes_total=sum(st.st_size for _, st in found_st))
        changes = Changes()
        last_report = 0.0

        def advance(size: int) -> None:
            nonlocal last_report
            prog.files_done += 1
            prog.bytes_done += size
            now = time.monotonic()
            if progress and (now - last_report > 0.1 or prog.files_done == prog.files_total):
                last_report = now
                progress(prog)

        loaded = self.cache.read() if self.cache else Loaded()
        self._cached = loaded.entries
        snap = self._restore(loaded)
        dirty = False
        fresh: list[tuple[Path, int]] = []
        seeds: dict[Path, list[Turn]] = {}
        later: list[list[Turn]] = []  # with a snapshot: applied once every file is followed
        for path, st in found_st:
            size = st.st_size
            entry = self._cached.pop(str(path), None)
            new = self._resume(path, entry, st) if entry else None
            if new is None:
                fresh.append((path, size))
                if entry is not None:
                    seeds[path] = entry.turns  # the file changed while we were away
                continue
            if entry is not None and (new or self._moved(path, entry)):
                dirty = True
            if not snap:
                changes.merge(self._apply_file(path))
            elif new:
                later.append(new)
            advance(size)
        if fresh:
            for path, size in self._read_fresh(fresh, workers):
                f = self.files.get(path)
                if f is not None:  # (files no agent claims are never cached: nothing to save)
                    dirty = True
                    # A log rewritten or replaced since it was cached keeps its earlier turns
                    # (billed); those it still holds were just read again and replace them.
                    with self.files_lock:
                        f.seed(seeds.get(path, ()))
                    if snap:
                        later.append(list(f.turns.values()))
                if not snap:
                    changes.merge(self._apply_file(path))
                advance(size)
        # Every file is followed now: restored sessions may be replayed (by these turns first).
        self.store.hold_replays = False
        for turns in later:
            changes.merge(self.store.apply(turns))
        changes.merge(self._archived(snap))
        self._consistent = True
        if self.cache and (dirty or not snap):
            self.save_cache()
        self.ready.set()
        return changes

    def _scope(self) -> list[str]:
        return sorted(str(r) for r in self.roots)

    def _restore(self, loaded: Loaded) -> bool:
        """Reuse the cached rate cards and, over the same roots and prices, the folded sessions."""
        if not self.cache:
            return False
        pricer = self.store.pricer
        key = self._pricing_key = pricer.key()
        cards = loaded.cards
        if cards and cards.get("pricing") == key and isinstance(cards.get("items"), list):
            pricer.preload(cards["items"])  # type: ignore[arg-type]
        snap = loaded.snapshot
        if not snap or snap.get("pricing") != key or snap.get("scope") != self._scope():
            return False
        try:
            rows = snap["sessions"]
            assert isinstance(rows, list)
            sessions = [Session.from_row(r) for r in rows]
        except Exception:  # anything malformed: replay the files instead
            log.debug("cache snapshot unusable", exc_info=True)
            return False
        self._index = None
        self.store.hold_replays = True  # until every file is followed (end of the backfill)
        self.store.restore(sessions, self._session_turns)
        return True

    def _session_turns(self, key: SessionKey) -> list[Turn]:
        """A restored session's turns, from every file (followed or archived) that has some, in
        the order a replay of the files applies them."""
        with self.files_lock:
            return self._session_turns_locked(key)

    def _session_turns_locked(self, key: SessionKey) -> list[Turn]:
        if self._index is None:
            index: dict[SessionKey, list[Followed | Entry]] = {}
            for f in list(self.files.values()):
                for sid in f.sessions():
                    index.setdefault((f.agent.name, sid), []).append(f)
            for p, e in list(self._cached.items()):
                if e.count and self._in_scope(Path(p)):
                    for sid in e.sessions:
                        index.setdefault((e.agent, sid), []).append(e)
            self._index = index
        out: list[Turn] = []
        for src in self._index.get(key, ()):
            turns = src.turns.values() if isinstance(src, Followed) else src.turns
            out.extend(t for t in turns if t.session_id == key[1])
        return out

    def _apply_file(self, path: Path) -> Changes:
        """Give the store a file's own turns, already merged (streaming duplicates folded): half
        the work of applying them line by line, with the same result."""
        f = self.files.get(path)
        if f is None or not f.turns:
            return Changes()
        return self.store.apply(list(f.turns.values()))

    def _read_fresh(self, todo: list[tuple[Path, int]], workers: int | None) -> Iterator[tuple[Path, int]]:
        """Read files from 0, yielding each (path, size) once it is followed.

        With more than PARALLEL_MIN_BYTES to read and several cores, other processes read part of
        the files and hand back cache-style entries, which this process resumes from exactly as it
        would from the cache (identity and fingerprints checked, anything appended since read).
        """
        total = sum(size for _, size in todo)
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n <= 1 or total < PARALLEL_MIN_BYTES or len(todo) < 2:
            for path, size in todo:
                self._add(path)
                yield path, size
            return
        # Chunks of files, largest files first. The workers take chunks from the front; this
        # process takes them from the back (the small files) for as long as it can still cancel
        # their futures, so both sides stay busy to the end whatever each costs, and it applies
        # what the workers hand back as it goes.
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
        done: set[Path] = set()
        try:
            for path, size in self._read_parallel(chunks, dict(todo), n - 1):
                done.add(path)
                yield path, size
        except Exception as e:  # no worker could start (a sandbox, a process limit...): read here
            self._problem(
                f"Reading history in parallel failed ({logs.one_line(e)}); reading it in one process instead"
            )
            for path, size in todo:
                if path not in done:
                    self._add(path)
                    yield path, size

    def _read_parallel(
        self, chunks: list[list[tuple[Path, int]]], sizes: dict[Path, int], workers: int
    ) -> Iterator[tuple[Path, int]]:
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # safe beside the UI's threads, unlike fork
        log_file = logs.current()
        # (the resource tracker starts with the pool, the workers as work is submitted)
        with _spawnable_stderr():
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_worker_streams,
                initargs=(str(log_file) if log_file else None,),
            )
        with pool:
            with _spawnable_stderr():
                futures = [pool.submit(_read_entries, [str(p) for p, _ in c]) for c in chunks]
            front = 0  # futures before this index were harvested
            back = len(futures)  # chunks from this index on were read here
            while back > front and futures[back - 1].cancel():
                back -= 1
                for path, size in chunks[back]:
                    self._add(path)
                    yield path, size
                while front < back and futures[front].done():
                    yield from self._harvest(futures[front], chunks[front], sizes)
                    front += 1
            for i in range(front, back):
                yield from self._harvest(futures[i], chunks[i], sizes)

    def _harvest(
        self,
        fut: concurrent.futures.Future[list[tuple[str, dict[str, object] | None, int]]],
        chunk: list[tuple[Path, int]],
        sizes: dict[Path, int],
    ) -> Iterator[tuple[Path, int]]:
        """Follow the files a worker read, from the entries it handed back (see `_read_fresh`)."""
        try:
            results = fut.result()
        except Exception as e:  # a worker died: read its files here instead
            self._problem(
                f"A history reading process failed ({logs.one_line(e)}); its files were read in this one"
            )
            results = [(str(p), None, -1) for p, _ in chunk]
        for p_str, raw, skipped in results:
            path = Path(p_str)
            entry = Entry.from_json(raw) if raw is not None else None  # (turns parsed when applied)
            if entry is None or self._resume(path, entry) is None:
                self._add(path)  # unclaimed, the worker failed, or the file changed since
            elif skipped:
                f = self.files[path]
                f.skipped += skipped
                self.skips.by_file[path] = f.skipped
            yield path, sizes[path]

    def _moved(self, path: Path, e: Entry) -> bool:
        f = self.files.get(path)
        return f is None or f.cursor.offset != e.offset or f.cursor.mtime_ns != e.mtime_ns

    def _resume(self, path: Path, e: Entry, st: os.stat_result | None = None) -> list[Turn] | None:
        """Follow `path` from a cache entry: its cached turns plus whatever was appended since
        (the turns that read found; all the file's turns are then in `files[path].turns`).

        None when the entry cannot be trusted (another agent, another file at that path, a
        shorter file, another first-bytes fingerprint): the caller then reads the file from 0.
        """
        agent = get_agent(e.agent)
        cursor = open_cursor(path, st)
        if agent is None or cursor is None or (cursor.dev, cursor.ino) != (e.dev, e.ino):
            return None
        if cursor.size < e.offset:
            return None
        unchanged = (cursor.size, cursor.mtime_ns) == (e.size, e.mtime_ns)
        cursor.offset, cursor.fingerprint, cursor.fp_len, cursor.tail = (
            e.offset,
            e.fingerprint,
            e.fp_len,
            e.tail,
        )
        if not unchanged and not cursor.same_content():  # (same inode, size and mtime: same bytes)
            return None
        cursor.size, cursor.mtime_ns = e.size, e.mtime_ns
        f = Followed(agent, cursor, None, agent.is_document(path), _state=e.state, base=e)
        with self.files_lock:
            self.files[path] = f
            return [] if unchanged else self._read(path)

    def _archived(self, restored: bool) -> Changes:
        """Turns of cached logs that were deleted since: still billed, so still counted (a
        restored snapshot already has them). Sessions left without a log show as archived."""
        turns: list[Turn] = []
        for p, e in self._cached.items():
            path = Path(p)
            if e.count and self._in_scope(path) and not path.exists():
                if not restored:
                    turns.extend(e.turns)
                self.archived_files += 1
        changes = self.store.apply(turns) if turns else Changes()
        live = {(f.agent.name, sid) for f in self.files.values() for sid in f.sessions()}
        with self.store.lock:
            for key, s in self.store.sessions.items():
                s.archived = key not in live
        return changes

    def cache_entries(self) -> dict[str, Entry]:
        with self.files_lock:
            out = dict(self._cached)
            for path, f in self.files.items():
                out[str(path)] = f.entry()
            return out

    def save_cache(self) -> bool:
        """Write the cache: every file's entry, the rate cards, and the folded sessions when the
        store holds exactly what the files produced (every batch read was handed out and applied).
        False when the snapshot had to be left out."""
        if not self.cache:
            return True
        pricer = self.store.pricer
        key = self._pricing_key or pricer.key()
        with self.store.lock:
            entries = self.cache_entries()
            snapshot = None
            if self._consistent and self.emitted == self.delivered:
                snapshot = {"scope": self._scope(), "pricing": key, "sessions": self.store.snapshot()}
        self.cache.save(entries, snapshot, {"pricing": key, "items": pricer.cards_rows()})
        return snapshot is not None

    def _add(self, path: Path) -> list[Turn]:
        """Start following a new file if an agent claims it; its turns so far."""
        with self.files_lock:
            if path in self.files:
                return self._read(path)
            agent = detect(path)
            if agent is None:
                return []
            cursor = open_cursor(path)
            if cursor is None:
                return []
            f = Followed(agent, cursor, agent.parser(path), agent.is_document(path))
            self.files[path] = f
            turns = self._read(path, first=True)
            gone = self._cached.pop(str(path), None)
            if gone is not None and gone.count:
                # a log deleted while we ran (kept as archived) and written again at the same path
                f.seed(gone.turns)
            return turns

    def _read(self, path: Path, first: bool = False) -> list[Turn]:
        with self.files_lock:
            turns = self._read_raw(path, first)
            f = self.files.get(path)
            if turns and f is not None:
                f.record(turns)
            return turns

    def _read_raw(self, path: Path, first: bool) -> list[Turn]:
        f = self.files.get(path)
        if f is None:
            return []
        if f.document:
            if not first and f.cursor.document_changed() is Change.SAME:
                return []
            try:
                turns = f.parser.read_changed(f.cursor)
            except Exception:
                # Torn mid-rewrite or malformed: keep what we had, try again on the next change.
                # A document counts as one skipped record while it stays unreadable.
                f.skipped = 1
                self.skips.by_file[path] = 1
                return []
            if f.skipped:
                f.skipped = 0
                self.skips.by_file.pop(path, None)
            if turns is None:
                self._drop(path)
                return []
            return turns
        change = Change.GROWN if first else f.cursor.check()
        if change is Change.GONE:
            self._drop(path)
            return []
        if change is Change.SAME:
            return []
        if change is Change.RESET:
            # Read again from 0 with a fresh parser. The file's earlier turns stay in `f.turns`:
            # they were billed, and re-read ones replace themselves by id.
            f.parser = f.agent.parser(path)
        return self._lines(path, f)

    def _lines(self, path: Path, f: Followed) -> list[Turn]:
        needles = f.agent.needles
        feed = f.parser.feed
        out: list[Turn] = []
        bad = 0
        for buf, n in f.cursor.blocks():
            bad += _misshapen(buf, n, needles)
            with memoryview(buf) as mv:  # released before the cursor reuses `buf`
                for start, end in _select(buf, n, needles):
                    try:
                        out.extend(feed(bytes(mv[start:end])))
                    except Exception:  # BadLine, or anything a hostile line provokes
                        bad += 1
        bad += f.cursor.oversized
        f.cursor.oversized = 0
        if bad:
            f.skipped += bad
            self.skips.by_file[path] = f.skipped
        return out

    def _drop(self, path: Path) -> None:
        """The file is gone: stop following it. Its turns stay counted (they were billed), in the
        store now and in the cache later, as an archived entry."""
        with self.files_lock:
            f = self.files.pop(path, None)
            if f is not None and f.has_turns():
                self._cached[str(path)] = f.entry()

    def refresh(self, paths: Iterable[Path]) -> list[Turn]:
        """Read whatever changed at these paths (files or folders), as watch events name them."""
        turns: list[Turn] = []
        for p in paths:
            if p in self.files:
                turns.extend(self._read(p))
            elif p.is_dir() and (self._in_scope(p) or any(p in r.parents for r in self.roots)):
                for child in walk(p):
                    if self._in_scope(child):
                        turns.extend(self._add(child))
            elif is_candidate(p) and self._in_scope(p):
                turns.extend(self._add(p))
            else:
                main = self._companion(p)
                if main is not None:
                    turns.extend(self._read(main, first=True))
        return turns

    def _companion(self, p: Path) -> Path | None:
        for agent in all_agents():
            main = agent.companion_of(p)
            if main is not None and main in self.files:
                return main
        return None

    def rescan(self) -> list[Turn]:
        """The slow safety net: re-check every followed file and look for missed ones."""
        turns = self.refresh(list(self.files))
        for root in self.roots:
            for p in walk(root):
                if p not in self.files:
                    turns.extend(self._add(p))
        return turns

    def delivered_batch(self) -> None:
        """A batch from `follow(deferred=True)` is now in the store (call it under `store.lock`)."""
        self.delivered += 1

    def _in_scope(self, p: Path) -> bool:
        return any(p == r or r in p.parents for r in self.roots)

    # ---------------------------------------------------------------- following
    def _watch_set(self) -> list[Path]:
        """Existing folders to watch: roots (or a file root's folder); never single files."""
        out: list[Path] = []
        for r in self.roots:
            target = r if r.is_dir() else (r.parent if r.is_file() else None)
            if target is not None and target not in out:
                out.append(target)
        return out

    def follow(
        self,
        stop: threading.Event,
        on_turns: Callable[[list[Turn]], None],
        on_started: Callable[[], None] | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        """Block until `stop`, calling `on_turns` with each batch of new or updated turns.

        `on_started` is called once the OS watches exist and a rescan has closed the window between
        backfill and watching: from then on, no write is missed or reported late. `on_turns` is
        expected to apply the batch to the store before it returns; with `deferred`, it only
        hands the batch on, and whoever applies it calls `delivered_batch` afterwards.
        """
        callback = on_turns

        def on_turns(turns: list[Turn]) -> None:
            self.emitted += 1
            callback(turns)
            if not deferred:
                self.delivered += 1
            self._consistent = True

        def read(changed: list[Path], rescan: bool) -> list[Turn]:
            """Read a batch; until it is handed out (an interrupt in between), the store lags
            behind the files and no snapshot may be saved."""
            self._consistent = False
            turns = self.refresh(changed)
            if rescan:
                turns.extend(self.rescan())
            if not turns:
                self._consistent = True
            return turns

        # RustNotify is what watchfiles.watch() wraps; used directly so the watches are known to
        # exist before we rescan and announce readiness (watch() only creates them on first next()).
        from watchfiles._rust_notify import RustNotify

        force_polling = self.force_polling or os.environ.get("WATCHFILES_FORCE_POLLING", "") not in ("", "0")
        last_rescan = time.monotonic()
        started = False

        def start() -> None:
            nonlocal started
            if not started:
                started = True
                if on_started:
                    on_started()

        while not stop.is_set():
            watched = self._watch_set()
            if not watched:
                start()
                if stop.wait(2.0):
                    return
                turns = read([], True)
                if turns:
                    on_turns(turns)
                continue
            missing = [r for r in self.roots if not r.exists()]
            try:
                with RustNotify([str(w) for w in watched], False, force_polling, 300, True, True) as watcher:
                    turns = read([], True)
                    if turns:
                        on_turns(turns)
                    start()
                    while True:
                        raw = watcher.watch(self.debounce_ms, self.step_ms, HEARTBEAT_MS, stop)
                        if raw in ("stop", "signal"):
                            return
                        now = time.monotonic()
                        changed = [] if raw == "timeout" else sorted({Path(p) for _, p in raw})
                        rescan = now - last_rescan > RESCAN_SECONDS
                        if rescan:
                            last_rescan = now
                        # What changed is handed out first; the safety rescan (every followed file
                        # stat'ed, every root walked: a second on a big history) comes after, as
                        # its own batch, so it never delays the turn that woke us.
                        for rescanning in (False, True) if rescan else (False,):
                            batch = read([] if rescanning else changed, rescanning)
                            if batch:
                                on_turns(batch)
                                self._dirty = True
                        if self._dirty and now - self._saved_at > CACHE_SAVE_SECONDS:
                            self._saved_at, self._dirty = now, False
                            if not self.save_cache():
                                # the UI had not applied the last batch yet: try again shortly, so
                                # the snapshot (a fast next start) is not lost to a kill
                                self._saved_at, self._dirty = now - CACHE_SAVE_SECONDS + 5, True
                        if any(r.exists() for r in missing) or any(not w.exists() for w in watched):
                            break  # the set of folders to watch changed: restart the watcher
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
                self.watch_error = str(e)
                force_polling = True


def _read_entries(paths: list[str]) -> list[tuple[str, dict[str, object] | None, int]]:
    """Backfill worker (another process): read files from 0 and describe where each stands, as
    the cache would (plain lists and dicts: far cheaper to pickle than thousands of `Turn`s).

    The third item is the file's malformed-line count, or -1 when no agent claimed it.
    """
    gc.disable()  # (see `Engine.backfill`)
    # (roots only matter for walking and watching, which a worker never does)
    engine = Engine(Store(), [Path(paths[0]).parent] if paths else None)
    out: list[tuple[str, dict[str, object] | None, int]] = []
    for p in paths:
        path = Path(p)
        engine._add(path)
        f = engine.files.get(path)
        out.append((p, f.entry().to_json(), f.skipped) if f else (p, None, -1))
    return out


@contextlib.contextmanager
def _spawnable_stderr() -> Iterator[None]:
    """A `sys.stderr` that multiprocessing can hand to the resource tracker it spawns.

    It passes `sys.stderr.fileno()` to the new process; under Textual, `sys.stderr` is a capture
    object whose `fileno()` is -1, and spawning then fails with "bad value(s) in fds_to_keep".
    For the few milliseconds the workers take to start, a real file stands in for it.
    """
    try:
        usable = sys.stderr is None or sys.stderr.fileno() >= 0
    except Exception:  # (no fileno at all: multiprocessing leaves it out itself)
        usable = True
    if usable:
        yield
        return
    saved = sys.stderr
    with open(os.devnull, "w") as null:
        sys.stderr = null
        try:
            yield
        finally:
            sys.stderr = saved


def _worker_streams(log_file: str | None) -> None:
    """Backfill worker start-up: never write on the parent's terminal (the dashboard draws there).

    Standard input and output become /dev/null, standard error the log file (or /dev/null); a
    failure reaches the parent through its future anyway.
    """
    null = os.open(os.devnull, os.O_RDWR)
    err = null
    if log_file:
        with contextlib.suppress(OSError):
            err = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd, target in ((0, null), (1, null), (2, err)):
        os.dup2(target, fd)
