"""The ledger: tokwatch's durable record of usage, one SQLite database.

Agents delete, compact and rewrite their logs; the ledger keeps every billed turn once, so history
survives them. It holds:

* `turns`: one row per (session, turn id), with its tokens, its cost at the ledger's prices
  (integer picodollars, NULL when unknown) and which process wrote it last;
* `sessions`: each session's folded state (totals, per-model sums, gauge, sparkline), kept current
  in the same transaction as its turns, so a start shows history without replaying any turn;
* `files`: each log file's cursor (identity, offset, fingerprints, parser state) and the sessions
  it produced turns for;
* `limit_samples` and `compactions` (schema 2; schema 3 re-keys `limit_samples`): plan-window
  readings and compaction boundaries, history added with the turns of the same batch
  (`core/ledger_obs.py`).

Guarantees (docs/robustness.md):

* A file's new turns and its advanced cursor commit in ONE transaction: a kill -9 at any moment
  loses nothing and counts nothing twice (the next start resumes at the committed cursor).
* Rows are only added or replaced, never removed by reading: any number of tokwatch processes can
  write at once (WAL, `BEGIN IMMEDIATE`, a busy timeout) and none drops what another recorded.
  Removal is explicit only (`tokwatch ledger prune`).
* What is read back is checked like a log line: STRICT tables with CHECK constraints refuse bad
  values on write; a row that still fails the checks on read is skipped and counted.
* A database that cannot be read is never silently replaced: it is moved aside (`*.corrupt-*`),
  what could be salvaged is copied into a new one, and the caller reports both.

The schema carries its version in `PRAGMA user_version`; `MIGRATIONS[i]` takes a database from
version i to i + 1, so every earlier version upgrades in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tokwatch.core.models import MAX_TS, MIN_TS, Session, Turn, bad_turn
from tokwatch.fsio import safe_text

log = logging.getLogger(__name__)

FILE_NAME = "ledger.db"
#: meta key: since when (unix seconds) the ledger's sums have only grown. Set by the first reader
#: that needs it (the telemetry's counters start there); a re-pricing that lowers a cost moves it
#: to that moment, so an exporter can tell its consumers that the counters restarted.
SUMS_SINCE = "sums_since"
#: meta key: the sums of the turns `prune` forgot, per (agent, model, project): a JSON object
#: "agent\x1fmodel\x1fproject" -> Tokens row. Totals that count everything ever billed add them.
PRUNED_SUMS = "pruned_sums"
BUSY_TIMEOUT_MS = 30_000
WAL_LIMIT_BYTES = 4 << 20
MAX_TOKENS = 10**12  # per field of one turn: what a normalizer accepts (`agents.base.MAX_COUNT`)
_I64 = 1 << 63

_TOKENS_OK = " AND ".join(
    f"{c} BETWEEN 0 AND {MAX_TOKENS}"
    for c in ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning", "context_tokens")
)

#: limit_samples' columns (schemas 2 and 3 differ only in the order of the UNIQUE key)
_SAMPLE_DDL = f"""
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        provider TEXT NOT NULL,
        source TEXT NOT NULL,
        limit_id TEXT NOT NULL,
        window_minutes INTEGER NOT NULL CHECK(window_minutes BETWEEN 1 AND 5270400),
        used_percent REAL NOT NULL CHECK(used_percent BETWEEN 0 AND 1000),
        resets_at REAL CHECK(resets_at IS NULL OR resets_at BETWEEN {MIN_TS} AND {MAX_TS}),
        observed_at REAL NOT NULL CHECK(observed_at BETWEEN {MIN_TS} AND {MAX_TS}),
        plan_type TEXT NOT NULL DEFAULT '',
        session_id TEXT NOT NULL DEFAULT '',
        writer INTEGER NOT NULL DEFAULT 0
