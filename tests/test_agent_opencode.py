"""OpenCode plug-in: the SQLite database (read-only, by watermark) and the legacy JSON files."""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tokwatch.agents import get_agent
from tokwatch.agents import opencode as oc
from tokwatch.agents.opencode import OpenCodeDbParser, OpenCodeJsonParser, message_turn
from tokwatch.cli import main
from tokwatch.core.models import Turn
from tokwatch.core.store import Changes, Store
from tokwatch.core.tailer import open_cursor
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "opencode"
SAMPLE = FIX / "opencode-1.2.26__message-with-parts.json"
AGENT = get_agent("opencode")
T0 = 1773644844131  # ms
SES = "ses_30a879abeffe6KRC0Rmg4aPrmK"

# OpenCode's tables (packages/opencode/src/session/session.sql.ts), as drizzle creates them
SCHEMA = """
CREATE TABLE `session` (
  `id` text PRIMARY KEY NOT NULL, `project_id` text NOT NULL, `parent_id` text, `slug` text NOT NULL,
  `directory` text NOT NULL, `title` text NOT NULL, `version` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL
);
CREATE TABLE `message` (
  `id` text PRIMARY KEY NOT NULL, `session_id` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL,
  FOREIGN KEY (`session_id`) REFERENCES `session`(`id`) ON UPDATE no action ON DELETE cascade
);
CREATE INDEX `message_session_time_created_id_idx` ON `message` (`session_id`,`time_created`,`id`);
CREATE TABLE `part` (
  `id` text PRIMARY KEY NOT NULL, `message_id` text NOT NULL, `session_id` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL
);
"""


def assistant(
    inp: int,
    out: int,
    *,
    reasoning: int = 0,
    read: int = 0,
    write: int = 0,
    total: int | None = None,
    completed: bool = True,
    cost: float = 0.0,
    model: str = "claude-sonnet-4-5",
    created: int = T0,
    cwd: str = "/home/dev/proj/sub",
) -> dict:
    tokens: dict = {
        "input": inp,
        "output": out,
        "reasoning": reasoning,
        "cache": {"read": read, "write": write},
    }
    if total is not None:
        tokens["total"] = total
    d = {
        "role": "assistant",
        "time": {"created": created, **({"completed": created + 4000} if completed else {})},
        "parentID": "msg_user0001",
        "modelID": model,
        "providerID": "anthropic",
        "mode": "build",
        "agent": "build",
        "path": {"cwd": cwd, "root": "/home/dev/proj"},
        "cost": cost,
        "tokens": tokens,
    }
    if completed:
        d["finish"] = "stop"
    return d


def make_db(path: Path, wal: bool = True) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    return con


def add_session(con: sqlite3.Connection, sid: str, directory: str, parent: str | None = None) -> None:
    con.execute(
        "INSERT INTO session VALUES (?, 'prj', ?, 'slug', ?, 'title', '1.2.26', ?, ?)",
        (sid, parent, directory, T0, T0),
    )


def put(con: sqlite3.Connection, mid: str, sid: str, data: dict, updated: int | None = None) -> None:
    """OpenCode's upsert of a message (`data` without id/sessionID)."""
    con.execute(
        "INSERT INTO message (id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET data = excluded.data, time_updated = excluded.time_updated",
        (mid, sid, data["time"]["created"], updated or int(time.time() * 1000), json.dumps(data)),
    )


def populated(path: Path, wal: bool = True) -> sqlite3.Connection:
    con = make_db(path, wal)
    add_session(con, "ses_main", "/home/dev/proj")
    add_session(con, "ses_child", "/home/dev/proj", parent="ses_main")
    put(con, "msg_user0001", "ses_main", {"role": "user", "time": {"created": T0}, "agent": "build"}, T0)
    put(con, "msg_a1", "ses_main", assistant(3, 100, read=0, write=14000, cost=0.06), T0 + 1)
    put(
        con,
        "msg_a2",
        "ses_main",
        assistant(5, 200, reasoning=50, read=14000, write=300, created=T0 + 10),
        T0 + 2,
    )
    put(con, "msg_c1", "ses_child", assistant(1000, 10, created=T0 + 20), T0 + 3)
    put(con, "msg_a3", "ses_main", assistant(0, 0, completed=False, created=T0 + 30), T0 + 4)  # streaming
    return con


