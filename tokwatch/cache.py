"""The persistent cache: what each log file produced, so a warm start reads only what was appended.

Per file: its identity (device, inode, size, mtime), the byte offset reached, a fingerprint of its
first bytes, the parser's state at that offset and the turns the file produced. An entry is used
only when the file is still the same file (same inode, not shorter than the offset, same
fingerprint); anything else is re-read from 0. The cache is one JSON file written atomically
(temporary file + rename), so concurrent tokwatch processes can lose each other's latest update
but never corrupt it; a file that does not parse or carries another version is discarded.
Entries of deleted logs are kept (their sessions show as archived) until `tokwatch cache --prune`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tokwatch.models import TURN_FIELDS, Turn

#: Bump when the format or any normalizer's output changes: old caches are then rebuilt.
CACHE_VERSION = 2
FILE_NAME = "cache.json"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_CACHE_DIR"):
        return Path(env["TOKWATCH_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokwatch"


@dataclass(slots=True)
class Entry:
    agent: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    offset: int
    fingerprint: bytes
    tail: bytes
    state: dict[str, object] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "dev": self.dev,
            "ino": self.ino,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "offset": self.offset,
            "fingerprint": self.fingerprint.hex(),
            "tail": self.tail.hex(),
            "state": self.state,
            "turns": [t.to_row() for t in self.turns],
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Entry:
        rows = d["turns"]
        assert isinstance(rows, list)
        return cls(
            agent=str(d["agent"]),
            dev=int(d["dev"]),  # type: ignore[call-overload]
            ino=int(d["ino"]),  # type: ignore[call-overload]
            size=int(d["size"]),  # type: ignore[call-overload]
            mtime_ns=int(d["mtime_ns"]),  # type: ignore[call-overload]
            offset=int(d["offset"]),  # type: ignore[call-overload]
            fingerprint=bytes.fromhex(str(d["fingerprint"])),
            tail=bytes.fromhex(str(d["tail"])),
            state=dict(d.get("state") or {}),  # type: ignore[call-overload]
            turns=[Turn(*r) for r in rows],
        )


class Cache:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_cache_dir()
        self.path = self.directory / FILE_NAME

    def load(self) -> dict[str, Entry]:
        """Entries by file path; empty when the cache is missing, corrupt or of another version."""
        try:
            raw = self.path.read_bytes()
        except OSError:
            return {}
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
                return {}
            if data.get("fields") != list(TURN_FIELDS):
                return {}
            files = data["files"]
            return {str(p): Entry.from_json(e) for p, e in files.items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError, AttributeError):
            return {}

    def save(self, entries: Mapping[str, Entry]) -> None:
        """Atomic write; a failure (full disk, read-only home) leaves the old cache and is not fatal."""
        data = {
            "version": CACHE_VERSION,
            "fields": list(TURN_FIELDS),
            "files": {p: e.to_json() for p, e in entries.items()},
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".cache.", suffix=".tmp", dir=self.directory)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def prune(self) -> int:
        """Drop entries whose log file no longer exists; how many were dropped."""
        entries = self.load()
        keep = {p: e for p, e in entries.items() if os.path.exists(p)}
        if len(keep) != len(entries):
            self.save(keep)
        return len(entries) - len(keep)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
