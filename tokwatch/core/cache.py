"""The persistent cache: what each log file produced, so a warm start reads only what was appended.

Per file: its identity (device, inode, size, mtime), the byte offset reached, a fingerprint of its
first bytes, the parser's state at that offset and the turns the file produced. An entry is used
only when the file is still the same file (same inode, not shorter than the offset, same
fingerprint); anything else is re-read from 0. Entries of deleted logs are kept (their sessions
show as archived) until `tokwatch cache --prune`.

Two accelerators ride along, each valid only under the key it was written with:

* a **snapshot** of the folded per-session state (totals, per-model sums, gauge, sparkline) for
  one set of roots and one pricing setup. A warm start over the same roots shows it as is; a
  session's turns are replayed from the files only when one of its files grew or a view asks
  for them (`Store.restore`);
* the **rate cards** resolved from genai-prices (a warm start does not import it).

The file is JSON lines: line 1 is the header (identities, states, snapshot, cards, and where each
file's turns are), then one line per file holding its turns. Turns are parsed only when needed
(a file that grew, a session replayed, an archived log), and written back byte for byte when
they were not. The file is replaced atomically (temporary file + rename), so concurrent tokwatch
processes can lose each other's latest update but never corrupt it; a file that does not parse,
is cut short or carries another version is discarded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tokwatch.core.models import TURN_FIELDS, Turn

log = logging.getLogger(__name__)

#: Bump when the format or any normalizer's output changes: old caches are then rebuilt.
CACHE_VERSION = 5
FILE_NAME = "cache.jsonl"
_OLD_NAMES = ("cache.json",)  # earlier formats: removed on the next save


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_CACHE_DIR"):
        return Path(env["TOKWATCH_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokwatch"


class Entry:
    """Where one log file stands. Its turns are parsed from the cache on first use only."""

    __slots__ = ("_count", "_raw", "_sessions", "_turns", "agent", "dev", "fingerprint", "fp_len", "ino",
                 "mtime_ns", "offset", "size", "state", "tail")  # fmt: skip

    def __init__(
        self,
        agent: str,
        dev: int,
        ino: int,
        size: int,
        mtime_ns: int,
        offset: int,
        fingerprint: bytes,
        fp_len: int,
        tail: bytes,
        state: dict[str, object] | None = None,
        turns: list[Turn] | None = None,
        *,
        raw: bytes | memoryview | None = None,
        sessions: list[str] | None = None,
        count: int = 0,
    ) -> None:
        self.agent, self.dev, self.ino, self.size, self.mtime_ns = agent, dev, ino, size, mtime_ns
        self.offset, self.fingerprint, self.fp_len, self.tail = offset, fingerprint, fp_len, tail
        self.state: dict[str, object] = state if state is not None else {}
        self._raw = raw  # the JSON array of turn rows, as read from the cache
        self._turns = turns if turns is not None or raw is not None else []
        self._sessions = sessions
        self._count = count

    @property
    def turns(self) -> list[Turn]:
        if self._turns is None:
            try:
                rows = orjson.loads(self._raw) if self._raw is not None else []
                self._turns = [Turn(*r) for r in rows]
            except (orjson.JSONDecodeError, TypeError, ValueError):  # only a damaged disk gets here
                log.warning("cache: unreadable turns for one file; it is read again on its next change")
                self._turns = []
        return self._turns

    @property
    def sessions(self) -> list[str]:
        """The session ids this file's turns belong to (known without parsing them)."""
        if self._sessions is None:
            self._sessions = sorted({t.session_id for t in self.turns})
        return self._sessions

    @property
    def count(self) -> int:
        return len(self._turns) if self._turns is not None else self._count

    def rows_json(self) -> bytes | memoryview:
        """The turns as the cache stores them; unparsed ones are handed back untouched."""
        if self._raw is not None:
            return self._raw
        return orjson.dumps([t.to_row() for t in self.turns])

    def header(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "dev": self.dev,
            "ino": self.ino,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "offset": self.offset,
            "fingerprint": self.fingerprint.hex(),
            "fp_len": self.fp_len,
            "tail": self.tail.hex(),
            "state": self.state,
            "sessions": self.sessions,
            "count": self.count,
        }

    def to_json(self) -> dict[str, object]:
        """Everything, turns as JSON bytes: how a backfill worker hands a file back (cheap to pickle)."""
        return {**self.header(), "turns": bytes(self.rows_json())}

    @classmethod
    def from_json(cls, d: Mapping[str, object], raw: bytes | memoryview | None = None) -> Entry:
        if raw is None:
            turns = d.get("turns")
            if not isinstance(turns, bytes):
                raise TypeError("entry without turns")
            raw = turns
        sessions = d.get("sessions")
        if not isinstance(sessions, list):
            raise TypeError("entry without sessions")
        return cls(
            agent=str(d["agent"]),
            dev=int(d["dev"]),  # type: ignore[call-overload]
            ino=int(d["ino"]),  # type: ignore[call-overload]
            size=int(d["size"]),  # type: ignore[call-overload]
            mtime_ns=int(d["mtime_ns"]),  # type: ignore[call-overload]
            offset=int(d["offset"]),  # type: ignore[call-overload]
            fingerprint=bytes.fromhex(str(d["fingerprint"])),
            fp_len=int(d["fp_len"]),  # type: ignore[call-overload]
            tail=bytes.fromhex(str(d["tail"])),
            state=dict(d.get("state") or {}),  # type: ignore[call-overload]
            raw=raw,
            sessions=[str(s) for s in sessions],
            count=int(d.get("count") or 0),  # type: ignore[call-overload]
        )


