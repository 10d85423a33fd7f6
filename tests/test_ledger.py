"""The ledger: a warm start gives what a cold one gives, billed turns outlive their logs, several
processes share it, damage is reported and never believed, and every schema upgrades."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tokwatch.config import Config, PriceOverride
from tokwatch.core import ledger as ledger_mod
from tokwatch.core.ledger import FILE_NAME, Ledger, LedgerError
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output.export import rows

FIXTURES = Path(__file__).parent / "fixtures" / "cache"
REAL = Path(__file__).parent / "fixtures" / "real"


def _assistant(
    mid: str, inp: int, out: int, ts: str = "2026-01-01T00:00:00.000Z", session: str = "s-l"
) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "assistant",
                "sessionId": session,
                "cwd": "/p",
                "timestamp": ts,
                "requestId": f"req_{mid}",
                "message": {
                    "id": mid,
                    "model": "claude-sonnet-4-5-20250929",
                    "usage": {
                        "input_tokens": inp,
                        "output_tokens": out,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 10,
                    },
                },
            }
        )
        + b"\n"
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(FIXTURES, root)
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


def _engine(root: Path, data: Path | None, config: Config | None = None) -> Engine:
    ledger = Ledger.at(data) if data is not None else Ledger.memory()
    engine = Engine(Store(make_pricer(config), ledger), [root])
    engine.backfill()
    return engine


def _export(
    root: Path, data: Path | None, config: Config | None = None
) -> tuple[list[dict[str, object]], Engine]:
    engine = _engine(root, data, config)
    return [r.model_dump() for r in rows(engine.store)], engine


def _row(export_rows: list[dict[str, object]], session: str = "s-l") -> tuple[object, ...]:
    row = next(r for r in export_rows if r["session_id"] == session)
    return (row["turns"], row["input_tokens"], row["output_tokens"])


def _log(logs: Path) -> Path:
    log = logs / "claude" / "projects" / "-p" / "s-l.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    return log


# ---------------------------------------------------------------- warm equals cold
def test_warm_equals_cold_and_reads_only_what_was_appended(logs: Path, data: Path) -> None:
    cold, _ = _export(logs, None)
    first, _ = _export(logs, data)
    assert first == cold
    assert (data / FILE_NAME).is_file()
    assert (data / FILE_NAME).stat().st_mode & 0o777 == 0o600
    warm, engine = _export(logs, data)
    assert warm == cold
    for f in engine.files.values():  # every file resumed at its end: nothing left to read
        assert f.cursor.offset == f.cursor.size or f.document
        assert f._parser is None or f.document  # an unchanged file was not even opened


def test_append_after_a_start_is_read_once(logs: Path, data: Path) -> None:
    log = _log(logs)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, data)
    with open(log, "ab") as f:
        f.write(_assistant("m2", 3, 4))
    warm, _ = _export(logs, data)
    cold, _ = _export(logs, None)
    assert warm == cold
    assert _row(warm) == (2, 8, 11)


# ---------------------------------------------------------------- billed turns outlive their logs
def test_truncated_log_is_read_again_and_earlier_turns_stay(logs: Path, data: Path) -> None:
    log = _log(logs)
    log.write_bytes(_assistant("m1", 5, 7) + _assistant("m2", 3, 4))
    _export(logs, data)
    log.write_bytes(_assistant("m9", 1, 1))  # truncated and rewritten, shorter
    warm, _ = _export(logs, data)
    assert _row(warm) == (3, 9, 12)
    cold, _ = _export(logs, None)  # without the ledger only what the file holds now is known
    assert _row(cold) == (1, 1, 1)


def test_replaced_log_of_the_same_size_is_read_again(logs: Path, data: Path) -> None:
    log = _log(logs)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, data)
    tmp = log.with_suffix(".tmp")
    tmp.write_bytes(_assistant("m2", 6, 8))  # same length, other content, new inode
    os.replace(tmp, log)
    assert _row(_export(logs, data)[0]) == (2, 11, 15)
    tmp.write_bytes(_assistant("m2", 6, 8))  # the same turn written again: counted once
    os.replace(tmp, log)
    assert _row(_export(logs, data)[0]) == (2, 11, 15)


def test_rewritten_in_place_with_other_first_bytes_is_read_again(logs: Path, data: Path) -> None:
    log = _log(logs)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, data)
    with open(log, "r+b") as f:  # same inode, longer, different start
        f.write(_assistant("m3", 2, 2, ts="2026-01-02T00:00:00.000Z") + _assistant("m4", 1, 1))
    assert _row(_export(logs, data)[0]) == (3, 8, 10)
    assert _row(_export(logs, None)[0]) == (2, 3, 3)


def test_log_deleted_while_running_is_kept_and_archived(logs: Path, data: Path) -> None:
    cold, _ = _export(logs, None)
    engine = _engine(logs, data)
    victim = next(logs.rglob("rollout-*.jsonl"))
    victim.unlink()
    engine.refresh([victim])
    warm, restarted = _export(logs, data)
    assert warm == cold  # the deleted session's turns were billed: still counted
    assert restarted.archived_files == 1
    assert [s.agent for s in restarted.store.sessions.values() if s.archived] == ["codex"]
    assert len(_export(logs, None)[0]) == len(cold) - 1  # the logs alone no longer have it


def test_upgrade_imports_the_old_cache_with_its_deleted_logs(logs: Path, tmp_path: Path) -> None:
    """Nobody loses history by upgrading: tokwatch 0.1's cache (format 4) is imported, the turns of
    logs deleted since included, and the cache files go."""
    from tokwatch.ingest.legacy import import_cache

    cold, _ = _export(logs, None)
    victim = next(logs.rglob("rollout-*.jsonl"))
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    _write_v4_cache(cache_dir / "cache.jsonl", logs)
    (cache_dir / "cache.json").write_text("{}")  # an even older one
    victim.unlink()
    store = Store(make_pricer(), Ledger.at(tmp_path / "ledger"))
    notes = import_cache(store, cache_dir)
    assert notes and "imported" in notes[0]
    assert not (cache_dir / "cache.jsonl").exists() and not (cache_dir / "cache.json").exists()
    engine = Engine(store, [logs])
    engine.backfill()
    assert [r.model_dump() for r in rows(engine.store)] == cold
    assert engine.archived_files == 1
    assert all(f._parser is None or f.document for f in engine.files.values())  # resumed, not read again
    assert import_cache(store, cache_dir) == []  # once


def _write_v4_cache(path: Path, logs: Path) -> None:
    """A cache file exactly as tokwatch 0.1 wrote it (format 4): a header, then turns per file."""
    engine = Engine(Store(make_pricer()), [logs])
    engine.backfill()
    files: dict[str, object] = {}
    parts: list[bytes] = []
    at = 0
    for p, f in engine.files.items():
        turns = engine.store.turns_of((f.agent.name, next(iter(f.sessions)))) if f.sessions else []
        blob = orjson.dumps([t.to_row()[:17] for t in turns])
        c = f.cursor
        files[str(p)] = {
            "agent": f.agent.name, "dev": c.dev, "ino": c.ino, "size": c.size, "mtime_ns": c.mtime_ns,
            "offset": c.offset, "fingerprint": c.fingerprint.hex(), "fp_len": c.fp_len, "tail": c.tail.hex(),
            "state": f.parser.state(), "sessions": sorted(f.sessions), "count": len(turns), "at": [at, at + len(blob)],
        }  # fmt: skip
        parts += [blob, b"\n"]
        at += len(blob) + 1
    head = {"version": 4, "fields": [], "bytes": at, "files": files, "snapshot": None, "cards": None}
    path.write_bytes(orjson.dumps(head) + b"\n" + b"".join(parts))


# ---------------------------------------------------------------- prices
def test_a_price_change_reprices_history_once(logs: Path, data: Path) -> None:
    before, _ = _export(logs, data)
    cheap = Config(
        prices={
            "claude-sonnet-4-5-20250929": PriceOverride(
                input=0.0, output=0.0, cache_read=0.0, cache_write=0.0
            )
        }
    )
    after, _ = _export(logs, data, cheap)
    changed = {
        (r["session_id"], r["model"])
        for r in after
        if r["cost_usd"]
        != next(
            b["cost_usd"] for b in before if (b["session_id"], b["model"]) == (r["session_id"], r["model"])
        )
    }
    assert changed and all(r["cost_usd"] == 0.0 for r in after if r["model"] == "claude-sonnet-4-5-20250929")
    assert _export(logs, None, cheap)[0] == after  # the same as reading the logs at those prices
    assert _export(logs, data)[0] == before  # and back


# ---------------------------------------------------------------- several processes
def test_a_scoped_process_never_drops_what_another_recorded(logs: Path, data: Path) -> None:
    """The cache's old failure: a process that read fewer files saved its view over one that read
    more, and a deleted log's turns were gone for good. The ledger only adds."""
    everything, _ = _export(logs, data)
    _export(logs / "codex", data)  # a narrower view, later
    for victim in list(logs.rglob("*.jsonl"))[:2]:
        victim.unlink()
    again, _ = _export(logs, data)
    assert again == everything