def read(parser: OpenCodeDbParser) -> list[Turn]:
    cursor = open_cursor(parser.path)
    assert cursor is not None
    out = parser.read_changed(cursor)
    assert out is not None
    return out


# ---------------------------------------------------------------------- message JSON
def test_real_sample_info_and_parts() -> None:
    (t,) = OpenCodeJsonParser(SAMPLE).parse_document(SAMPLE.read_bytes())
    assert (t.agent, t.session_id, t.turn_id, t.model) == (
        "opencode",
        SES,
        "msg_cf5788c63001hBrorYejcHc1tO",
        "minimax-m2.5",
    )
    assert (t.input, t.cache_read, t.cache_write, t.output, t.reasoning) == (10567, 0, 0, 61, 0)
    assert t.project == "/home/opencode/workspace"
    assert t.timestamp == pytest.approx(1773644844.131)


def test_output_and_reasoning() -> None:
    # current OpenCode: output = outputTokens - reasoningTokens; total = provider total (all of it)
    t = message_turn(assistant(10, 30, reasoning=20, read=5, total=65), "m", "s")
    assert (t.output, t.reasoning) == (50, 20)
    t = message_turn(assistant(10, 30, reasoning=20), "m", "s")  # no total: current semantics
    assert (t.output, t.reasoning) == (50, 20)
    # an older build stored the provider's output, reasoning included: total = input + cache + output
    t = message_turn(assistant(10, 30, reasoning=20, read=5, total=45), "m", "s")
    assert (t.output, t.reasoning) == (30, 20)
    assert message_turn(assistant(0, 0, completed=False), "m", "s") is None
    assert message_turn({"role": "user", "time": {"created": T0}}, "m", "s") is None
    if "cost_usd" in Turn.__dataclass_fields__:
        assert message_turn(assistant(1, 1, cost=0.5), "m", "s").cost_usd == 0.5


def test_legacy_json_layout(tmp_path: Path) -> None:
    storage = tmp_path / "opencode" / "storage"
    msg = storage / "message" / "ses_main" / "msg_a1.json"
    part = storage / "part" / "msg_a1" / "prt_1.json"
    info = storage / "session" / "prj" / "ses_main.json"
    for p in (msg, part, info):
        p.parent.mkdir(parents=True, exist_ok=True)
    data = {"id": "msg_a1", "sessionID": "ses_main", **assistant(3, 100, write=14000)}
    msg.write_text(json.dumps(data, indent=2))
    part.write_text(
        json.dumps(
            {
                "id": "prt_1",
                "sessionID": "ses_main",
                "messageID": "msg_a1",
                "type": "step-finish",
                "tokens": data["tokens"],
                "cost": 0,
            }
        )
    )
    info.write_text(
        json.dumps({"id": "ses_main", "projectID": "prj", "directory": "/home/dev/proj", "title": "t"})
    )
    assert detect(msg) is AGENT
    assert detect(part) is None and detect(info) is None  # step-finish parts would count twice
    store = Store(make_pricer())
    Engine(store, [tmp_path]).backfill()
    s = store.sessions[("opencode", "ses_main")]
    assert (s.totals.turns, s.totals.cache_write, s.totals.output) == (1, 14000, 100)
    assert s.project == "/home/dev/proj/sub"


