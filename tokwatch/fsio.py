"""Opening files tokwatch did not write (logs, transcripts, the config): regular files only, and
never a blocking open.

A FIFO, a device or a socket can sit at any path a log, a hook or a user names: opening a FIFO for
reading blocks until a writer comes, and `/dev/zero` never ends. So every such file is opened
with `O_NONBLOCK` and checked with `fstat` on the open descriptor (no race with a swap after a
`stat`). The lowest layer: the config, the core and the agents all read through it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def stat_regular(path: Path) -> os.stat_result | None:
    """The file's stat if it is (still) a regular file; None if gone or anything else."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def open_binary(path: Path | str) -> BinaryIO:
    """Open a regular file for reading without ever blocking; OSError (FileNotFoundError when it
    does not exist) for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_regular(path: Path | str) -> BinaryIO | None:
    """Open for reading only if it is a regular file: never blocks on a FIFO swapped in by a race."""
    try:
        return open_binary(path)
    except OSError:
        return None


def read_regular(path: Path | str, limit: int = -1) -> bytes:
    """The bytes of a regular file (at most `limit`), read without blocking (see `open_binary`)."""
    with open_binary(path) as f:
        return f.read(limit)


def safe_text(text: str) -> str:
    """`text` as valid Unicode: the undecodable bytes of a file or folder name (which Python keeps
    as lone surrogates) become visible `\\xff` escapes. Nothing else changes. (SQLite, JSON and
    UTF-8 output all refuse lone surrogates.)"""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text
