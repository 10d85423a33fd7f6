"""Kilo CLI plug-in: OpenCode's reader under Kilo's names, fork copies counted once, live follow."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from helpers import Following, make_engine
from test_agent_opencode import T0, add_session, assistant, make_db, put

from tokwatch.agents import get_agent
from tokwatch.ingest.discover import detect

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "kilo"
SAMPLE = FIX / "kilo.db"
AGENT = get_agent("kilo")
OPENCODE = get_agent("opencode")


def test_sample_fork_copy_counted_once_with_the_originals_cost(tmp_path: Path) -> None:
    data = tmp_path / "kilo"
    data.mkdir()
    shutil.copy(SAMPLE, data / "kilo.db")
    engine = make_engine(tmp_path)
    engine.backfill()
    assert {k[0] for k in engine.store.sessions} == {"kilo"}
    total = engine.store.totals()
    # msg_b0002 is Kilo's /fork copy of msg_a0002 (new id, cost 0, same tokens and time)
    assert (total.turns, total.input, total.cache_read, total.cache_write) == (1, 1200, 16000, 1200)
    assert total.output == 310 + 80 and total.reasoning == 80
    original = engine.store.sessions[("kilo", "ses_7a1b2c3d4e5fZZZZ")]
    assert original.totals.turns == 1
    assert original.totals.cost_usd == 0.0231  # the provider-reported cost the original stored
    assert original.project == "/home/u/app"


def test_forks_written_later_are_not_counted_again(tmp_path: Path) -> None:
    con = make_db(tmp_path / "kilo.db")
    add_session(con, "ses_a", "/p")
    put(con, "msg_a1", "ses_a", assistant(10, 100, read=5000, cost=0.02), T0 + 1)
    put(con, "msg_a2", "ses_a", assistant(20, 200, read=6000, created=T0 + 10), T0 + 2)
    engine = make_engine(tmp_path)
    engine.backfill()
    add_session(con, "ses_b", "/p")  # "(fork #1)": copies before the fork point, cost zeroed
    put(con, "msg_b1", "ses_b", assistant(10, 100, read=5000, cost=0.0), int(time.time() * 1000))
    put(con, "msg_b3", "ses_b", assistant(30, 300, read=7000, created=T0 + 99), int(time.time() * 1000))
    engine.rescan()
    con.close()
    total = engine.store.totals()
    assert (total.turns, total.output) == (3, 100 + 200 + 300)
    assert engine.store.sessions[("kilo", "ses_b")].totals.turns == 1


def test_roots_names_and_ownership(tmp_path: Path) -> None:
    data = tmp_path / ".local" / "share" / "kilo"
    data.mkdir(parents=True)
    for name in ("kilo-beta.db", "opencode-dev.db", "auth.db"):
        (data / name).write_bytes(b"")
    roots = AGENT.roots({}, tmp_path)
    assert roots[0] == data / "kilo.db"
    assert data / "kilo-beta.db" in roots and data / "opencode-dev.db" in roots
    assert data / "auth.db" not in roots and data / "storage" / "message" in roots
    assert AGENT.roots({"XDG_DATA_HOME": "/x"}, tmp_path)[0] == Path("/x/kilo/kilo.db")
    assert Path("/x/kilo/custom.sqlite") in AGENT.roots(
        {"XDG_DATA_HOME": "/x", "KILO_DB": "custom.sqlite"}, tmp_path
    )
    assert Path("/abs/k.db") in AGENT.roots({"KILO_DB": "/abs/k.db"}, tmp_path)
    assert ":memory:" not in {str(p) for p in AGENT.roots({"KILO_DB": ":memory:"}, tmp_path)}
    # an older channel database in Kilo's folder is Kilo's; OpenCode keeps its own
    assert detect(data / "opencode-dev.db") is AGENT
    assert detect(data / "kilo-beta.db") is AGENT
    assert detect(tmp_path / "opencode" / "opencode-dev.db") is OPENCODE
    assert detect(tmp_path / "opencode" / "opencode.db") is OPENCODE
    assert AGENT.companion_of(data / "kilo.db-wal") == data / "kilo.db"
    assert OPENCODE.companion_of(data / "kilo.db-wal") is None
    legacy = data / "storage" / "message" / "ses_1" / "msg_1.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"id": "msg_1", "sessionID": "ses_1", **assistant(3, 4)}))
    assert detect(legacy) is AGENT
    oc_legacy = tmp_path / "opencode" / "storage" / "message" / "ses_1" / "msg_1.json"
    assert OPENCODE.owns_path(oc_legacy) and not AGENT.owns_path(oc_legacy)
    engine = make_engine(legacy)
    engine.backfill()
    assert [k[0] for k in engine.store.sessions] == ["kilo"]


def test_live_database_followed(tmp_path: Path) -> None:
    con = make_db(tmp_path / "kilo.db")
    add_session(con, "ses_live", "/p")
    engine = make_engine(tmp_path)
    engine.backfill()
    try:
        with Following(engine) as f:
            put(
                con,
                "msg_live",
                "ses_live",
                assistant(4, 77, read=14500, created=T0 + 50),
                int(time.time() * 1000),
            )
            t = f.wait_for(lambda t: t.turn_id == "msg_live")
            assert (t.agent, t.output, t.cache_read) == ("kilo", 77, 14500)
    finally:
        con.close()