""".strip()

#: MIGRATIONS[i] brings a database at user_version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the ledger as first released
    f"""
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE sessions(
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        session_id TEXT NOT NULL,
        project TEXT NOT NULL DEFAULT '',
        last_seen REAL NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        state BLOB,
        UNIQUE(agent, session_id)
    ) STRICT;
    CREATE TABLE turns(
        session INTEGER NOT NULL,
        turn_id TEXT NOT NULL,
        model TEXT NOT NULL,
        ts REAL NOT NULL CHECK(ts = 0 OR ts BETWEEN {MIN_TS} AND {MAX_TS}),
        input INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        cache_write INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        output INTEGER NOT NULL,
        reasoning INTEGER NOT NULL,
        context_tokens INTEGER NOT NULL,
        context_window INTEGER NOT NULL CHECK(context_window BETWEEN 0 AND {MAX_TOKENS}),
        flags INTEGER NOT NULL,
        project TEXT NOT NULL,
        agent_cost REAL,
        cost INTEGER,
        dedup TEXT NOT NULL DEFAULT '',
        writer INTEGER NOT NULL,
        PRIMARY KEY(session, turn_id),
        CHECK({_TOKENS_OK})
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX turns_ts ON turns(ts);
    CREATE TABLE claims(
        agent TEXT NOT NULL,
        key TEXT NOT NULL,
        session_key TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        PRIMARY KEY(agent, key)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE files(
        path BLOB PRIMARY KEY,
        agent TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL CHECK(size >= 0),
        mtime_ns INTEGER NOT NULL,
        offset INTEGER NOT NULL CHECK(offset >= 0),
        fingerprint BLOB NOT NULL,
        fp_len INTEGER NOT NULL,
        tail BLOB NOT NULL,
        state TEXT NOT NULL,
        sessions TEXT NOT NULL,
        turns INTEGER NOT NULL,
        updated REAL NOT NULL
    ) STRICT;
    """,
    # 1 -> 2: what logs say besides billed turns (core/observations.py, core/ledger_obs.py)
    f"""
    CREATE TABLE limit_samples(
        {_SAMPLE_DDL},
        UNIQUE(agent, source, limit_id, window_minutes, observed_at)
    ) STRICT;
    CREATE INDEX limit_samples_window ON limit_samples(agent, limit_id, window_minutes, observed_at);
    CREATE INDEX limit_samples_time ON limit_samples(observed_at);
    CREATE TABLE compactions(
        agent TEXT NOT NULL,
        session_id TEXT NOT NULL,
        key TEXT NOT NULL,
        ts REAL NOT NULL CHECK(ts = 0 OR ts BETWEEN {MIN_TS} AND {MAX_TS}),
        trigger TEXT NOT NULL DEFAULT '',
        pre_tokens INTEGER CHECK(pre_tokens IS NULL OR pre_tokens BETWEEN 0 AND {MAX_TOKENS}),
        post_tokens INTEGER CHECK(post_tokens IS NULL OR post_tokens BETWEEN 0 AND {MAX_TOKENS}),
        PRIMARY KEY(agent, session_id, key)
    ) STRICT, WITHOUT ROWID;
    """,
    # 2 -> 3: limit_samples keyed (agent, limit, window, time, source): the key's own index then
    # serves every lookup by window (`ledger_obs._NEARBY`, the limits panel), so the second index on
    # those columns goes (a fifth of the ledger on a busy Codex history). Same rows, same ids.
    f"""
    CREATE TABLE limit_samples_3(
        {_SAMPLE_DDL},
        UNIQUE(agent, limit_id, window_minutes, observed_at, source)
    ) STRICT;
    INSERT INTO limit_samples_3 SELECT * FROM limit_samples;
    DROP TABLE limit_samples;
    ALTER TABLE limit_samples_3 RENAME TO limit_samples;
    CREATE INDEX limit_samples_time ON limit_samples(observed_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

FLAG_SIDECHAIN = 1
FLAG_MERGE_MAX = 2

TURN_COLUMNS = (
    "turn_id, model, ts, input, cache_read, cache_write, cache_write_1h, output, reasoning, "
    "context_tokens, context_window, flags, project, agent_cost, cost, dedup"
)


class LedgerError(Exception):
    """The ledger cannot be used (a newer schema, an unwritable folder): said to the user, not a crash."""


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_DATA_DIR"):
        return Path(env["TOKWATCH_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokwatch"


def _i64(v: int) -> int:
    """An unsigned 64-bit value (an inode number) as SQLite's signed integer, and back."""
    return v - (1 << 64) if v >= _I64 else v


def _u64(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


@dataclass(slots=True)
class FileRecord:
    """Where one log file stands: what a start resumes from (and a backfill worker hands back)."""

    path: str
    agent: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    offset: int
    fingerprint: bytes
    fp_len: int
    tail: bytes
    state: dict[str, object] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    turns: int = 0

    def row(self) -> tuple[object, ...]:
        return (
            os.fsencode(self.path),  # (a path's bytes: a folder name need not be UTF-8)
            self.agent,
            self.dev,
            _i64(self.ino),
            self.size,
            self.mtime_ns,
            self.offset,
            self.fingerprint,
            self.fp_len,
            self.tail,
            json.dumps(
                self.state, ensure_ascii=True
            ),  # (keeps file-name bytes as \udcxx escapes, which orjson refuses)
            orjson.dumps(sorted(safe_text(x) for x in self.sessions)).decode(),
            self.turns,
            time.time(),
        )

    @classmethod
    def from_row(cls, r: Sequence[object]) -> FileRecord:
        """Raises on anything malformed (the caller skips the record: the file is read again)."""
        path, agent, dev, ino, size, mtime_ns, offset, fp, fp_len, tail, state, sessions, turns = r[:13]
        st = json.loads(state)  # type: ignore[arg-type]
        sids = orjson.loads(sessions)  # type: ignore[arg-type]
        if (
            not isinstance(st, dict)
            or not isinstance(sids, list)
            or not all(isinstance(s, str) for s in sids)
        ):
            raise ValueError("malformed file record")
        if not (isinstance(fp, bytes) and isinstance(tail, bytes) and 0 <= int(offset) <= int(size)):  # type: ignore[call-overload]
            raise ValueError("malformed file record")
        return cls(
            os.fsdecode(path) if isinstance(path, bytes) else str(path),
            str(agent),
            int(dev),  # type: ignore[call-overload]
            _u64(int(ino)),  # type: ignore[call-overload]
            int(size),  # type: ignore[call-overload]
            int(mtime_ns),  # type: ignore[call-overload]
            int(offset),  # type: ignore[call-overload]
            fp,
            int(fp_len),  # type: ignore[call-overload]
            tail,
            st,
            sids,
            int(turns),  # type: ignore[call-overload]
        )


@dataclass(slots=True)
class StoredTurn:
    """A turn as the ledger holds it, with the cost it was counted at (None: unknown)."""

    turn: Turn
    cost: int | None
    writer: int


def turn_row(t: Turn, cost: int | None, session: int, writer: int) -> tuple[object, ...]:
    flags = (FLAG_SIDECHAIN if t.sidechain else 0) | (FLAG_MERGE_MAX if t.merge_max else 0)
    return (
        session,
        t.turn_id,
        t.model,
        t.timestamp,
        t.input,
        t.cache_read,
        t.cache_write,
        t.cache_write_1h,
        t.output,
        t.reasoning,
        t.context_tokens,
        t.context_window,
        flags,
        t.project,
        t.cost_usd,
        cost,
        t.dedup_key,
        writer,
    )


def turn_from_row(agent: str, session_id: str, r: Sequence[object]) -> tuple[Turn, int | None]:
    """(turn, cost) from a `TURN_COLUMNS` row; raises on values a log line could not have given."""
    (tid, model, ts, i, cr, cw, cw1h, o, rs, ctx, win, flags, project, agent_cost, cost, dedup) = r
    if cost is not None and type(cost) is not int:
        raise ValueError("turn with a bad cost")
    if type(flags) is not int:
        raise ValueError("turn with bad flags")
    t = Turn(
        agent=agent,
        session_id=session_id,
        turn_id=tid,  # type: ignore[arg-type]
        model=model,  # type: ignore[arg-type]
        timestamp=float(ts) if type(ts) is int else ts,  # type: ignore[arg-type]
        input=i,  # type: ignore[arg-type]
        cache_read=cr,  # type: ignore[arg-type]
        cache_write=cw,  # type: ignore[arg-type]
        cache_write_1h=cw1h,  # type: ignore[arg-type]
        output=o,  # type: ignore[arg-type]
        reasoning=rs,  # type: ignore[arg-type]
        project=project,  # type: ignore[arg-type]
        sidechain=bool(flags & FLAG_SIDECHAIN),
        context_window=win,  # type: ignore[arg-type]
        merge_max=bool(flags & FLAG_MERGE_MAX),
        context_tokens=ctx,  # type: ignore[arg-type]
        cost_usd=agent_cost,  # type: ignore[arg-type]
        dedup_key=dedup,  # type: ignore[arg-type]
    )
    why = bad_turn(t)
    if why is not None:
        raise ValueError(f"turn with {why}")
    return t, cost  # type: ignore[return-value]


@dataclass(slots=True)
class SessionRow:
    id: int
    agent: str
    session_id: str
    version: int
    state: bytes | None


@dataclass(slots=True)
class Opened:
    """What opening found: said to the user once (screen and stderr)."""

    path: Path | None
    created: bool = False
    moved_aside: Path | None = None
    salvaged_turns: int = 0
    lost: str = ""  # what could not be recovered, in words
    migrated_from: int | None = None

    def messages(self) -> list[str]:
        out = []
        if self.moved_aside is not None:
            out.append(
                f"the ledger {self.path} could not be read; it was moved to {self.moved_aside}. "
                f"{self.salvaged_turns} turns were recovered from it"
                + (f"; {self.lost}" if self.lost else "")
                + ". The rest is rebuilt from the logs that still exist."
            )
        return out


class Ledger:
    """One SQLite database (a file, or private and in memory). Safe to share between threads: every
    call takes the ledger's lock; a writer's transaction is a `with ledger.transaction():` block."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.writer = secrets.randbits(62)  # this process's mark on the rows it writes
        self.lock = threading.RLock()
        self.opened = Opened(path)
        self._db: sqlite3.Connection | None = None
        self._depth = 0
        self._owner = 0  # the thread inside a write transaction
        self._finalizer: weakref.finalize[..., Ledger] | None = None
        #: read connections: readers on other threads (views, reports) never wait for the writer
        self._readers: list[sqlite3.Connection] = []
        #: an in-memory ledger is a named shared-cache database, so readers can see it
        self._memory_uri = f"file:tokwatch-ledger-{self.writer}?mode=memory&cache=shared"

    # ---------------------------------------------------------------- opening
    @classmethod
    def at(cls, directory: Path | None = None) -> Ledger:
        return cls((directory or default_data_dir()) / FILE_NAME)

    @classmethod
    def memory(cls) -> Ledger:
        return cls(None)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def open(self) -> Opened:
        """Connect, create or migrate; a database that cannot be read is moved aside and salvaged."""
        with self.lock:
            if self._db is not None:
                return self.opened
            if self.path is None:
                self._db = self._connect(self._memory_uri)
                self._migrate(self._db)
                return self.opened
            try:
                self._db = self._open_file()
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) and _transient(e):
                    raise LedgerError(f"the ledger {self.path} is busy or locked: {e}") from e
                self._db = self._recover(e)
            # closed when the ledger is dropped or the process exits, whichever comes first
            self._finalizer = weakref.finalize(self, _close_connections, self.lock, self._db, self._readers)
            return self.opened

    def _open_file(self) -> sqlite3.Connection:
        assert self.path is not None
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise LedgerError(f"cannot create {folder}: {e}") from e
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise LedgerError(f"cannot read {self.path}: {e}") from e
        if st is not None and not stat.S_ISREG(st.st_mode):
            # never open a FIFO or a device: SQLite would block or scribble on it
            raise sqlite3.DatabaseError(f"{self.path} is not a regular file")
        self.opened.created = st is None or st.st_size == 0
        if st is None:  # created 0600: usage history is nobody else's business
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = self._connect(str(self.path))
        try:
            self._migrate(db)
            db.execute("SELECT count(*) FROM meta").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _connect(self, target: str) -> sqlite3.Connection:
        memory = target == self._memory_uri
        db = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False, uri=memory
        )
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not memory:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("ledger: journal mode is %s, not WAL", mode)
            # NORMAL in WAL: a crash of the process loses nothing committed; a power cut may lose
            # the last transactions, which are then read again from the logs.
            db.execute("PRAGMA synchronous=NORMAL")
            # a checkpoint truncates the WAL back to this (a backfill's big batches grow it past
            # the 4 MB autocheckpoint; without a limit the file keeps that size on disk)
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        db.execute("PRAGMA foreign_keys=OFF")
        db.create_function("lower_text", 1, _lower, deterministic=True)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} was written by a newer tokwatch (schema {version}, this one "
                f"knows {SCHEMA_VERSION}): upgrade tokwatch, or point TOKWATCH_DATA_DIR elsewhere"
            )
        if version == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            if version < SCHEMA_VERSION and version > 0:
                self.opened.migrated_from = version
            for v in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[v]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={v + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _recover(self, error: Exception) -> sqlite3.Connection:
        """Move an unreadable database aside, salvage what can be read, and start a new one."""
        assert self.path is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 2
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        log.warning("ledger %s unreadable (%s): moved to %s", self.path, error, aside)
        try:
            os.replace(self.path, aside)
        except OSError as e:
            raise LedgerError(
                f"the ledger {self.path} is unreadable ({error}) and cannot be moved: {e}"
            ) from e
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(OSError):
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
        self.opened.moved_aside = aside
        db = self._open_file()
        self.opened.created = True
        self._salvage(aside, db)
        return db

    def _salvage(self, old: Path, db: sqlite3.Connection) -> None:
        """Copy every readable turn (and session row) of a damaged database into the new one.

        Turns are the record; sessions are folded again from them by the store (their state is
        not copied); file cursors are not trusted, so every log is read again (idempotently)."""
        saved = 0
        bad = 0
        try:
            regular = stat.S_ISREG(os.stat(old).st_mode)
        except OSError:
            regular = False
        if not regular:  # a FIFO or device: opening it would block
            self.opened.lost = "it was not a regular file"
            return
        try:
            src = sqlite3.connect(f"file:{old}?mode=ro", uri=True, timeout=1)
        except sqlite3.Error as e:
            self.opened.lost = f"nothing could be read from it ({e})"
            return
        try:
            sessions = {}
            try:
                for sid, agent, session_id in src.execute("SELECT id, agent, session_id FROM sessions"):
                    sessions[sid] = (str(agent), str(session_id))
            except sqlite3.Error as e:
                self.opened.lost = f"its session list was unreadable ({e})"
            db.execute("BEGIN IMMEDIATE")
            for sid, (agent, session_id) in sessions.items():
                try:
                    rows = src.execute(f"SELECT {TURN_COLUMNS} FROM turns WHERE session=?", (sid,)).fetchall()
                except sqlite3.Error:
                    bad += 1
                    continue
                new_id = _session_id(db, agent, session_id)
                good = []
                for r in rows:
                    try:
                        t, cost = turn_from_row(agent, session_id, r)
                    except (TypeError, ValueError):
                        bad += 1
                        continue
                    good.append(turn_row(t, cost, new_id, 0))
                db.executemany(UPSERT_TURN, good)
                db.execute("UPDATE sessions SET version = version + 1, state = NULL WHERE id=?", (new_id,))
                saved += len(good)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self.opened.lost = f"the copy stopped early ({e})"
            saved = 0
        finally:
            src.close()
        self.opened.salvaged_turns = saved
        if bad and not self.opened.lost:
            self.opened.lost = f"{bad} unreadable turns or sessions were lost"

    def close(self) -> None:
        with self.lock:
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            for r in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    r.close()
            self._readers.clear()
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    # ---------------------------------------------------------------- transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE`: other writers wait, never deadlock); nested
        calls join the outer one. Rolled back if the block raises."""
        with self.lock:
            db = self.db
            if self._depth:
                self._depth += 1
                try:
                    yield db
                finally:
                    self._depth -= 1
                return
            db.execute("BEGIN IMMEDIATE")
            self._depth, self._owner = 1, threading.get_ident()
            try:
                yield db
            except BaseException:
                self._depth = self._owner = 0
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            self._depth = self._owner = 0
            db.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot for several queries) on a connection of its own: a
        report or a view's query never waits for the writer, nor the writer for it (WAL). Inside
        this thread's own write transaction, that transaction's connection (it sees its writes)."""
        if self._depth and self._owner == threading.get_ident():
            yield self.db
            return
        self.open()
        with self.lock:
            db = self._readers.pop() if self._readers else self._reader()
        try:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("COMMIT")
        finally:
            with self.lock:
                if self._db is not None and len(self._readers) < 4:
                    self._readers.append(db)
                else:
                    db.close()

    def _reader(self) -> sqlite3.Connection:
        if self.path is None:
            db = self._connect(self._memory_uri)
            db.execute("PRAGMA read_uncommitted=1")  # shared cache: never blocked by the writer's table locks
        else:
            db = self._connect(str(self.path))
            db.execute("PRAGMA query_only=1")
        return db

    # ---------------------------------------------------------------- meta
    def meta(self, key: str) -> str | None:
        with self.reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def data_mark(self) -> tuple[int, int]:
        """A value that changes whenever anything was committed, by this process or another
        (SQLite's data_version, and this connection's own count of changed rows): a reader
        can skip summing again while it stays the same."""
        with self.lock:
            db = self.db
            return int(db.execute("PRAGMA data_version").fetchone()[0]), db.total_changes

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # ---------------------------------------------------------------- files
    def file_records(self) -> tuple[dict[str, FileRecord], int]:
        """Every file's cursor, and how many records were unreadable (those files are read again)."""
        out: dict[str, FileRecord] = {}
        bad = 0
        with self.reading() as db:
            rows = db.execute(
                "SELECT path, agent, dev, ino, size, mtime_ns, offset, fingerprint, fp_len, tail, state,"
                " sessions, turns FROM files"
            ).fetchall()
        for r in rows:
            try:
                rec = FileRecord.from_row(r)
            except (TypeError, ValueError, orjson.JSONDecodeError):
                bad += 1
                continue
            out[rec.path] = rec
        return out, bad

    def put_files(self, records: Iterable[FileRecord]) -> None:
        rows = [r.row() for r in records]
        if rows:
            with self.transaction() as db:
                db.executemany(_UPSERT_FILE, rows)

    # ---------------------------------------------------------------- sessions
    def session_rows(self, keys: Iterable[tuple[str, str]] | None = None) -> list[SessionRow]:
        """Session rows (all, or those named), with their folded state (None: to be folded again)."""
        with self.reading() as db:
            if keys is None:
                rows = db.execute("SELECT id, agent, session_id, version, state FROM sessions").fetchall()
            else:
                rows = []
                for agent, sid in keys:
                    r = db.execute(
                        "SELECT id, agent, session_id, version, state FROM sessions WHERE agent=? AND session_id=?",
                        (agent, sid),
                    ).fetchone()
                    if r is not None:
                        rows.append(r)
        return [SessionRow(int(i), str(a), str(s), int(v), st) for i, a, s, v, st in rows]

    def turns_of(
        self, session: int, agent: str, session_id: str
    ) -> tuple[list[tuple[Turn, int | None]], int]:
        """A session's turns in time order (with their costs), and how many rows were unreadable."""
        with self.reading() as db:
            rows = db.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE session=? ORDER BY ts, turn_id", (session,)
            ).fetchall()
        out = []
        bad = 0
        for r in rows:
            try:
                out.append(turn_from_row(agent, session_id, r))
            except (TypeError, ValueError):
                bad += 1
        return out, bad

    def count_turns(self) -> int:
        with self.reading() as db:
            return int(db.execute("SELECT count(*) FROM turns").fetchone()[0])


INSERT_TURN = (
    "INSERT INTO turns(session, turn_id, model, ts, input, cache_read, cache_write, cache_write_1h, output,"
    " reasoning, context_tokens, context_window, flags, project, agent_cost, cost, dedup, writer)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
UPSERT_TURN = (
    "INSERT INTO turns(session, turn_id, model, ts, input, cache_read, cache_write, cache_write_1h, output,"
    " reasoning, context_tokens, context_window, flags, project, agent_cost, cost, dedup, writer)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(session, turn_id) DO UPDATE SET model=excluded.model, ts=excluded.ts, input=excluded.input,"
    " cache_read=excluded.cache_read, cache_write=excluded.cache_write, cache_write_1h=excluded.cache_write_1h,"
    " output=excluded.output, reasoning=excluded.reasoning, context_tokens=excluded.context_tokens,"
    " context_window=excluded.context_window, flags=excluded.flags, project=excluded.project,"
    " agent_cost=excluded.agent_cost, cost=excluded.cost, dedup=excluded.dedup, writer=excluded.writer"
)
_UPSERT_FILE = (
    "INSERT INTO files(path, agent, dev, ino, size, mtime_ns, offset, fingerprint, fp_len, tail, state,"
    " sessions, turns, updated) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(path) DO UPDATE SET agent=excluded.agent, dev=excluded.dev, ino=excluded.ino,"
    " size=excluded.size, mtime_ns=excluded.mtime_ns, offset=excluded.offset,"
    " fingerprint=excluded.fingerprint, fp_len=excluded.fp_len, tail=excluded.tail, state=excluded.state,"
    " sessions=excluded.sessions, turns=excluded.turns, updated=excluded.updated"
)


def _session_id(db: sqlite3.Connection, agent: str, session_id: str) -> int:
    row = db.execute("SELECT id FROM sessions WHERE agent=? AND session_id=?", (agent, session_id)).fetchone()
    if row is not None:
        return int(row[0])
    cur = db.execute("INSERT INTO sessions(agent, session_id) VALUES(?, ?)", (agent, session_id))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def _close_connections(
    lock: threading.RLock, db: sqlite3.Connection, readers: list[sqlite3.Connection]
) -> None:
    """A file ledger's connections, closed at exit even when nothing called `close`: the last one
    to close checkpoints the WAL into the database and removes it (else megabytes stay behind)."""
    if not lock.acquire(timeout=5):  # a writer still at work (a daemon thread): leave it be
        return
    try:
        for c in (*readers, db):
            with contextlib.suppress(sqlite3.Error):
                c.close()
        readers.clear()
    finally:
        lock.release()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _transient(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _lower(v: object) -> str:
    """Unicode-aware lowering for project filters (SQLite's own `lower` knows only ASCII)."""
    return str(v).lower() if v is not None else ""


def sessions_from(rows: Iterable[SessionRow]) -> Iterator[tuple[SessionRow, Session | None]]:
    """Each row with its folded session, or None when the state is missing or unreadable (the
    caller folds that session again from its turns)."""
    for r in rows:
        s: Session | None = None
        if r.state is not None:
            try:
                s = Session.from_row(orjson.loads(r.state))
                if (s.agent, s.session_id) != (r.agent, r.session_id):
                    s = None
            except Exception:  # damaged: fold again
                s = None
        yield r, s
