"""Reading an agent's SQLite database without ever writing to it (OpenCode, Kilo, OpenClaw, Goose,
Hermes): opened read-only for each read, one read transaction for a consistent snapshot while the
agent writes in WAL mode, closed right after.

A module, not an agent (the leading underscore keeps it out of `all_agents()`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tokwatch.core.models import Turn
from tokwatch.core.tailer import Cursor

BUSY_TIMEOUT = 0.25


def connect_ro(path: Path) -> sqlite3.Connection:
    """Read-only (`mode=ro`, `query_only`), autocommit, short busy timeout: no transaction is held
    between reads and nothing is ever written, so the agent is never blocked by us."""
    uri = f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA query_only = ON")
    return con


def stat_database(path: Path, cursor: Cursor) -> bool:
    """Record the database's identity in the cursor; False when it is gone.

    In WAL mode new rows land in the `-wal` file and the database file's size and mtime do not
    move until a checkpoint: while a `-wal` exists the cursor's mtime is zeroed, so the engine's
    "unchanged?" test (database stat only) answers "changed" and a rescan or a warm start from the
    cache queries again.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    cursor.dev, cursor.ino, cursor.size, cursor.mtime_ns = st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
    if os.path.exists(f"{path}-wal"):
        cursor.mtime_ns = 0
    return True


def has_table(con: sqlite3.Connection, name: str) -> bool:
    row = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def columns(con: sqlite3.Connection, table: str) -> set[str]:
    """A table's columns: agents add them by migration, so any past the first schema may be missing."""
    return {str(r[1]) for r in con.execute(f"PRAGMA table_info({table})")}


def tables(con: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def read_database(path: Path, cursor: Cursor, read: Callable[[], list[Turn]]) -> list[Turn] | None:
    """`LogParser.read_changed` for a database: None when it is gone; `read()`'s turns; nothing
    when the database is locked, busy, mid-migration or not a database yet, with the cursor's
    mtime zeroed so the next rescan queries again instead of thinking the file unchanged."""
    if not stat_database(path, cursor):
        return None
    try:
        return read()
    except sqlite3.Error:
        cursor.mtime_ns = 0
        return []
