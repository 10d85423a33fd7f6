"""Goose plug-in: `sessions.db` built with Goose's exact DDL (schema 17 with its per-call
`usage_ledger`, and schema 6 with running totals only), read-only; ledger vs totals counted once,
observed steps never counted twice across a restart, the pre-SQLite JSONL files."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from agent_live import following

from tokwatch.agents import get_agent
from tokwatch.agents.goose import GooseDbParser
from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.core.tailer import open_cursor
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "goose"
AGENT = get_agent("goose")


def make_db(folder: Path, schema: str, data: str | None = None) -> Path:
    """`<folder>/goose/sessions/sessions.db` in WAL mode, from Goose's DDL (fixtures/agents/goose)."""
    sessions = folder / "goose" / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    path = sessions / "sessions.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript((FIX / schema).read_text())
    if data:
        con.executescript((FIX / data).read_text())
    con.close()
    return path


def read(parser: GooseDbParser) -> list[Turn]:
    cursor = open_cursor(parser.path)
    assert cursor is not None
    out = parser.read_changed(cursor)
    assert out is not None
    return out


def store_of(*batches: list[Turn]) -> Store:
    store = Store(make_pricer())
    for b in batches:
        store.apply(b)
    return store


def accumulated(db: Path, sid: str) -> tuple[int, int, int, int]:
    con = sqlite3.connect(db)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(sessions)")}
        cr = "accumulated_cache_read_tokens" if "accumulated_cache_read_tokens" in cols else "0"
        cw = "accumulated_cache_write_tokens" if "accumulated_cache_write_tokens" in cols else "0"
        ai, ao, r, w = con.execute(
            f"SELECT accumulated_input_tokens, accumulated_output_tokens, coalesce({cr}, 0), coalesce({cw}, 0) "
            "FROM sessions WHERE id = ?",
            (sid,),
        ).fetchone()
    finally:
        con.close()
    return (ai - r - w, r, w, ao)  # input without the cache, as tokwatch counts it


def session_numbers(store: Store, sid: str) -> tuple[int, int, int, int]:
    t = store.sessions[("goose", sid)].totals
    return (t.input, t.cache_read, t.cache_write, t.output)


# ---------------------------------------------------------------------------- schema 17
def test_ledger_rows_are_the_calls_and_totals_are_not_added(tmp_path: Path) -> None:
    db = make_db(tmp_path, "sessions-schema-v17.sql", "sessions-v17.synthetic-data.sql")
    turns = read(AGENT.parser(db))
    store = store_of(turns)
    for sid in ("20260101_1", "20260101_2", "20251201_3"):
        assert session_numbers(store, sid) == accumulated(db, sid), sid
    by = {(t.session_id, t.turn_id): t for t in turns}
    call = by[("20260101_1", "ledger:2")]
    # input_tokens 20000 holds the cache (18000 read + 1500 written): 500 uncached
    assert (call.input, call.cache_read, call.cache_write, call.output) == (500, 18000, 1500, 300)
    assert call.model == "claude-sonnet-4-5" and call.context == 20000 and call.context_window == 200000
    assert call.cost_usd == pytest.approx(0.017025) and call.project == "/home/me/app"
    compaction = by[("20260101_1", "ledger:3")]
    assert compaction.sidechain and compaction.output == 1800  # billed, but not the context in use
    # the carried_forward row is not a call: the usage from before the ledger is ONE aggregate
    assert ("20260101_1", "ledger:1") not in by
    pre = by[("20260101_1", "sum@pre-ledger")]
    assert pre.kind == "aggregate" and (pre.input, pre.cache_read, pre.cache_write, pre.output) == (
        10000,
        30000,
        10000,
        2000,
    )
    assert pre.timestamp == 1767258900  # the carried_forward row's time
    old = by[("20251201_3", "sum@pre-ledger")]  # never touched since the ledger exists
    assert (old.input, old.output, old.model) == (120000, 4000, "gpt-4.1")
    s = store.sessions[("goose", "20260101_1")]
    assert s.context_used == 20000  # the last non-compaction call's whole prompt