@dataclass(slots=True)
class Loaded:
    """A cache as read: the per-file entries, and the accelerators (None when absent)."""

    entries: dict[str, Entry] = field(default_factory=dict)
    #: {"scope": [...], "pricing": key, "sessions": [Session rows]}
    snapshot: dict[str, object] | None = None
    #: {"pricing": key, "items": [[agent, model, card row or None], ...]}
    cards: dict[str, object] | None = None


class Cache:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_cache_dir()
        self.path = self.directory / FILE_NAME

    def load(self) -> dict[str, Entry]:
        """Entries by file path; empty when the cache is missing, corrupt or of another version."""
        return self.read().entries

    def read(self) -> Loaded:
        try:
            data = self.path.read_bytes()
        except OSError:
            return Loaded()
        try:
            nl = data.index(b"\n")
            head = orjson.loads(memoryview(data)[:nl])
            if not isinstance(head, dict) or head.get("version") != CACHE_VERSION:
                return Loaded()
            if head.get("fields") != list(TURN_FIELDS) or head.get("bytes") != len(data) - nl - 1:
                return Loaded()  # another layout, or cut short
            blob = memoryview(data)[nl + 1 :]
            entries = {}
            for p, e in head["files"].items():
                start, end = e["at"]
                if not (0 <= start <= end <= len(blob)):
                    return Loaded()
                entries[str(p)] = Entry.from_json(e, blob[start:end])
            snapshot, cards = head.get("snapshot"), head.get("cards")
            return Loaded(
                entries,
                snapshot if isinstance(snapshot, dict) else None,
                cards if isinstance(cards, dict) else None,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return Loaded()

    def save(
        self,
        entries: Mapping[str, Entry],
        snapshot: dict[str, object] | None = None,
        cards: dict[str, object] | None = None,
    ) -> None:
        """Atomic write; a failure (full disk, read-only home) leaves the old cache and is not fatal."""
        files: dict[str, object] = {}
        parts: list[bytes | memoryview] = []
        at = 0
        for p, e in entries.items():
            rows = e.rows_json()
            h = e.header()
            h["at"] = [at, at + len(rows)]
            files[p] = h
            parts.append(rows)
            parts.append(b"\n")
            at += len(rows) + 1
        head = {
            "version": CACHE_VERSION,
            "fields": list(TURN_FIELDS),
            "bytes": at,
            "files": files,
            "snapshot": snapshot,
            "cards": cards,
        }
        try:
            payload = orjson.dumps(head)
        except (TypeError, orjson.JSONEncodeError):  # nothing we write should do this: keep the old cache
            log.warning("cache: could not encode the header", exc_info=True)
            return
        self._write(_chain([payload, b"\n"], parts))

    def _write(self, chunks: Iterable[bytes | memoryview]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".cache.", suffix=".tmp", dir=self.directory)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.writelines(chunks)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        for old in _OLD_NAMES:
            with contextlib.suppress(OSError):
                (self.directory / old).unlink()

    def prune(self) -> int:
        """Drop entries whose log file no longer exists; how many were dropped.

        The snapshot goes too (it still counts them); the next start rebuilds it from the files.
        """
        loaded = self.read()
        keep = {p: e for p, e in loaded.entries.items() if os.path.exists(p)}
        if len(keep) != len(loaded.entries):
            self.save(keep, None, loaded.cards)
        return len(loaded.entries) - len(keep)

    def clear(self) -> None:
        for name in (FILE_NAME, *_OLD_NAMES):
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()


def _chain(*groups: Iterable[bytes | memoryview]) -> Iterable[bytes | memoryview]:
    for g in groups:
        yield from g
