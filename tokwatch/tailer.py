"""Byte-offset tailing of append-only logs, robust to truncation, replacement and torn writes.

One `Cursor` per file: identity (device, inode), the offset just past the last complete line, and
a fingerprint of the first bytes. Files are opened, read from the offset and closed on each change
(never held open: thousands of sessions, rotation, atomic replaces). A partial last line is left
on disk until its newline arrives. Nothing here parses JSON or knows about agents.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

FP_LEN = 1024  # JSONL lines share their first keys: 1 KiB reaches ids and timestamps
TAIL_LEN = 64
CHUNK = 1 << 20
MAX_LINE = 256 << 20  # a line longer than this is not a log record we can afford to parse


def stat_regular(path: Path) -> os.stat_result | None:
    """The file's stat if it is (still) a regular file; None if gone or anything else."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def open_regular(path: Path) -> BinaryIO | None:
    """Open for reading only if it is a regular file: never blocks on a FIFO swapped in by a race."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb")
    except OSError:
        os.close(fd)
        return None


class Change(Enum):
    SAME = "same"
    GROWN = "grown"  # new bytes after the offset
    RESET = "reset"  # truncated, replaced or rewritten: read again from 0
    GONE = "gone"  # deleted, or no longer a regular file


@dataclass(slots=True)
class Cursor:
    path: Path
    dev: int = 0
    ino: int = 0
    offset: int = 0
    size: int = 0
    mtime_ns: int = 0
    fingerprint: bytes = b""
    tail: bytes = b""  # the bytes just before `offset`: a rewrite in place changes them
    oversized: int = 0  # lines passed over for being longer than MAX_LINE

    def check(self) -> Change:
        """What happened to the file since the last read: a `stat`, and when it grew, a read of
        its first KiB and of the 64 bytes before the offset (`same_content`)."""
        st = stat_regular(self.path)
        if st is None:
            return Change.GONE
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) and self.ino:
            self._reset(st)
            return Change.RESET
        if st.st_size < self.offset:
            self._reset(st)
            return Change.RESET
        if st.st_size == self.size and st.st_mtime_ns == self.mtime_ns:
            return Change.SAME
        if not self.same_content():
            self._reset(st)
            return Change.RESET
        if not self.ino:
            self.dev, self.ino = st.st_dev, st.st_ino
        self.size, self.mtime_ns = st.st_size, st.st_mtime_ns
        return Change.GROWN if st.st_size > self.offset else Change.SAME

    def _reset(self, st: os.stat_result) -> None:
        self.dev, self.ino = st.st_dev, st.st_ino
        self.offset = 0
        self.fingerprint = b""
        self.tail = b""
        self.size, self.mtime_ns = st.st_size, st.st_mtime_ns

    def same_content(self) -> bool:
        """Do the first bytes and the bytes before the offset still read as we left them?"""
        if not self.fingerprint and not self.tail:
            return True
        f = open_regular(self.path)
        if f is None:
            return False
        try:
            with f:
                if f.read(len(self.fingerprint)) != self.fingerprint:
                    return False
                if self.tail:
                    f.seek(self.offset - len(self.tail))
                    return f.read(len(self.tail)) == self.tail
        except OSError:
            return False
        return True

    def lines(self, chunk: int = CHUNK) -> Iterator[bytes]:
        """Complete lines from the offset on (see `blocks`)."""
        for block in self.blocks(chunk):
            yield from block.split(b"\n")

    def blocks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        """Runs of complete lines (joined by newlines, without the last one) from the offset on,
        advancing the offset past each; callers that filter lines can search a whole block at once.

        A line longer than `chunk` is assembled from its pieces (one such line held at a time, no
        quadratic copying); one longer than MAX_LINE is passed over, counted in `oversized`. The
        unterminated tail stays on disk for the next call.
        """
        f = open_regular(self.path)
        if f is None:
            return
        with f:
            f.seek(self.offset)
            parts: list[bytes] = []  # pieces of a line longer than a chunk
            pending = 0
            dropping = False
            while True:
                data = f.read(chunk)
                if not data:
                    break
                end = data.rfind(b"\n")
                if end < 0:
                    pending += len(data)
                    if pending > MAX_LINE:
                        dropping, parts = True, []
                    elif not dropping:
                        parts.append(data)
                    continue
                block_start = self.offset
                if dropping:
                    # skip the rest of the over-long line, keep what follows its newline
                    first_nl = data.find(b"\n")
                    self.oversized += 1
                    dropping, parts = False, []
                    block_start += pending + first_nl + 1
                    data, end, pending = data[first_nl + 1 :], end - first_nl - 1, 0
                    self.offset = block_start
                    if end < 0:
                        parts, pending = [data], len(data)
                        continue
                elif parts:
                    parts.append(data)
                    data = b"".join(parts)
                    end += pending
                    parts, pending = [], 0
                if block_start == 0 and len(self.fingerprint) < FP_LEN:
                    self.fingerprint = data[:FP_LEN]
                self.offset = block_start + end + 1
                self.tail = data[max(0, end + 1 - TAIL_LEN) : end + 1]
                rest = data[end + 1 :]
                if rest:
                    parts, pending = [rest], len(rest)
                yield data[:end]

    def document_changed(self) -> Change:
        """For files rewritten whole: any change of identity, size or mtime means re-read."""
        st = stat_regular(self.path)
        if st is None:
            return Change.GONE
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
            self.dev,
            self.ino,
            self.size,
            self.mtime_ns,
        ):
            return Change.SAME
        return Change.RESET

    def read_all(self) -> bytes | None:
        """The whole file (for documents rewritten in place); updates identity and size."""
        f = open_regular(self.path)
        if f is None:
            return None
        try:
            with f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError:
            return None
        self.dev, self.ino, self.size, self.mtime_ns = st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
        self.offset = len(data)
        self.fingerprint = data[:FP_LEN]
        self.tail = data[-TAIL_LEN:]
        return data


def open_cursor(path: Path) -> Cursor | None:
    """A cursor at offset 0 for a regular file, or None."""
    st = stat_regular(path)
    if st is None:
        return None
    return Cursor(path=path, dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