def test_new_calls_and_the_carried_row_goose_writes_later(tmp_path: Path) -> None:
    """The old session gets a call: Goose first writes the carried_forward row (the totals the
    ledger lacked), then the call, and adds the call to the totals. Nothing is counted twice."""
    db = make_db(tmp_path, "sessions-schema-v17.sql", "sessions-v17.synthetic-data.sql")
    p = AGENT.parser(db)
    first = read(p)
    con = sqlite3.connect(db, isolation_level=None)
    con.executescript("""
        BEGIN;
        INSERT INTO usage_ledger (session_id, created_timestamp, model, input_tokens, output_tokens, total_tokens,
          cost_source) VALUES ('20251201_3', 1767300000, NULL, 120000, 4000, 124000, 'carried_forward');
        UPDATE sessions SET accumulated_input_tokens = accumulated_input_tokens + 3000,
          accumulated_output_tokens = accumulated_output_tokens + 50, input_tokens = 3000, output_tokens = 50,
          updated_at = '2026-01-02 00:00:01' WHERE id = '20251201_3';
        INSERT INTO usage_ledger (session_id, created_timestamp, model, input_tokens, output_tokens, total_tokens,
          cache_read_tokens, cache_write_tokens, cost_source) VALUES
          ('20251201_3', 1767300001, 'gpt-4.1', 3000, 50, 3050, 0, 0, 'estimated');
        COMMIT;
    """)
    con.close()
    second = read(p)
    assert [t.turn_id for t in second if t.session_id == "20251201_3"] == ["ledger:6", "sum@pre-ledger"]
    assert session_numbers(store_of(first, second), "20251201_3") == accumulated(db, "20251201_3")
    # a cold read of the same database gives the same totals
    assert session_numbers(store_of(read(AGENT.parser(db))), "20251201_3") == accumulated(db, "20251201_3")


# ---------------------------------------------------------------------------- schema < 15
def bump(db: Path, sid: str, inp: int, out: int, updated: str) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(
        "UPDATE sessions SET accumulated_input_tokens = ?, accumulated_output_tokens = ?, "
        "accumulated_total_tokens = ?, updated_at = ? WHERE id = ?",
        (inp, out, inp + out, updated, sid),
    )
    con.close()


def v6(tmp_path: Path) -> Path:
    db = make_db(tmp_path, "sessions-schema-v6-legacy.sql")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("DELETE FROM sessions")  # (the DDL file's own synthetic row)
    con.execute(
        "INSERT INTO sessions (id, working_dir, updated_at, input_tokens, output_tokens, accumulated_total_tokens,"
        " accumulated_input_tokens, accumulated_output_tokens, model_config_json) VALUES "
        "('s1', '/w', '2025-10-20 08:30:00', 30000, 500, 90700, 89000, 1700, "
        '\'{"model_name":"claude-sonnet-4-5","context_limit":200000}\')'
    )
    con.close()
    return db


def test_running_totals_become_observed_steps(tmp_path: Path) -> None:
    db = v6(tmp_path)
    p = AGENT.parser(db)
    (first,) = read(p)
    assert first.kind == "step" and (first.input, first.output) == (89000, 1700)
    assert first.context == 30000  # the last call's whole prompt
    bump(db, "s1", 95000, 1900, "2025-10-20 08:31:00")
    (step,) = read(p)
    assert (step.input, step.output, step.timestamp) == (6000, 200, 1760949060.0)
    assert step.turn_id != first.turn_id
    assert read(p) == []  # the same totals again: nothing


def test_observed_steps_never_counted_twice_across_a_restart(tmp_path: Path) -> None:
    db = v6(tmp_path)
    p = AGENT.parser(db)
    store = store_of(read(p))
    state = p.state()
    # a restart: the state comes back from the cache with the file's cursor
    again = AGENT.parser(db)
    again.restore(state)
    assert read(again) == []
    bump(db, "s1", 95000, 1900, "2025-10-20 08:31:00")
    store.apply(read(again))
    assert session_numbers(store, "s1") == (95000, 0, 0, 1900)
    # totals that went DOWN (the row was replaced): a new baseline, nothing counted
    bump(db, "s1", 1000, 10, "2025-10-21 09:00:00")
    assert read(again) == []
    bump(db, "s1", 1500, 20, "2025-10-21 09:01:00")
    store.apply(read(again))
    assert session_numbers(store, "s1") == (95500, 0, 0, 1910)


def test_restart_through_the_engine_and_its_cache(tmp_path: Path) -> None:
    """The same with the real engine and cache: a warm start reads the grown totals once."""
    logs = tmp_path / "logs"
    db = v6(logs)
    ledger_dir = tmp_path / "ledger"
    first = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    first.backfill()
    bump(db, "s1", 95000, 1900, "2025-10-20 08:31:00")
    second = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    second.backfill()
    assert session_numbers(second.store, "s1") == (95000, 0, 0, 1900)
    assert second.store.sessions[("goose", "s1")].totals.turns == 2
    third = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    third.backfill()
    assert session_numbers(third.store, "s1") == (95000, 0, 0, 1900)


