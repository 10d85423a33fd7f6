"""The data path in one place: discover -> tail -> normalize, recorded by the store and the ledger.

`Engine.backfill()` reads history: files the ledger has a cursor for resume there (unchanged files
are not even opened), the rest are read from 0 (`backfill.read_all`, in parallel when worth it).
`Engine.follow()` then blocks on watchfiles events (`follow.py`) and records each batch. The
thread that runs them is the only one that changes the store and the ledger; each batch's
`Changes` (turns with their costs, and the sessions as they now stand) are what views receive.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokwatch.agents import all_agents
from tokwatch.core.ledger import FileRecord
from tokwatch.core.models import Turn
from tokwatch.core.observations import Observation
from tokwatch.core.store import Changes, SessionKey, Store
from tokwatch.fsio import stat_regular
from tokwatch.ingest import backfill as bf
from tokwatch.ingest import follow as fl
from tokwatch.ingest.discover import default_roots, is_candidate, walk, walk_stat
from tokwatch.ingest.files import Followed, Skips, open_fresh, read, resume

log = logging.getLogger(__name__)

#: A backfill records what it read in transactions of about this many turns (or files): a kill
#: loses at most the uncommitted part, which the next start reads again.
COMMIT_TURNS = 20_000
COMMIT_FILES = 256


@dataclass(slots=True)
class Progress:
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


class Engine:
    def __init__(
        self,
        store: Store,
        paths: Sequence[Path] | None = None,
        *,
        debounce_ms: int = 50,
        step_ms: int = 25,
        force_polling: bool = False,
        legacy_cache: Path | None = None,
    ) -> None:
        self.store = store
        self.ledger = store.ledger
        self.explicit = bool(paths)
        self.roots: list[Path] = (
            [Path(p).expanduser().absolute() for p in paths] if paths else default_roots()
        )
        self._root_prefixes = [(str(r), str(r).rstrip(os.sep) + os.sep) for r in self.roots]
        self.files: dict[Path, Followed] = {}
        self.skips = Skips()
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling = force_polling
        self.legacy_cache = legacy_cache
        self.ready = threading.Event()
        #: cursors the ledger holds for files not followed (yet): other roots, deleted logs
        self.records: dict[str, FileRecord] = {}
        self.archived_files = 0
        #: files no agent claimed, with the (size, mtime) they had: not sniffed again until they change
        self.unclaimed: dict[Path, tuple[int, int]] = {}
        self.watch_error = ""  # why OS file watching was replaced by polling, if it was
        #: Problems worth telling the user once (a damaged ledger moved aside, a fallback taken),
        #: each a one-line message; the details and tracebacks go to the log (`core.logs`).
        self.problems: list[str] = []
        #: Told (from the reading thread) of each problem as it happens: the dashboard shows it.
        self.on_problem: Callable[[str], None] | None = None

    # ---------------------------------------------------------------- reading history
    def backfill(
        self, progress: Callable[[Progress], None] | None = None, workers: int | None = None
    ) -> Changes:
        """Read every existing log into the store and the ledger; sessions of the scope that the
        ledger already holds are shown as it holds them (nothing replayed).

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
        opened = self.ledger.open()
        for message in opened.messages():
            self._problem(message)
        self._prices()
        if self.legacy_cache is not None:
            from tokwatch.ingest.legacy import import_cache

            for message in import_cache(self.store, self.legacy_cache):
                self._problem(message)
        records, bad = self.ledger.file_records()
        if bad:
            self._problem(
                f"{bad} damaged file records in the ledger were discarded; those logs are read again"
            )
        self.records = records
        self.store.everything = not self.explicit
        self.store.load(self._scope_sessions(records) if self.explicit else None)
        if opened.moved_aside is not None or self.store.bad_rows:
            self.store.refold()

        found = [item for root in self.roots for item in walk_stat(root)]
        prog = Progress(files_total=len(found), bytes_total=sum(st.st_size for _, st in found))
        changes = Changes()
        pending = _Pending()
        last_report = 0.0

        def advance(size: int) -> None:
            nonlocal last_report
            prog.files_done += 1
            prog.bytes_done += size
            now = time.monotonic()
            if progress and (now - last_report > 0.1 or prog.files_done == prog.files_total):
                last_report = now
                progress(prog)

        def take(path: Path, f: Followed | None, turns: list[Turn]) -> None:
            if f is None:
                self._unclaimed(path)
                return
            self.files[path] = f
            if f.dirty or turns:
                f.dirty = False
                pending.add(turns, f.record(), f.take_observed())
                if pending.full():
                    changes.merge(pending.flush(self.store))

        fresh: list[tuple[Path, int]] = []
        for path, st in found:
            rec = self.records.pop(str(path), None)
            f = resume(path, rec, st) if rec is not None else None
            if f is None:
                fresh.append((path, st.st_size))
                continue
            turns = read(f, self.skips)
            if turns is None:
                continue
            take(path, f, turns)
            advance(st.st_size)
        if fresh:
            for path, size, f, turns in bf.read_all(
                fresh, self.skips, self._resume_worker, workers, self._problem
            ):
                take(path, f, turns)
                advance(size)
        changes.merge(pending.flush(self.store))
        changes.merge(self._mark_archived())
        self._save_cards()
        self.ready.set()
        return changes

    def _problem(self, message: str) -> None:
        """Something failed and was worked around, or the user should know: said once, never
        silently (the log gets the details)."""
        log.warning(message, exc_info=sys.exc_info()[0] is not None)
        if message in self.problems:
            return
        self.problems.append(message)
        if self.on_problem is not None:
            self.on_problem(message)

    def _resume_worker(self, path: Path, rec: FileRecord) -> Followed | None:
        return resume(path, rec)

    def _prices(self) -> None:
        """Reuse the rate cards saved with the ledger's prices; re-price history when they changed."""
        import orjson

        pricer = self.store.pricer
        key = pricer.key()
        saved = self.ledger.meta("pricing")
        if saved == key:
            cards = self.ledger.meta("cards")
            if cards:
                with contextlib.suppress(orjson.JSONDecodeError, TypeError):
                    pricer.preload(orjson.loads(cards))
            return
        if saved is not None and self.ledger.count_turns():
            n = self.store.reprice()
            log.info("prices changed: %d turns re-priced", n)
        self.ledger.set_meta("pricing", key)

    def _save_cards(self) -> None:
        """The rate cards resolved so far, so a later start never imports genai-prices."""
        import orjson

        rows = self.store.pricer.cards_rows()
        blob = orjson.dumps(rows).decode()
        if rows and blob != self.ledger.meta("cards"):
            self.ledger.set_meta("cards", blob)

    def _scope_sessions(self, records: dict[str, FileRecord]) -> list[SessionKey]:
        """Sessions of the files under the roots (deleted ones included): what a view of these
        paths shows. Without paths, every session the ledger holds is shown."""
        out: set[SessionKey] = set()
        for p, rec in records.items():
            if self.in_scope(p):
                out.update((rec.agent, sid) for sid in rec.sessions)
        return sorted(out)

    def _mark_archived(self) -> Changes:
        """Sessions none of whose logs exist any more (agent cleanup) show as archived; their
        turns stay counted (they were billed)."""
        self.archived_files = sum(
            1 for p, rec in self.records.items() if rec.turns and self.in_scope(p) and not os.path.exists(p)
        )
        live = {(f.agent.name, sid) for f in self.files.values() for sid in f.sessions}
        return Changes(sessions=self.store.mark_archived(live))

    # ---------------------------------------------------------------- following
    def refresh(self, paths: Iterable[Path]) -> Changes:
        """Read whatever changed at these paths (files or folders, as watch events name them) and
        record it: turns and the files' cursors in one transaction."""
        turns: list[Turn] = []
        moved: list[Followed] = []
        known = len(self.files)
        dropped = False
        ledger_changed = False
        for p in paths:
            if p in self._ledger_files:
                ledger_changed = True  # another process (`tokwatch statusline`) may have recorded limits
                continue
            f = self.files.get(p)
            if f is not None:
                got = read(f, self.skips)
                if got is None:  # deleted: its turns stay billed, its record stays in the ledger
                    self.records[str(p)] = self.files.pop(p).record()
                    dropped = True
                    continue
                turns += got
                if f.dirty:
                    moved.append(f)
            elif p.is_dir() and (self.in_scope(p) or any(p in r.parents for r in self.roots)):
                for child in walk(p):
                    if self.in_scope(child) and child not in self.files:
                        turns += self._add(child, moved)
            elif is_candidate(p) and self.in_scope(p):
                turns += self._add(p, moved)
            else:
                main = self._companion(p)
                if main is not None:
                    f = self.files[main]
                    got = read(f, self.skips, first=True)
                    turns += got or []
                    if f.dirty:
                        moved.append(f)
        records = []
        observed: list[Observation] = []
        for f in moved:
            f.dirty = False
            records.append(f.record())
            observed += f.take_observed()
        changes = self.store.apply(turns, records, observed) if turns or records else Changes()
        if dropped or len(self.files) != known:
            changes.merge(self._mark_archived())
        if ledger_changed:
            changes.merge(Changes(limits=self.store.foreign_limits()))
        return changes

    @property
    def _ledger_files(self) -> frozenset[Path]:
        """The ledger's files: a change there that this process did not make is another tokwatch's."""
        path = self.ledger.path
        if path is None:
            return frozenset()
        path = path.absolute()
        return frozenset({path, path.with_name(path.name + "-wal")})

    def extra_folders(self) -> list[Path]:
        """Folders to watch besides the logs' roots: the ledger's, where `tokwatch statusline`
        records Claude's plan windows (a change there is read in `refresh`)."""
        path = self.ledger.path
        return [] if path is None else [path.absolute().parent]

    def _add(self, path: Path, moved: list[Followed]) -> list[Turn]:
        """Start following a new file if an agent claims it; its turns so far."""
        if path in self.files:
            return []
        rec = self.records.pop(str(path), None)
        f = resume(path, rec) if rec is not None else None
        first = f is None
        if f is None:
            st = stat_regular(path)
            if st is None or self.unclaimed.get(path) == (st.st_size, st.st_mtime_ns):
                return []  # gone, or a file no agent claimed that has not changed since
            f = open_fresh(path, st)
            if f is None:
                self.unclaimed[path] = (st.st_size, st.st_mtime_ns)
                return []
            self.unclaimed.pop(path, None)
        self.files[path] = f
        turns = read(f, self.skips, first=first) or []
        moved.append(f)
        return turns

    def _unclaimed(self, path: Path) -> None:
        st = stat_regular(path)
        if st is not None:
            self.unclaimed[path] = (st.st_size, st.st_mtime_ns)

    def _companion(self, p: Path) -> Path | None:
        for agent in all_agents():
            main = agent.companion_of(p)
            if main is not None and main in self.files:
                return main
        return None

    def rescan(self) -> Changes:
        """The slow safety net: re-check every followed file and look for missed ones."""
        paths: list[Path] = list(self.files)
        for root in self.roots:
            paths += [p for p in walk(root) if p not in self.files]
        return self.refresh(paths)

    def in_scope(self, p: Path | str) -> bool:
        """Under one of the roots (or one of them). Compared as text: paths here are absolute and
        normalised (as `Path` prints them), and `Path.parents` cost 0.1 s per warm start."""
        s = str(p)
        return any(s == r or s.startswith(prefix) for r, prefix in self._root_prefixes)

    def follow(
        self,
        stop: threading.Event,
        on_changes: Callable[[Changes], None],
        on_started: Callable[[], None] | None = None,
    ) -> None:
        """Block until `stop`, recording each batch and handing its `Changes` to `on_changes`
        (called on this thread; an exception it raises ends the loop and propagates)."""
        fl.follow(self, stop, on_changes, on_started)


class _Pending:
    """What a backfill read and has not recorded yet: committed in bounded transactions."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.files: list[FileRecord] = []
        self.observed: list[Observation] = []

    def add(self, turns: list[Turn], rec: FileRecord, observed: list[Observation]) -> None:
        self.turns += turns
        self.files.append(rec)
        self.observed += observed

    def full(self) -> bool:
        return len(self.turns) >= COMMIT_TURNS or len(self.files) >= COMMIT_FILES

    def flush(self, store: Store) -> Changes:
        if not self.turns and not self.files:
            return Changes()
        changes = store.apply(self.turns, self.files, self.observed, report=False)
        self.turns, self.files, self.observed = [], [], []
        return changes
