"""Reading another program's SQLite database without ever writing to it or holding it.

Agents that keep usage in SQLite (Goose, Hermes) are read the way OpenCode's database is: opened
read-only for each read (`mode=ro`, `PRAGMA query_only`, a short busy timeout), one read
transaction for a consistent snapshot while the agent writes in WAL mode, closed right after.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tokwatch.core.tailer import Cursor

BUSY_TIMEOUT = 0.25


def connect_readonly(path: Path) -> sqlite3.Connection:
    uri = f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA query_only = ON")
    return con


def tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def columns(con: sqlite3.Connection, table: str) -> set[str]:
    """A table's columns: agents add them by migration, so every one past the first schema may be missing."""
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def stat_database(path: Path, cursor: Cursor) -> bool:
    """Record the database's identity on the engine's cursor; False when it is gone.

    In WAL mode new rows land in the `-wal` file and the database's own size and mtime do not move
    until a checkpoint: the mtime is then zeroed, so a rescan or a warm start queries again.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    cursor.dev, cursor.ino, cursor.size, cursor.mtime_ns = (
        st.st_dev,
        st.st_ino,
        st.st_size,
        0 if os.path.exists(f"{path}-wal") else st.st_mtime_ns,
    )
    return True
