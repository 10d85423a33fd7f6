"""Writing files so that a reader, a crash or a full disk never sees half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a crash, or a full disk) never sees a half-written file; on error the temporary
    file is removed and the old file is left untouched. The file keeps the mode an existing one
    had; a new one gets `mode`, by default 0644 less the umask, like any file a shell creates.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        keep = os.stat(path).st_mode & 0o7777
    except OSError:
        keep = (0o644 if mode is None else mode) & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.fchmod(fd, keep)  # (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask sets it, and
    another thread may be creating a file meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