def test_two_writers_on_one_ledger(logs: Path, data: Path) -> None:
    e1 = Engine(Store(make_pricer(), Ledger.at(data)), [logs])
    e2 = Engine(Store(make_pricer(), Ledger.at(data)), [logs])
    e1.backfill()
    e2.backfill()
    log = _log(logs)
    log.write_bytes(_assistant("m1", 5, 7))
    c1 = e1.refresh([log.parent])
    c2 = e2.refresh([log.parent])
    # both show it; the second found it recorded by the first: news to it, not counted twice
    assert [c.turn.turn_id for c in c1.turns] == [c.turn.turn_id for c in c2.turns]
    assert _row([r.model_dump() for r in rows(e1.store)]) == (1, 5, 7)
    assert _row([r.model_dump() for r in rows(e2.store)]) == (1, 5, 7)
    with open(log, "ab") as f:
        f.write(_assistant("m2", 1, 1))
    e2.refresh([log])
    e1.refresh([log])
    assert _row([r.model_dump() for r in rows(e1.store)]) == (2, 6, 8)
    assert _row(_export(logs, data)[0]) == (2, 6, 8)


# ---------------------------------------------------------------- damage
def test_a_corrupt_ledger_is_moved_aside_reported_and_rebuilt(logs: Path, data: Path) -> None:
    cold, _ = _export(logs, None)
    _export(logs, data)
    db = data / FILE_NAME
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # the schema page: unreadable
    db.write_bytes(bytes(raw))
    warm, engine = _export(logs, data)
    assert warm == cold  # rebuilt from the logs
    aside = [p for p in data.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1
    assert any("could not be read" in n and str(aside[0]) in n for n in engine.problems)


def test_a_damaged_page_keeps_what_can_be_salvaged(logs: Path, data: Path) -> None:
    _export(logs, data)
    ledger = Ledger.at(data)
    with ledger.transaction() as db:
        db.execute("CREATE TABLE filler(x BLOB)")  # move the session states off page 2...
    ledger.close()
    db_path = data / FILE_NAME
    with sqlite3.connect(db_path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n_turns = con.execute("SELECT count(*) FROM turns").fetchone()[0]
    fresh = Ledger.at(data)
    fresh._db = None
    opened = fresh._recover(sqlite3.DatabaseError("simulated"))  # as if the file had failed to open
    assert fresh.opened.moved_aside is not None and fresh.opened.salvaged_turns == n_turns
    assert opened.execute("SELECT count(*) FROM turns").fetchone()[0] == n_turns


def test_damaged_session_state_and_file_records_are_not_believed(logs: Path, data: Path) -> None:
    cold, _ = _export(logs, None)
    _export(logs, data)
    with sqlite3.connect(data / FILE_NAME) as con:
        con.execute("UPDATE sessions SET state = X'7b6e6f74206a736f6e'")  # '{not json'
        con.execute("UPDATE files SET state = 'nonsense', sessions = '[1, 2]' WHERE rowid % 2 = 0")
    warm, engine = _export(logs, data)
    assert warm == cold  # folded again from the turns; the damaged records' files read again
    assert any("damaged file records" in n for n in engine.problems)


def test_bad_values_cannot_be_written(data: Path) -> None:
    ledger = Ledger.at(data)
    ledger.open()
    with pytest.raises(sqlite3.IntegrityError), ledger.transaction() as db:
        db.execute("INSERT INTO sessions(agent, session_id) VALUES('a', 's')")
        db.execute(
            "INSERT INTO turns VALUES(1, 't', 'm', 1e9, 'twelve', 0, 0, 0, 0, 0, 0, 0, 0, '', NULL, NULL, '', 0)"
        )  # a count that is not a number (STRICT: '12' would be stored as the integer 12)
    for bad in ("-1", "1000000000001", "253402300800.0"):
        col = "ts" if "." in bad else "input"
        with pytest.raises(sqlite3.IntegrityError), ledger.transaction() as db:
            db.execute("INSERT OR IGNORE INTO sessions(agent, session_id) VALUES('a', 's')")
            db.execute(
                f"INSERT INTO turns(session, turn_id, model, ts, input, cache_read, cache_write, cache_write_1h, output,"
                f" reasoning, context_tokens, context_window, flags, project, writer) VALUES(1, 't', 'm',"
                f" {bad if col == 'ts' else '1e9'}, {bad if col == 'input' else 0}, 0, 0, 0, 0, 0, 0, 0, 0, '', 0)"
            )


def test_a_fifo_in_place_of_the_ledger_never_blocks(tmp_path: Path, logs: Path) -> None:
    data = tmp_path / "fifo-data"
    data.mkdir()
    os.mkfifo(data / FILE_NAME)
    code = (
        "import sys; from tokwatch.cli import main; "
        f"sys.exit(main(['export', {str(logs)!r}, '-o', {str(tmp_path / 'out.csv')!r}]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TOKWATCH_DATA_DIR": str(data)},
        timeout=60,
        capture_output=True,
    )
    assert r.returncode == 0, r.stderr
    assert (data / FILE_NAME).is_file()  # a new ledger; the FIFO moved aside
    assert b"could not be read" in r.stderr


def test_a_command_leaves_no_write_ahead_log_behind(logs: Path, data: Path) -> None:
    """`export` returns without closing anything: the ledger's connections are still closed at exit,
    so the WAL is checkpointed into the database and removed, not left on disk beside it."""
    env = {**os.environ, "TOKWATCH_DATA_DIR": str(data)}
    out = data.parent / "out.csv"
    r = subprocess.run(
        [sys.executable, "-m", "tokwatch", "export", str(logs), "-o", str(out)], env=env, capture_output=True
    )
    assert r.returncode == 0, r.stderr
    assert (data / FILE_NAME).stat().st_size > 0 and out.read_text().count("\n") > 1
    assert not (data / (FILE_NAME + "-wal")).exists()
    with sqlite3.connect(data / FILE_NAME) as db:  # everything is in the database itself
        assert db.execute("SELECT count(*) FROM turns").fetchone()[0] > 0


def test_a_newer_schema_is_refused_not_rewritten(data: Path) -> None:
    ledger = Ledger.at(data)
    ledger.open()
    ledger.db.execute(f"PRAGMA user_version={ledger_mod.SCHEMA_VERSION + 1}")
    ledger.close()
    with pytest.raises(LedgerError, match="newer tokwatch"):
        Ledger.at(data).open()
    assert not [p for p in data.iterdir() if ".corrupt-" in p.name]


def test_every_schema_version_upgrades_in_order(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database at each earlier version (data written in it) opens and upgrades to the current one."""
    for version in range(ledger_mod.SCHEMA_VERSION):
        path = data / f"v{version}" / FILE_NAME
        path.parent.mkdir(parents=True)
        with sqlite3.connect(path) as con:
            for v in range(version):
                con.executescript(ledger_mod.MIGRATIONS[v])
            con.execute(f"PRAGMA user_version={version}")
            if version >= 1:
                con.execute("INSERT INTO sessions(agent, session_id) VALUES('claude', 'old')")
                con.execute(
                    "INSERT INTO turns(session, turn_id, model, ts, input, cache_read, cache_write, cache_write_1h,"
                    " output, reasoning, context_tokens, context_window, flags, project, writer)"
                    " VALUES(1, 't1', 'claude-sonnet-4-5', 1e9, 5, 0, 0, 0, 7, 0, 0, 0, 0, '', 0)"
                )
        ledger = Ledger(path)
        ledger.open()
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == ledger_mod.SCHEMA_VERSION
        if version >= 1:
            assert ledger.opened.migrated_from == version
            assert ledger.count_turns() == 1  # the data survives the upgrade
        ledger.close()


# ---------------------------------------------------------------- dump, import, prune
def test_export_import_round_trip_is_idempotent(logs: Path, tmp_path: Path, data: Path) -> None:
    from tokwatch.cli import main

    cold, _ = _export(logs, None)
    _export(logs, data)
    dump = tmp_path / "dump.jsonl"
    os.environ["TOKWATCH_DATA_DIR"] = str(data)
    try:
        assert main(["ledger", "export", "-o", str(dump)]) == 0
        assert main(["ledger", "export", "--format", "csv", "-o", str(tmp_path / "dump.csv")]) == 0
    finally:
        del os.environ["TOKWATCH_DATA_DIR"]
    other = tmp_path / "other-machine"
    for source in (dump, tmp_path / "dump.csv", dump):  # twice the same: nothing doubles
        os.environ["TOKWATCH_DATA_DIR"] = str(other)
        try:
            assert main(["ledger", "import", str(source)]) == 0
        finally:
            del os.environ["TOKWATCH_DATA_DIR"]
    merged = Ledger.at(other)
    assert merged.count_turns() == Ledger.at(data).count_turns()
    store = Store(make_pricer(), merged)
    store.load()
    got = {
        (s.agent, s.session_id): (s.totals.turns, s.totals.total, s.totals.cost_pico)
        for s in store.sessions.values()
    }
    engine = _engine(logs, data)
    want = {k: (s.totals.turns, s.totals.total, s.totals.cost_pico) for k, s in engine.store.sessions.items()}
    assert got == want
    assert sum(r["turns"] for r in cold) == sum(v[0] for v in got.values())


def test_prune_forgets_only_older_turns_and_asks_first(
    logs: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tokwatch.cli import main

    log = _log(logs)
    log.write_bytes(
        _assistant("old", 5, 7, ts="2025-01-01T00:00:00Z")
        + _assistant("new", 3, 4, ts="2026-06-01T00:00:00Z")
    )
    _export(logs, data)
    os.environ["TOKWATCH_DATA_DIR"] = str(data)
    try:
        assert main(["ledger", "prune", "--before", "2025-06-01"]) == 2  # no terminal to ask: refused
        assert "--yes" in capsys.readouterr().err
        assert main(["ledger", "prune", "--before", "2025-06-01", "--yes"]) == 0
    finally:
        del os.environ["TOKWATCH_DATA_DIR"]
    store = Store(make_pricer(), Ledger.at(data))
    store.load()
    s = store.sessions[("claude", "s-l")]
    assert (s.totals.turns, s.totals.input, s.totals.output) == (1, 3, 4)


# ---------------------------------------------------------------- kill -9
KILL_CODE = """
import sys
from pathlib import Path
from tokwatch.core.ledger import Ledger
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
engine = Engine(Store(make_pricer(), Ledger.at(Path(sys.argv[1]))), [Path(sys.argv[2])])
engine.backfill(workers=1)
print("ready", flush=True)
import threading
engine.follow(threading.Event(), lambda changes: print("batch", flush=True))
"""


def test_kill_minus_9_at_random_points_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    """A reader killed at any moment (during the backfill, while recording live appends) then
    restarted: the ledger's totals are exactly the logs' totals."""
    import random
    import signal
    import time

    rng = random.Random(1234)
    root = tmp_path / "logs"
    data = tmp_path / "ledger"
    files = [root / "claude" / "projects" / f"-p{i}" / f"s{i}.jsonl" for i in range(6)]
    n = 0
    for f in files:  # enough history that a kill often lands inside the backfill
        f.parent.mkdir(parents=True)
        f.write_bytes(b"".join(_assistant(f"h{n + k}", k + 1, 2 * k + 1, session=f.stem) for k in range(400)))
        n += 400
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for i in range(50):
        p = subprocess.Popen(
            [sys.executable, "-c", KILL_CODE, str(data), str(root)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        if i % 2:  # during live appends: write, then kill at a random moment after
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            for _ in range(rng.randint(1, 4)):
                f = rng.choice(files)
                with open(f, "ab") as fh:
                    fh.write(_assistant(f"live{n}", rng.randint(1, 50), rng.randint(1, 50), session=f.stem))
                n += 1
            time.sleep(rng.uniform(0, 0.15))
        else:  # during the backfill (or just after it)
            time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
    got, _ = _export(root, data)
    want, _ = _export(root, None)
    assert got == want
    assert sum(r["turns"] for r in got) == n


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """A kill during a parallel backfill leaves no worker behind (they watch for their parent)."""
    import signal
    import time

    root = tmp_path / "logs"
    for i in range(40):
        f = root / "claude" / "projects" / f"-p{i}" / f"s{i}.jsonl"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"".join(_assistant(f"m{i}-{k}", 1, 1, session=f"s{i}") for k in range(3000)))
    code = (
        "import sys, os\n"
        "from tokwatch.ingest import backfill\n"
        "backfill.PARALLEL_MIN_BYTES = 0\n"
        "from pathlib import Path\n"
        "from tokwatch.core.store import Store\n"
        "from tokwatch.ingest.engine import Engine\n"
        "from tokwatch.ingest.setup import make_pricer\n"
        "Engine(Store(make_pricer()), [Path(sys.argv[1])]).backfill(workers=3)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(root)], env={**os.environ})
    deadline = time.monotonic() + 30
    children: list[int] = []
    while time.monotonic() < deadline and not children:
        children = _children(p.pid)
        time.sleep(0.05)
    assert children, "no worker was started"
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 10
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [c for c in children if _alive(c)]
    assert not alive, f"workers outlived their parent: {alive}"


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_same_size_rewrite_in_place_is_not_taken_for_unchanged(tmp_path: Path, data: Path) -> None:
    """A Codex log overwritten in place (same inode, same size) whose first KiB and the bytes just
    before the old offset are unchanged (Codex repeats identical `turn_context` lines): the new
    turn is counted, the old one stays (billed), at a warm start and live."""
    sid = "019c0000-0000-7000-8000-00000000beef"
    log = (
        tmp_path
        / "logs"
        / "codex"
        / "sessions"
        / "2026"
        / "03"
        / "01"
        / f"rollout-2026-03-01T10-00-00-{sid}.jsonl"
    )
    log.parent.mkdir(parents=True)
    meta = orjson.dumps(
        {"timestamp": "2026-03-01T10:00:00.000Z", "type": "session_meta", "payload": {"id": sid, "cwd": "/p"}}
    )
    context = orjson.dumps(
        {"timestamp": "2026-03-01T10:00:00.000Z", "type": "turn_context", "payload": {"model": "gpt-5-codex"}}
    )
    pad = orjson.dumps(
        {"type": "response_item", "payload": {"text": "x" * 1200}}
    )  # the first KiB never changes

    def count(ts: str, inp: int, out: int) -> bytes:
        usage = {"input_tokens": inp, "cached_input_tokens": 0, "output_tokens": out}
        return orjson.dumps({"timestamp": ts, "type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {**usage, "total_tokens": inp + out}, "last_token_usage": usage}}})  # fmt: skip

    first = count("2026-03-01T10:00:01.000Z", 111, 222)
    second = count("2026-03-01T10:00:02.000Z", 333, 444)
    assert len(first) == len(second)
    log.write_bytes(b"\n".join([meta, pad, context, first, context]) + b"\n")
    live = _engine(tmp_path / "logs", data)
    st = log.stat()
    with open(log, "r+b") as f:
        f.write(b"\n".join([meta, pad, context, second, context]) + b"\n")
    os.utime(log, ns=(st.st_mtime_ns + 10**8, st.st_mtime_ns + 10**8))  # a later write, same size
    assert log.stat().st_size == st.st_size
    warm = _engine(tmp_path / "logs", data)
    key = ("codex", sid)
    assert (warm.store.sessions[key].totals.turns, warm.store.sessions[key].totals.input) == (2, 111 + 333)
    live.refresh([log])
    assert (live.store.sessions[key].totals.turns, live.store.sessions[key].totals.output) == (2, 222 + 444)


def test_scope_is_by_whole_path_components(tmp_path: Path) -> None:
    """A root covers itself and what is under it, never a sibling that merely shares its prefix."""
    engine = Engine(Store(make_pricer(), Ledger.memory()), [tmp_path / "a", tmp_path / "b/"])
    assert engine.in_scope(tmp_path / "a") and engine.in_scope(str(tmp_path / "a" / "x" / "s.jsonl"))
    assert engine.in_scope(tmp_path / "b" / "s.jsonl")
    assert not engine.in_scope(tmp_path / "ab" / "s.jsonl") and not engine.in_scope(str(tmp_path / "a-b"))
    assert not engine.in_scope(tmp_path)
    everything = Engine(Store(make_pricer(), Ledger.memory()), [Path("/")])
    assert everything.in_scope(tmp_path / "a") and everything.in_scope("/")