def test_upgrade_to_the_ledger_while_followed(tmp_path: Path) -> None:
    """Steps counted below schema 15, then Goose migrates and carries the totals forward."""
    db = v6(tmp_path)
    p = AGENT.parser(db)
    store = store_of(read(p))
    con = sqlite3.connect(db, isolation_level=None)
    ddl = (FIX / "sessions-schema-v17.sql").read_text()
    ledger = ddl[ddl.index("CREATE TABLE IF NOT EXISTS usage_ledger") : ddl.index("CREATE INDEX")]
    con.executescript(
        ledger
        + """
        ALTER TABLE sessions ADD COLUMN accumulated_cost REAL;
        ALTER TABLE sessions ADD COLUMN accumulated_cache_read_tokens INTEGER;
        ALTER TABLE sessions ADD COLUMN accumulated_cache_write_tokens INTEGER;
        INSERT INTO usage_ledger (session_id, created_timestamp, input_tokens, output_tokens, cost_source)
          VALUES ('s1', 1767300000, 89000, 1700, 'carried_forward');
        UPDATE sessions SET accumulated_input_tokens = 91000, accumulated_output_tokens = 1750,
          updated_at = '2026-01-02 00:00:01' WHERE id = 's1';
        INSERT INTO usage_ledger (session_id, created_timestamp, model, input_tokens, output_tokens, cost_source)
          VALUES ('s1', 1767300001, 'claude-sonnet-4-5', 2000, 50, 'estimated');
    """
    )
    con.close()
    store.apply(read(p))
    assert session_numbers(store, "s1") == (91000, 0, 0, 1750)


# ---------------------------------------------------------------------------- legacy, discovery, live
def test_legacy_jsonl_only_without_a_database(tmp_path: Path) -> None:
    folder = tmp_path / "goose" / "sessions"
    folder.mkdir(parents=True)
    path = folder / "20250301_120000.jsonl"
    shutil.copy(FIX / "legacy-20250301_120000.jsonl", path)
    assert AGENT.owns_path(path)
    (t,) = AGENT.parser(path).parse_document(path.read_bytes())
    assert (t.kind, t.input, t.output, t.project) == ("aggregate", 24500, 450, "/home/me/app")
    make_db(tmp_path, "sessions-schema-v17.sql")  # Goose imports these files into its database
    assert AGENT.parser(path).parse_document(path.read_bytes()) == []


def test_roots_and_owned_files(tmp_path: Path) -> None:
    roots = AGENT.roots({"GOOSE_PATH_ROOT": "/g", "XDG_DATA_HOME": "/x"}, tmp_path)
    assert roots[:2] == [Path("/g/data/sessions"), Path("/x/goose/sessions")]
    assert AGENT.roots({}, tmp_path)[0] == tmp_path / ".local" / "share" / "goose" / "sessions"
    assert AGENT.owns_path(Path("/g/data/sessions/sessions.db"))
    assert AGENT.owns_path(Path("/h/.local/share/goose/sessions/sessions.db"))
    assert not AGENT.owns_path(Path("/h/.local/share/goose/sessions/other.db"))
    assert not AGENT.owns_path(Path("/h/elsewhere/sessions/sessions.db"))
    wal = Path("/h/.local/share/goose/sessions/sessions.db-wal")
    assert AGENT.companion_of(wal) == wal.with_name("sessions.db")
    assert AGENT.companion_of(wal.with_name("sessions.db-shm")) is None


def test_reads_never_write(tmp_path: Path) -> None:
    db = make_db(tmp_path, "sessions-schema-v17.sql", "sessions-v17.synthetic-data.sql")
    before = db.read_bytes()
    read(AGENT.parser(db))
    assert db.read_bytes() == before


def test_live_ledger_rows_followed(tmp_path: Path) -> None:
    db = make_db(tmp_path, "sessions-schema-v17.sql", "sessions-v17.synthetic-data.sql")
    engine = Engine(Store(make_pricer()), [tmp_path], debounce_ms=20, step_ms=10)
    engine.backfill()
    s = engine.store.sessions[("goose", "20260101_1")]
    con = sqlite3.connect(db, isolation_level=None)
    try:
        with following(engine) as live:
            con.executescript("""
                BEGIN;
                UPDATE sessions SET accumulated_input_tokens = accumulated_input_tokens + 23000,
                  accumulated_output_tokens = accumulated_output_tokens + 77, input_tokens = 23000,
                  updated_at = '2026-01-01 09:50:00' WHERE id = '20260101_1';
                INSERT INTO usage_ledger (session_id, created_timestamp, model, input_tokens, output_tokens,
                  total_tokens, cache_read_tokens, cache_write_tokens, cost, cost_source, is_compaction)
                  VALUES ('20260101_1', 1767261000, 'claude-sonnet-4-5', 23000, 77, 23077, 2500, 100, 0.01,
                  'estimated', 0);
                COMMIT;
            """)
            t = live.wait_for(lambda t: t.turn_id.startswith("ledger:") and t.output == 77)
            assert (t.input, t.cache_read, t.cache_write) == (20400, 2500, 100)
            s = engine.store.sessions[("goose", "20260101_1")]  # (published anew with each batch)
            assert s.context_used == 23000
            assert session_numbers(engine.store, "20260101_1") == accumulated(db, "20260101_1")
    finally:
        con.close()
