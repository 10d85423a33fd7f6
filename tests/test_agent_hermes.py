"""Hermes Agent plug-in: `state.db` built with Hermes' exact DDL (schema 30). CLI sessions (per-call
deltas into both `sessions.*` and `session_model_usage`) vs gateway sessions (absolute totals in
`sessions.*` only), auxiliary calls, observed steps never counted twice, a gateway reset."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from agent_live import following

from tokwatch.agents import get_agent
from tokwatch.agents.hermes import HermesParser
from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.core.tailer import open_cursor
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "hermes"
AGENT = get_agent("hermes")
CLI, GATEWAY, CHILD = "20260101_090000_a1b2c3", "20260101_100000_d4e5f6", "20260101_091640_0a0b0c"


def make_db(home: Path, data: bool = True) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "state.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript((FIX / "state-schema-v30.sql").read_text())
    if data:
        con.executescript((FIX / "state.synthetic-data.sql").read_text())
    con.close()
    return path


def read(parser: HermesParser) -> list[Turn]:
    cursor = open_cursor(parser.path)
    assert cursor is not None
    out = parser.read_changed(cursor)
    assert out is not None
    return out


def numbers(store: Store, sid: str) -> tuple[int, int, int, int, int]:
    t = store.sessions[("hermes", sid)].totals
    return (t.input, t.cache_read, t.cache_write, t.output, t.reasoning)


def store_of(*batches: list[Turn]) -> Store:
    store = Store(make_pricer())
    for b in batches:
        store.apply(b)
    return store


def execute(db: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute(sql, args)
    finally:
        con.close()


def test_cli_session_rows_and_aux_calls(tmp_path: Path) -> None:
    """CLI: `sessions.*` = the main-loop rows (never both), plus an auxiliary title call that is
    only in `session_model_usage`."""
    db = make_db(tmp_path / ".hermes")
    turns = read(AGENT.parser(db))
    store = store_of(turns)
    cli = [t for t in turns if t.session_id == CLI]
    assert all(t.kind == "step" for t in turns)
    assert sorted(t.model for t in cli) == [
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.5-flash",
        "openai/gpt-5-mini",
    ]
    # sessions.* (6100 in, 1900 out, …) + the aux title call (450 in, 12 out)
    assert numbers(store, CLI) == (6100 + 450, 88000, 12000, 1900 + 12, 300)
    sonnet = next(t for t in cli if t.model == "anthropic/claude-sonnet-4.5")
    assert (sonnet.input, sonnet.cache_read, sonnet.cache_write, sonnet.output) == (4100, 70000, 12000, 1500)
    assert sonnet.cost_usd == pytest.approx(0.0891)  # the actual (billed) cost over the estimate
    assert sonnet.timestamp == 1767258600.0 and sonnet.project == "/home/me/app"
    assert numbers(store, CHILD) == (800, 3000, 0, 150, 0)  # a compression child: its own row


def test_gateway_session_totals_without_main_loop_rows(tmp_path: Path) -> None:
    """A gateway writes absolute totals into `sessions.*` and no main-loop row: counted from the
    session row (and its auxiliary compression call from its own row)."""
    db = make_db(tmp_path / ".hermes")
    turns = [t for t in read(AGENT.parser(db)) if t.session_id == GATEWAY]
    store = store_of(turns)
    assert numbers(store, GATEWAY) == (9000 + 30000, 140000, 20000, 2500 + 1200, 0)
    assert {t.model for t in turns} == {"claude-sonnet-4-5", "claude-haiku-4-5"}


def test_steps_never_counted_twice_across_a_restart(tmp_path: Path) -> None:
    db = make_db(tmp_path / ".hermes")
    p = AGENT.parser(db)
    store = store_of(read(p))
    again = AGENT.parser(db)
    again.restore(p.state())
    assert read(again) == []
    # one more CLI call: Hermes adds the delta to the session row and to its main-loop row
    execute(
        db,
        "UPDATE sessions SET input_tokens = input_tokens + 300, output_tokens = output_tokens + 40 WHERE id = ?",
        CLI,
    )
    execute(
        db,
        "UPDATE session_model_usage SET input_tokens = input_tokens + 300, output_tokens = output_tokens + 40, "
        "last_seen = 1767263000.0 WHERE session_id = ? AND model = 'openai/gpt-5-mini'",
        CLI,
    )
    (step,) = read(again)
    assert (step.model, step.input, step.output, step.timestamp) == (
        "openai/gpt-5-mini",
        300,
        40,
        1767263000.0,
    )
    store.apply([step])
    assert numbers(store, CLI)[0] == 6100 + 450 + 300
    assert read(again) == []


def test_gateway_reset_rebaselines(tmp_path: Path) -> None:
    """The gateway's cached agent was rebuilt: its totals go DOWN. Nothing is emitted, and only
    the growth from the new value is counted later (as Hermes' own daily table does)."""
    db = make_db(tmp_path / ".hermes")
    p = AGENT.parser(db)
    store = store_of(read(p))
    before = numbers(store, GATEWAY)
    execute(db, "UPDATE sessions SET input_tokens = 500, output_tokens = 100, cache_read_tokens = 0, "
            "cache_write_tokens = 0 WHERE id = ?", GATEWAY)  # fmt: skip
    assert read(p) == []
    execute(db, "UPDATE sessions SET input_tokens = 800, output_tokens = 150 WHERE id = ?", GATEWAY)
    store.apply(read(p))
    after = numbers(store, GATEWAY)
    assert (after[0] - before[0], after[3] - before[3]) == (300, 50)


def test_restart_through_the_engine_and_its_cache(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    db = make_db(logs / ".hermes")
    ledger_dir = tmp_path / "ledger"
    e1 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    e1.backfill()
    execute(db, "UPDATE sessions SET input_tokens = input_tokens + 1000 WHERE id = ?", GATEWAY)
    e2 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    e2.backfill()
    assert numbers(e2.store, GATEWAY)[0] == 9000 + 30000 + 1000
    e3 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [logs])
    e3.backfill()
    assert numbers(e3.store, GATEWAY)[0] == 9000 + 30000 + 1000


def test_roots_profiles_and_owned_files(tmp_path: Path) -> None:
    make_db(tmp_path / ".hermes" / "profiles" / "work", data=False)
    roots = AGENT.roots({}, tmp_path)
    assert roots == [
        tmp_path / ".hermes" / "state.db",
        tmp_path / ".hermes" / "profiles" / "work" / "state.db",
    ]
    assert AGENT.roots({"HERMES_HOME": "/hh"}, tmp_path)[0] == Path("/hh/state.db")
    assert AGENT.owns_path(Path("/hh/state.db"))
    assert AGENT.owns_path(tmp_path / ".hermes" / "profiles" / "work" / "state.db")
    assert not AGENT.owns_path(tmp_path / "elsewhere" / "state.db")
    assert AGENT.companion_of(tmp_path / ".hermes" / "state.db-wal") == tmp_path / ".hermes" / "state.db"


def test_live_gateway_totals_followed(tmp_path: Path) -> None:
    db = make_db(tmp_path / ".hermes")
    engine = Engine(Store(make_pricer()), [tmp_path / ".hermes" / "state.db"], debounce_ms=20, step_ms=10)
    engine.backfill()
    with following(engine) as live:
        # a gateway turn: its message, then the background writer's absolute totals
        con = sqlite3.connect(db, isolation_level=None)
        try:
            con.execute(
                "INSERT INTO messages (session_id, role, content, timestamp) VALUES (?, 'user', 'hi', 1767262500.0)",
                (GATEWAY,),
            )
            con.execute(
                "UPDATE sessions SET input_tokens = 9400, output_tokens = 2600, last_activity_at = 1767262510.0 "
                "WHERE id = ?",
                (GATEWAY,),
            )
        finally:
            con.close()
        t = live.wait_for(lambda t: t.session_id == GATEWAY and t.input == 400)
    assert (t.output, t.timestamp, t.kind) == (100, 1767262510.0, "step")
