"""One followed log file: its cursor, its parser, and reading whatever it gained since.

`open_fresh` starts a file at 0; `resume` continues from the cursor the ledger recorded, but only
while the file is provably the same one (same device and inode, not shorter than the offset, the
same first bytes and the same bytes before the offset). `read` returns the turns of what is new,
counting malformed lines; a truncated, replaced or rewritten file is read again from 0 (the
ledger keys turns, so a re-read never counts twice, and the turns it no longer holds stay billed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tokwatch.agents import get_agent
from tokwatch.agents.base import Agent, LogParser
from tokwatch.core.ledger import FileRecord
from tokwatch.core.models import Turn
from tokwatch.core.observations import Observation
from tokwatch.core.tailer import Change, Cursor, open_cursor
from tokwatch.ingest.discover import detect
from tokwatch.ingest.select import misshapen, select_lines


@dataclass(slots=True)
class Followed:
    """One log file being followed: where we are in it and the parser holding its state."""

    agent: Agent
    cursor: Cursor
    _parser: LogParser | None
    document: bool
    skipped: int = 0
    #: The parser state to restore when it is first needed (a resumed file that never changes
    #: never builds a parser).
    _state: dict[str, object] | None = None
    #: The sessions this file produced turns for, and how many turn records it produced.
    sessions: set[str] = field(default_factory=set)
    turns: int = 0
    #: The cursor (or parser state) moved since the ledger last recorded it.
    dirty: bool = False
    #: What the parser observed besides turns (limit samples, compactions), not recorded yet.
    observed: list[Observation] = field(default_factory=list)

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

    def record(self) -> FileRecord:
        """Where this file stands, as the ledger records it (and a backfill worker hands it back)."""
        c = self.cursor
        state = self._state if self._parser is None and self._state is not None else self.parser.state()
        return FileRecord(
            str(c.path), self.agent.name, c.dev, c.ino, c.size, c.mtime_ns, c.offset, c.fingerprint, c.fp_len,
            c.tail, state, sorted(self.sessions), self.turns,
        )  # fmt: skip

    def noted(self, turns: list[Turn]) -> list[Turn]:
        for t in turns:
            self.sessions.add(t.session_id)
        self.turns += len(turns)
        self.observed += self.parser.observations()
        return turns

    def take_observed(self) -> list[Observation]:
        """The observations read since the last call (recorded with the batch's turns)."""
        out, self.observed = self.observed, []
        return out


def open_fresh(path: Path, st: os.stat_result | None = None) -> Followed | None:
    """Follow a file from 0 if an agent claims it (None: unclaimed, or not a regular file)."""
    agent = detect(path)
    if agent is None:
        return None
    cursor = open_cursor(path, st)
    if cursor is None:
        return None
    return Followed(agent, cursor, agent.parser(path), agent.is_document(path), dirty=True)


def resume(path: Path, rec: FileRecord, st: os.stat_result | None = None) -> Followed | None:
    """Follow `path` from its recorded cursor, or None when the record cannot be trusted (another
    agent, another file at that path, a shorter file, other first bytes): read it from 0 then.

    A file whose size and mtime did not change is not even opened."""
    agent = get_agent(rec.agent)
    cursor = open_cursor(path, st)
    if agent is None or cursor is None:
        return None
    if agent.is_document(path):
        # A whole document is read whole on any change, and its parser state describes content,
        # not bytes: it is carried even across a replacement (a new inode), so a parser that keeps
        # what it counted there (running totals) never counts a total twice.
        cursor.dev, cursor.ino, cursor.size, cursor.mtime_ns = rec.dev, rec.ino, rec.size, rec.mtime_ns
        cursor.offset, cursor.fingerprint, cursor.fp_len, cursor.tail = (
            rec.offset,
            rec.fingerprint,
            rec.fp_len,
            rec.tail,
        )
        return Followed(
            agent, cursor, None, True, _state=rec.state, sessions=set(rec.sessions), turns=rec.turns
        )
    if (cursor.dev, cursor.ino) != (rec.dev, rec.ino):
        return None
    if cursor.size < rec.offset:
        return None
    if cursor.size == rec.size and cursor.mtime_ns != rec.mtime_ns:
        return None  # the same size written again: rewritten in place (see `Cursor.check`)
    unchanged = (cursor.size, cursor.mtime_ns) == (rec.size, rec.mtime_ns)
    cursor.offset, cursor.fingerprint, cursor.fp_len, cursor.tail = (
        rec.offset,
        rec.fingerprint,
        rec.fp_len,
        rec.tail,
    )
    if not unchanged and not cursor.same_content():
        return None
    cursor.size, cursor.mtime_ns = rec.size, rec.mtime_ns
    return Followed(
        agent,
        cursor,
        None,
        agent.is_document(path),
        _state=rec.state,
        sessions=set(rec.sessions),
        turns=rec.turns,
    )


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

    def set(self, path: Path, n: int) -> None:
        if n:
            self.by_file[path] = n
        else:
            self.by_file.pop(path, None)


def read(f: Followed, skips: Skips, first: bool = False) -> list[Turn] | None:
    """The turns of whatever `f` gained since the last read; None when the file is gone."""
    path = f.cursor.path
    if f.document:
        if not first and f.cursor.document_changed() is Change.SAME:
            return []
        try:
            turns = f.parser.read_changed(f.cursor)
        except Exception:
            # Torn mid-rewrite or malformed: keep what we had, try again on the next change.
            # A document counts as one skipped record while it stays unreadable.
            f.skipped = 1
            skips.set(path, 1)
            return []
        # (a document is read whole: its count is that of its malformed messages now)
        bad = f.parser.skipped if turns is not None else 0
        if f.skipped != bad:
            f.skipped = bad
            skips.set(path, bad)
        if turns is None:
            return None
        f.dirty = True
        return f.noted(turns)
    change = Change.GROWN if first else f.cursor.check()
    if change is Change.GONE:
        return None
    if change is Change.SAME:
        return []
    if change is Change.RESET:
        # Read again from 0 with a fresh parser. The file's earlier turns stay in the ledger:
        # they were billed, and re-read ones replace themselves by id.
        f.parser = f.agent.parser(path)
    f.dirty = True
    return f.noted(_lines(f, skips))


def _lines(f: Followed, skips: Skips) -> list[Turn]:
    needles = f.agent.needles
    feed = f.parser.feed
    out: list[Turn] = []
    bad = 0
    for buf, n in f.cursor.blocks():
        bad += misshapen(buf, n, needles)
        with memoryview(buf) as mv:  # released before the cursor reuses `buf`
            for start, end in select_lines(buf, n, needles):
                try:
                    out.extend(feed(bytes(mv[start:end])))
                except Exception:  # BadLine, or anything a hostile line provokes
                    bad += 1
    bad += f.cursor.oversized
    f.cursor.oversized = 0
    if bad:
        f.skipped += bad
        skips.set(f.cursor.path, f.skipped)
    return out
