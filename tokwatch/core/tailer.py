"""Byte-offset tailing of append-only logs, robust to truncation, replacement and torn writes.

One `Cursor` per file: identity (device, inode), the offset just past the last complete line, and
a fingerprint of the first bytes (a 16-byte digest of up to 1 KiB: small to keep in the cache). Files are opened, read from the offset and closed on each change
(never held open: thousands of sessions, rotation, atomic replaces). A partial last line is left
on disk until its newline arrives. Nothing here parses JSON or knows about agents.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from hashlib import blake2b
from pathlib import Path
from typing import BinaryIO

from tokwatch.fsio import open_regular, stat_regular

__all__ = ["Change", "Cursor", "open_cursor", "open_regular", "stat_regular"]

FP_LEN = 1024  # JSONL lines share their first keys: 1 KiB reaches ids and timestamps
TAIL_LEN = 4096  # the bytes before the offset whose digest a rewrite in place must match
CHUNK = 1 << 20
MAX_LINE = 256 << 20  # a line longer than this is not a log record we can afford to parse
_KEEP = 4 * CHUNK  # read buffers up to this size are kept for the next file (not the odd huge one)
_buffers = threading.local()


def _take_buffer(size: int) -> bytearray:
    """A read buffer from this thread's pool: a fresh one would be zeroed and faulted in again for
    every file, which cost more than the reading itself on a backfill of thousands of files."""
    pool: list[bytearray] | None = getattr(_buffers, "pool", None)
    if pool:
        buf = pool.pop()
        if len(buf) >= size:
            return buf
    return bytearray(size)


def _give_buffer(buf: bytearray) -> None:
    if len(buf) <= _KEEP:
        pool = getattr(_buffers, "pool", None)
        if pool is None:
            pool = _buffers.pool = []
        if len(pool) < 2:
            pool.append(buf)


def digest(head: bytes | bytearray | memoryview) -> bytes:
    return blake2b(head, digest_size=16).digest()


def tail_digest(raw: bytes | bytearray | memoryview) -> bytes:
    """What a cursor keeps of the bytes before its offset: their digest and their length."""
    return digest(raw) + len(raw).to_bytes(4, "big")


def tail_length(tail: bytes) -> int:
    """How many bytes before the offset `tail` covers (a 20-byte digest form, or raw bytes)."""
    return int.from_bytes(tail[16:], "big") if len(tail) == 20 else len(tail)


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
    fingerprint: bytes = b""  # digest of the file's first `fp_len` bytes
    fp_len: int = 0
    #: A digest of the bytes just before `offset` and how many (`tail_digest`): a rewrite in place
    #: changes them. (Records from tokwatch 0.1 hold the 64 raw bytes instead: still compared.)
    tail: bytes = b""
    oversized: int = 0  # lines passed over for being longer than MAX_LINE
    #: Bytes after `offset` already read and known to hold no newline: a line still being written.
    #: The next read looks for its newline only in what came after them (not in the whole line
    #: again on every append: a 100 MB line written in 256 KiB pieces cost 15 CPU-seconds).
    partial: int = 0

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
        if st.st_size == self.size:
            if st.st_mtime_ns == self.mtime_ns:
                return Change.SAME
            # the same size written again: rewritten in place (an append changes the size), even
            # where the first KiB and the bytes before the offset read the same
            self._reset(st)
            return Change.RESET
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
        self.partial = 0
        self.fingerprint = b""
        self.fp_len = 0
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
                head = f.read(self.fp_len)
                if len(head) != self.fp_len or digest(head) != self.fingerprint:
                    return False
                if self.tail:
                    n = tail_length(self.tail)
                    f.seek(self.offset - n)
                    raw = f.read(n)
                    return raw == self.tail if n == len(self.tail) else tail_digest(raw) == self.tail
        except OSError:
            return False
        return True

    def lines(self, chunk: int = CHUNK) -> Iterator[bytes]:
        """Complete lines from the offset on (see `blocks`)."""
        for buf, n in self.blocks(chunk):
            yield from bytes(buf[:n]).split(b"\n")

    def blocks(self, chunk: int = CHUNK) -> Iterator[tuple[bytearray, int]]:
        """Runs of complete lines from the offset on, advancing the offset past each: `(buf, n)`
        where `buf[:n]` holds the lines joined by newlines (without the last one), so callers that
        filter lines search a whole block at once.

        `buf` is ONE reused buffer, filled with `readinto`: no fresh megabyte per read (allocating
        and faulting in new memory cost more than the copy from the page cache). It is only valid
        until the next block is asked for. A line longer than `chunk` grows the buffer (doubling:
        no quadratic copying); one longer than MAX_LINE is passed over, counted in `oversized`.
        The unterminated tail stays on disk for the next call, which reads it again only once its
        newline has come (`partial`).
        """
        f = open_regular(self.path)
        if f is None:
            return
        buf = _take_buffer(chunk)
        try:
            yield from self._blocks(f, buf, chunk)
        finally:
            _give_buffer(buf)

    def _unfinished(self, f: BinaryIO, buf: bytearray, chunk: int) -> bool:
        """Is the line at the offset still unfinished? Only bytes after `partial` are searched for
        its newline. A finished line longer than MAX_LINE is passed over here, unread again."""
        if os.fstat(f.fileno()).st_size < self.offset + self.partial:  # cut short: look again
            self.partial = 0
            return False
        f.seek(self.offset + self.partial)
        while True:
            with memoryview(buf) as mv:
                k = f.readinto(mv[:chunk])
            if not k:
                return True
            nl = buf.find(b"\n", 0, k)
            if nl >= 0:
                if self.partial + nl > MAX_LINE:
                    self.oversized += 1
                    self.offset += self.partial + nl + 1
                self.partial = 0
                return False
            self.partial += k

    def _blocks(self, f: BinaryIO, buf: bytearray, chunk: int) -> Iterator[tuple[bytearray, int]]:
        with f:
            if self.partial and self._unfinished(f, buf, chunk):
                return
            f.seek(self.offset)
            have = 0  # bytes of an unfinished line at the start of `buf`
            dropping = 0  # bytes of an over-long line passed over so far
            while True:
                if len(buf) - have < chunk // 2 + 1:
                    buf.extend(bytes(max(chunk, len(buf))))
                with memoryview(buf) as mv:
                    k = f.readinto(mv[have : have + chunk])
                if not k:
                    self.partial = dropping + have
                    break
                filled = have + k
                if dropping:
                    nl = buf.find(b"\n", 0, filled)
                    if nl < 0:
                        dropping += filled
                        have = 0
                        continue
                    self.oversized += 1
                    self.offset += dropping + nl + 1
                    dropping = 0
                    filled -= nl + 1
                    buf[:filled] = buf[nl + 1 : nl + 1 + filled]
                end = buf.rfind(b"\n", 0, filled)
                if end < 0:
                    if filled > MAX_LINE:
                        dropping, have = filled, 0
                    else:
                        have = filled
                    continue
                if self.offset == 0 and self.fp_len < FP_LEN:
                    self.fp_len = min(FP_LEN, filled)
                    with memoryview(buf) as mv:
                        self.fingerprint = digest(mv[: self.fp_len])
                self.offset += end + 1
                with memoryview(buf) as mv:
                    self.tail = tail_digest(mv[max(0, end + 1 - TAIL_LEN) : end + 1])
                yield buf, end
                have = filled - end - 1
                if have:
                    buf[:have] = buf[end + 1 : filled]

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
        self.fp_len = min(FP_LEN, len(data))
        self.fingerprint = digest(data[: self.fp_len])
        self.tail = tail_digest(data[-TAIL_LEN:])
        return data


def open_cursor(path: Path, st: os.stat_result | None = None) -> Cursor | None:
    """A cursor at offset 0 for a regular file (`st`: its fresh stat, when the caller has it), or None."""
    st = st if st is not None else stat_regular(path)
    if st is None:
        return None
    return Cursor(path=path, dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