# ---------------------------------------------------------------------- the database
def test_db_backfill(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    populated(db).close()
    store = Store(make_pricer())
    Engine(store, [tmp_path]).backfill()
    main_s = store.sessions[("opencode", "ses_main")]
    assert main_s.totals.turns == 2  # the user message and the still-empty one are not requests
    assert (main_s.totals.input, main_s.totals.cache_read, main_s.totals.cache_write) == (8, 14000, 14300)
    assert (main_s.totals.output, main_s.totals.reasoning) == (350, 50)
    assert main_s.project == "/home/dev/proj"  # the session's directory, not the message's cwd
    assert main_s.context_used == 5 + 14000 + 300
    child = store.sessions[("opencode", "ses_child")]
    assert (child.totals.turns, child.totals.input) == (1, 1000)


def test_db_rewrites_replace_and_streaming_messages_are_followed(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    con = populated(db)
    store = Store(make_pricer())
    engine = Engine(store, [tmp_path])
    engine.backfill()
    s = store.sessions[("opencode", "ses_main")]
    wal = db.with_name("opencode.db-wal")
    assert wal.exists()
    # the streaming message finishes; its row is rewritten WITHOUT a newer time_updated
    put(con, "msg_a3", "ses_main", assistant(7, 40, read=14300, created=T0 + 30), T0 + 4)
    engine.refresh([wal])
    s = store.sessions[("opencode", "ses_main")]
    assert (s.totals.turns, s.totals.output) == (3, 390)
    # an earlier message rewritten (newer time_updated): its numbers are replaced, not added
    put(con, "msg_a1", "ses_main", assistant(3, 150, write=14000), int(time.time() * 1000))
    engine.refresh([wal])
    s = store.sessions[("opencode", "ses_main")]
    assert (s.totals.turns, s.totals.output, s.totals.cache_write) == (3, 440, 14300)
    # a new message
    put(con, "msg_a4", "ses_main", assistant(2, 9, read=14400, created=T0 + 40), int(time.time() * 1000))
    engine.refresh([wal])
    s = store.sessions[("opencode", "ses_main")]
    assert (s.totals.turns, s.totals.output) == (4, 449)
    con.close()


def test_old_rows_are_found_by_the_periodic_full_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "opencode.db"
    con = populated(db)
    for i in range(5):
        put(con, f"msg_z{i}", "ses_child", assistant(1, 1, created=T0 + 100 + i), T0 + 100 + i)
    parser = OpenCodeDbParser(db)
    assert len(read(parser)) == 3 + 5
    monkeypatch.setattr(oc, "RECENT_ROWS", 2)
    put(con, "msg_a1", "ses_main", assistant(3, 999, write=14000), int(time.time() * 1000))
    # outside the recent rows: not searched on an ordinary change (recent rows within the slack are)
    assert "msg_a1" not in {t.turn_id for t in read(parser)}
    monkeypatch.setattr(oc, "FULL_SCAN_SECONDS", 0.0)
    (t,) = [t for t in read(parser) if t.turn_id == "msg_a1"]
    assert t.output == 999
    con.close()


def test_state_restore_reads_only_what_changed(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    con = populated(db)
    put(con, "msg_old", "ses_main", assistant(1, 1, created=T0 - 60_000), T0 - 60_000)
    first = OpenCodeDbParser(db)
    assert len(read(first)) == 4
    assert first.pending == ["msg_a3"] and first.watermark == T0 + 4
    warm = OpenCodeDbParser(db)
    warm.restore(json.loads(json.dumps(first.state())))
    put(con, "msg_a9", "ses_main", assistant(1, 2, created=T0 + 90), T0 + 60_000)
    # rows updated before the watermark (less the slack) are not read again
    assert {t.turn_id for t in read(warm)} == {"msg_a1", "msg_a2", "msg_c1", "msg_a9"}
    assert warm.watermark == T0 + 60_000
    put(con, "msg_a10", "ses_main", assistant(1, 2, created=T0 + 91), T0 + 90_000)
    warm.full_scan_at = 0.0
    assert {t.turn_id for t in read(warm)} == {"msg_a9", "msg_a10"}
    con.close()


def test_warm_start_from_the_ledger_sees_rows_still_in_the_wal(tmp_path: Path) -> None:
    from tokwatch.core.ledger import Ledger

    data = tmp_path / "data"
    data.mkdir()
    con = populated(data / "opencode.db")
    ledger_dir = tmp_path / "ledger"
    Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [data]).backfill()
    # written while tokwatch was not running; only the -wal file changed, not opencode.db
    put(con, "msg_new", "ses_main", assistant(1, 5, created=T0 + 99), int(time.time() * 1000))
    store = Store(make_pricer(), Ledger.at(ledger_dir))
    Engine(store, [data]).backfill()
    assert store.sessions[("opencode", "ses_main")].totals.turns == 3
    con.close()


def test_locked_database_yields_nothing_then_recovers(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    populated(db, wal=False).close()
    parser = OpenCodeDbParser(db)
    cursor = open_cursor(db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    t = time.monotonic()
    assert parser.read_changed(cursor) == []
    assert time.monotonic() - t < 2.0  # a short busy timeout, never a hang
    assert cursor.mtime_ns == 0  # the next rescan reads again
    writer.execute("COMMIT")
    writer.close()
    assert len(parser.read_changed(cursor)) == 3


def test_mid_migration_and_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE session (id text)")  # the message table does not exist yet
    parser = OpenCodeDbParser(db)
    assert read(parser) == []
    con.execute("DROP TABLE session")
    con.executescript(SCHEMA)
    add_session(con, "ses_main", "/p")
    put(con, "msg_a1", "ses_main", assistant(1, 2), T0)
    assert [t.project for t in read(parser)] == ["/p"]
    con.close()
    junk = tmp_path / "x" / "opencode.db"
    junk.parent.mkdir()
    junk.write_bytes(b"not a database at all" * 100)
    assert read(OpenCodeDbParser(junk)) == []
    gone = OpenCodeDbParser(tmp_path / "missing.db")
    assert gone.read_changed(open_cursor(db)) is None


def test_a_bad_row_does_not_hide_the_others(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    con = populated(db)
    con.execute(
        "INSERT INTO message VALUES ('msg_bad', 'ses_main', 1, ?, '{\"role\":\"assistant\", torn')", (T0 + 9,)
    )
    bad_tokens = assistant(1, 1)
    bad_tokens["tokens"]["input"] = -5
    put(con, "msg_neg", "ses_main", bad_tokens, T0 + 10)
    assert {t.turn_id for t in read(OpenCodeDbParser(db))} == {"msg_a1", "msg_a2", "msg_c1"}
    con.close()


def test_reads_never_write(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    populated(db, wal=False).close()
    before = (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns)
    parser = OpenCodeDbParser(db)
    for _ in range(3):
        read(parser)
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opencode.db"]


def test_database_and_legacy_json_count_a_message_once(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    (data / "storage" / "message" / "ses_main").mkdir(parents=True)
    populated(data / "opencode.db").close()
    legacy = {"id": "msg_a1", "sessionID": "ses_main", **assistant(3, 100, write=14000)}
    (data / "storage" / "message" / "ses_main" / "msg_a1.json").write_text(json.dumps(legacy))
    store = Store(make_pricer())
    Engine(store, [tmp_path]).backfill()
    assert store.sessions[("opencode", "ses_main")].totals.turns == 2


def test_live_database_followed_by_the_engine(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    con = populated(db)
    store = Store(make_pricer())
    engine = Engine(store, [tmp_path])
    engine.backfill()
    s = store.sessions[("opencode", "ses_main")]
    assert s.totals.turns == 2
    seen: queue.Queue[Turn] = queue.Queue()

    def on_turns(changes: Changes) -> None:
        for c in changes.turns:
            seen.put(c.turn)

    def wait_for(pred, timeout: float = 1.5) -> Turn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                t = seen.get(timeout=0.05)
            except queue.Empty:
                continue
            if pred(t):
                return t
        raise AssertionError("no matching turn in time")

    stop = threading.Event()
    th = threading.Thread(target=engine.follow, args=(stop, on_turns), daemon=True)
    th.start()
    try:
        time.sleep(0.3)  # the watcher is up
        t0 = time.monotonic()
        put(
            con,
            "msg_live",
            "ses_main",
            assistant(4, 0, completed=False, created=T0 + 50),
            int(time.time() * 1000),
        )
        put(
            con,
            "msg_live",
            "ses_main",
            assistant(4, 77, read=14500, created=T0 + 50),
            int(time.time() * 1000),
        )
        wait_for(lambda t: t.turn_id == "msg_live" and t.output == 77)
        assert time.monotonic() - t0 < 1.0
        # rewritten again: the new numbers replace the old ones
        put(
            con,
            "msg_live",
            "ses_main",
            assistant(4, 90, read=14500, created=T0 + 50),
            int(time.time() * 1000),
        )
        wait_for(lambda t: t.turn_id == "msg_live" and t.output == 90)
        s = store.sessions[("opencode", "ses_main")]
        assert (s.totals.turns, s.totals.output) == (3, 100 + 250 + 90)
    finally:
        stop.set()
        th.join(timeout=5)
        con.close()
    assert not th.is_alive()


# ---------------------------------------------------------------------- discovery
def test_paths_roots_and_companions(tmp_path: Path) -> None:
    data = tmp_path / ".local" / "share" / "opencode"
    data.mkdir(parents=True)
    (data / "opencode-dev.db").write_bytes(b"")
    assert AGENT.roots({}, tmp_path) == [
        data / "opencode.db",
        data / "opencode-dev.db",
        data / "storage" / "message",
    ]
    xdg = AGENT.roots({"XDG_DATA_HOME": "/x"}, tmp_path)
    assert xdg[0] == Path("/x/opencode/opencode.db")
    roots = AGENT.roots({"XDG_DATA_HOME": "/x", "OPENCODE_DB": "custom.sqlite"}, tmp_path)
    assert Path("/x/opencode/custom.sqlite") in roots
    assert AGENT.owns_path(Path("/x/opencode/custom.sqlite"))
    assert AGENT.companion_of(Path("/x/opencode/custom.sqlite-wal")) == Path("/x/opencode/custom.sqlite")
    assert AGENT.companion_of(data / "opencode.db-wal") == data / "opencode.db"
    assert AGENT.companion_of(data / "opencode.db-shm") is None  # our own reads touch -shm
    assert AGENT.companion_of(data / "other.db-wal") is None
    assert not AGENT.owns_path(data / "auth.db")
    assert detect(SAMPLE) is AGENT
    head = SAMPLE.read_bytes()[:4096]
    for other in ("claude", "codex", "gemini"):
        a = get_agent(other)
        assert not a.owns_path(SAMPLE) and not a.sniff(head), other


def test_export_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populated(tmp_path / "opencode.db").close()
    shutil.copy(SAMPLE, tmp_path / SAMPLE.name)
    assert main(["export", "--no-cache", "--format", "json", str(tmp_path)]) == 0
    rows = {
        (r["session_id"], r["model"]): r
        for r in json.loads(capsys.readouterr().out)
        if r["agent"] == "opencode"
    }
    assert set(rows) == {
        ("ses_main", "claude-sonnet-4-5"),
        ("ses_child", "claude-sonnet-4-5"),
        (SES, "minimax-m2.5"),
    }
    main_row = rows[("ses_main", "claude-sonnet-4-5")]
    assert (main_row["turns"], main_row["output_tokens"], main_row["reasoning_tokens"]) == (2, 350, 50)
    assert main_row["project"] == "/home/dev/proj"
    assert rows[(SES, "minimax-m2.5")]["input_tokens"] == 10567


def test_fuzz_message_json_only_badline() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tokwatch.agents.base import BadLine

    keys = st.sampled_from(
        [
            "info",
            "id",
            "sessionID",
            "role",
            "tokens",
            "input",
            "output",
            "reasoning",
            "cache",
            "read",
            "write",
            "total",
            "modelID",
            "time",
            "created",
            "path",
            "cwd",
            "cost",
        ]
    )
    values = st.recursive(
        st.none() | st.integers(-5, 10**13) | st.sampled_from(["assistant", "user"]) | st.floats(),
        lambda c: st.dictionaries(keys, c, max_size=6) | st.lists(c, max_size=3),
        max_leaves=30,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=values)
    def check(doc: object) -> None:
        try:
            turns = OpenCodeJsonParser(SAMPLE).parse_document(json.dumps(doc).encode())
        except BadLine:
            return
        for t in turns:
            assert min(t.input, t.cache_read, t.cache_write, t.output, t.reasoning) >= 0
            assert t.reasoning <= t.output

    check()


def test_fork_copies_are_counted_once(tmp_path: Path) -> None:
    """Upstream `Session.fork` copies every earlier message under a new id with the same
    `time.created`, model and tokens (keeping the cost): one request, counted in one session."""
    con = populated(tmp_path / "opencode.db")
    add_session(con, "ses_fork", "/home/dev/proj")
    put(con, "msg_f1", "ses_fork", assistant(3, 100, read=0, write=14000, cost=0.06), T0 + 5)
    put(con, "msg_f2", "ses_fork", assistant(7, 70, created=T0 + 90), T0 + 6)  # the fork's own
    con.close()
    store = Store(make_pricer())
    Engine(store, [tmp_path]).backfill()
    assert store.totals().turns == 3 + 1  # ses_main 2, ses_child 1, and the fork's own request
    assert store.sessions[("opencode", "ses_fork")].totals.output == 70
