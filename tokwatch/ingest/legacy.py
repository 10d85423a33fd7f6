"""Upgrading from the JSON-lines cache of tokwatch 0.1 (`~/.cache/tokwatch/cache.jsonl`).

That cache was the only record of deleted logs' turns, so the first start with a ledger imports
it whole: every file's turns (archived ones included) and its cursor, so nothing is lost and the
logs need not be read again. Then the cache files go.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from tokwatch.core.ledger import FileRecord
from tokwatch.core.models import Turn, bad_turn
from tokwatch.core.store import Store
from tokwatch.fsio import open_regular

log = logging.getLogger(__name__)

FILE_NAME = "cache.jsonl"
OLD_FILES = ("cache.json", "statusline/cache.jsonl", "statusline/cache.json")
VERSIONS = (4, 5)
MARK = "legacy_cache_imported"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_CACHE_DIR"):
        return Path(env["TOKWATCH_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokwatch"


def read_cache(path: Path) -> list[tuple[FileRecord, list[Turn]]] | None:
    """Every file of a cache (its cursor record and turns); None when missing or unreadable."""
    f = open_regular(path)  # (never blocks on a FIFO put in its place)
    if f is None:
        return None
    try:
        with f:
            data = f.read()
    except OSError:
        return None
    try:
        nl = data.index(b"\n")
        head = orjson.loads(memoryview(data)[:nl])
        if not isinstance(head, dict) or head.get("version") not in VERSIONS:
            return None
        if head.get("bytes") != len(data) - nl - 1:
            return None  # cut short
        blob = memoryview(data)[nl + 1 :]
        out = []
        for p, e in head["files"].items():
            start, end = e["at"]
            if not (0 <= start <= end <= len(blob)):
                return None
            rows = orjson.loads(blob[start:end])
            turns = []
            for r in rows:
                try:
                    turns.append(Turn(*r))
                except TypeError:
                    continue
            rec = FileRecord(
                path=str(p),
                agent=str(e["agent"]),
                dev=int(e["dev"]),
                ino=int(e["ino"]),
                size=int(e["size"]),
                mtime_ns=int(e["mtime_ns"]),
                offset=int(e["offset"]),
                fingerprint=bytes.fromhex(str(e["fingerprint"])),
                fp_len=int(e["fp_len"]),
                tail=bytes.fromhex(str(e["tail"])),
                state=dict(e.get("state") or {}),
                sessions=sorted({t.session_id for t in turns}),
                turns=len(turns),
            )
            out.append((rec, turns))
        return out
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def import_cache(store: Store, cache_dir: Path) -> list[str]:
    """Import the old cache into the ledger once, then remove it; what to tell the user."""
    path = cache_dir / FILE_NAME
    if not path.exists() or store.ledger.meta(MARK):
        _remove(cache_dir)
        return []
    files = read_cache(path)
    notes: list[str] = []
    if files is None:
        notes.append(f"the old cache {path} could not be read; logs are read again instead")
    else:
        turns = [t for _, ts in files for t in _valid(ts)]
        store.apply(turns, [rec for rec, _ in files])
        notes.append(f"imported {len(turns)} turns of {len(files)} logs from the old cache {path}")
    store.ledger.set_meta(MARK, str(path))
    _remove(cache_dir)
    return notes


def _valid(turns: list[Turn]) -> list[Turn]:
    """Turns with the types a log line gives (a damaged cache entry is skipped, not believed)."""
    for t in turns:
        if type(t.timestamp) is int:
            t.timestamp = float(t.timestamp)
    return [t for t in turns if bad_turn(t) is None]


def _remove(cache_dir: Path) -> None:
    for name in (FILE_NAME, *OLD_FILES):
        with contextlib.suppress(OSError):
            (cache_dir / name).unlink()
