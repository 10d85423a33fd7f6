"""OpenClaw plug-in: a real transcript excerpt, bookkeeping rows, archives and checkpoints, the
SQLite store (zstd rows, rewrites, archives, forks) and the Codex-harness mirror."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from backports import zstd
from helpers import CODEX_8BFE, Following, append_bytes, feed_all, make_engine, real_lines, write_lines

from tokwatch.agents import get_agent
from tokwatch.agents.openclaw import OpenClawDbParser, OpenClawParser, state_dirs
from tokwatch.core.tailer import open_cursor
from tokwatch.ingest.discover import detect

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "openclaw"
EXCERPT = FIX / "agents" / "main" / "sessions" / "8555a0a4-0b79-459d-939c-e17cdbbf4fe2.jsonl"
SAMPLE_DB = FIX / "db" / "openclaw-agent.sqlite"
AGENT = get_agent("openclaw")
THREAD = "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"  # the real Codex rollout's id (tests/fixtures/real)

# openclaw `src/state/openclaw-agent-schema.sql` (the tables read), with the zstd columns of
# current writers (`transcript-payload.ts`)
SCHEMA = """
CREATE TABLE session_windows (session_id TEXT NOT NULL PRIMARY KEY, session_key TEXT NOT NULL,
  previous_session_id TEXT, reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  model_provider TEXT, model TEXT, agent_harness_id TEXT) STRICT;
CREATE TABLE transcript_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT,
  created_at INTEGER NOT NULL, event_zstd BLOB, event_utf8_bytes INTEGER, navigation_json TEXT,
  PRIMARY KEY (session_id, seq)) STRICT;
CREATE TABLE session_transcript_archives (session_id TEXT NOT NULL, generation TEXT NOT NULL,
  session_key TEXT NOT NULL, reason TEXT NOT NULL, encoding TEXT NOT NULL, archive_blob BLOB NOT NULL,
  archive_sha256 TEXT NOT NULL, archive_name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, generation)) STRICT;
"""


def header(sid: str, cwd: str = "/Users/alice/notes") -> dict:
    return {"type": "session", "version": 4, "id": sid, "timestamp": "2026-09-21T13:13:20.000Z", "cwd": cwd}


def assistant(n: int, inp: int, out: int, cache_read: int = 0, **extra: object) -> dict:
    msg = {
        "role": "assistant",
        "content": [{"type": "text", "text": "x" * 40}],
        "api": "anthropic-messages",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "usage": {
            "input": inp,
            "output": out,
            "cacheRead": cache_read,
            "cacheWrite": 0,
            "totalTokens": inp + out + cache_read,
        },
        "stopReason": "stop",
        "timestamp": 1789996400000 + n * 1000,
    }
    msg.update(extra)
    return {"type": "message", "id": f"e{n:07d}", "parentId": None, "timestamp": "2026-09-21T13:13:30.000Z",
            "message": msg}  # fmt: skip


def jl(*entries: dict) -> list[bytes]:
    return [json.dumps(e, separators=(",", ":")).encode() for e in entries]


def make_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    return con


def put(con: sqlite3.Connection, sid: str, seq: int, event: dict, compress: bool = False) -> None:
    """One event as OpenClaw writes it: large ones zstd-compressed, created_at = the event's ms."""
    raw = json.dumps(event, separators=(",", ":")).encode()
    if compress:
        row = (sid, seq, None, 1789996400000 + seq, zstd.compress(raw, 1), len(raw), "{}")
    else:
        row = (sid, seq, raw.decode(), 1789996400000 + seq, None, None, None)
    con.execute("INSERT INTO transcript_events VALUES (?, ?, ?, ?, ?, ?, ?)", row)


def read_db(parser: OpenClawDbParser) -> list:
    out = parser.read_changed(open_cursor(parser.path))
    assert out is not None
    return out


# ------------------------------------------------------------------------- the JSONL transcript
def test_real_excerpt_skips_the_gateway_injected_row_and_error_turns() -> None:
    lines = real_lines(EXCERPT)
    assert b'"model":"gateway-injected"' in lines[1]
    turns = feed_all(OpenClawParser(EXCERPT), lines)
    assert [(t.model, t.input, t.cache_read, t.output) for t in turns] == [
        ("gpt-5.4", 12310, 1536, 191),
        ("gpt-5.4", 787, 13952, 267),
    ]
    assert {t.agent for t in turns} == {"openclaw"}
    assert {t.session_id for t in turns} == {"8555a0a4-0b79-459d-939c-e17cdbbf4fe2"}
    assert turns[0].project == "C:\\Users\\downl\\Desktop\\clawdbot-main3\\clawdbot-main"


@pytest.mark.parametrize(
    "extra",
    [
        {"api": "openclaw-transcript", "provider": "openclaw", "model": "delivery-mirror"},
        {"provider": "openclaw", "model": "gateway-injected"},
        {"openclawMessageToolMirror": {"sourceReplySink": "internal-ui"}},
        {"openclawDeliveryMirror": {"v": 1}},
        {"api": "openai-chatgpt-responses", "model": "native-history"},
    ],
)
def test_bookkeeping_rows_are_never_requests(extra: dict) -> None:
    """Even with usage on them (OpenClaw writes zeros; a copy must not count if one ever does not)."""
    p = OpenClawParser(EXCERPT)
    assert p.feed(jl(assistant(1, 500, 20, **extra))[0]) == []
    assert len(p.feed(jl(assistant(2, 500, 20))[0])) == 1


def test_archives_checkpoints_and_forks_count_each_request_once(tmp_path: Path) -> None:
    sessions = tmp_path / ".openclaw" / "agents" / "main" / "sessions"
    live = jl(header("s1"), assistant(1, 100, 10), assistant(2, 200, 20))
    write_lines(sessions / "s1.jsonl", live)
    # a compaction checkpoint: a byte copy of the live file taken earlier
    write_lines(sessions / "s1.checkpoint.0b8e6c1e-6f0e-4d7e-9a55-1d2c3b4a5001.jsonl", live[:2])
    # /reset archived the previous generation (plain) and a deleted one (zstd-compressed)
    old = jl(header("s0"), assistant(0, 50, 5))
    write_lines(sessions / "s0.jsonl.reset.2026-09-20T08-00-00.000Z", old)
    gone = b"\n".join(jl(header("s9"), assistant(9, 70, 7))) + b"\n"
    (sessions / "s9.jsonl.deleted.2026-09-19T08-00-00.000Z.zst").write_bytes(zstd.compress(gone))
    # a fork copied s1's first request into s2
    write_lines(sessions / "s2.jsonl", jl(header("s2"), assistant(1, 100, 10), assistant(3, 300, 30)))
    # not transcripts: a runtime trace and the index of last-run snapshots
    write_lines(sessions / "s1.trajectory.jsonl", jl(assistant(8, 999, 999)))
    (sessions / "sessions.json").write_text(json.dumps({"agent:main:main": {
        "sessionId": "s1", "updatedAt": 1789996400000, "inputTokens": 999, "outputTokens": 999,
        "totalTokens": 1998, "contextTokens": 200000, "model": "claude-sonnet-4-5"}}))  # fmt: skip
    assert detect(sessions / "sessions.json") is None
    assert detect(sessions / "s1.trajectory.jsonl") is None
    engine = make_engine(tmp_path)
    engine.backfill()
    t = engine.store.totals()
    assert (t.turns, t.input, t.output) == (5, 50 + 70 + 100 + 200 + 300, 5 + 7 + 10 + 20 + 30)
    assert engine.store.sessions[("openclaw", "s9")].totals.turns == 1  # read from the .zst
    assert engine.skips.lines == 0


# ------------------------------------------------------------------------- the SQLite store
def test_sample_database_zstd_row_fork_copy_and_mirror(tmp_path: Path) -> None:
    db = tmp_path / "agents" / "main" / "agent" / "openclaw-agent.sqlite"
    db.parent.mkdir(parents=True)
    shutil.copy(SAMPLE_DB, db)
    engine = make_engine(tmp_path)
    engine.backfill()
    by_session = {k[1]: s for k, s in engine.store.sessions.items()}
    # the claude request (stored zstd-compressed) is in c01 and in its fork c02: counted once
    sonnet = [s for s in by_session.values() if "claude-sonnet-5" in s.by_model]
    assert sum(s.by_model["claude-sonnet-5"].turns for s in sonnet) == 1
    assert sum(s.totals.input for s in sonnet) == 3000 and sum(s.totals.cache_write for s in sonnet) == 500
    # the delivery-mirror row is not a request; the Codex mirror has no rollout here: a lower bound
    codex = by_session["f6a5b8c7-a0bd-4bcf-d2e3-5e6f7a8b9c03"]
    assert (codex.totals.turns, codex.totals.output) == (1, 120)
    assert engine.store.totals().turns == 2
    assert by_session["f6a5b8c7-a0bd-4bcf-d2e3-5e6f7a8b9c01"].project == "/Users/alice/notes"


def test_database_rows_appended_rewritten_and_archived(tmp_path: Path) -> None:
    db = tmp_path / "openclaw-agent.sqlite"
    con = make_db(db)
    put(con, "s1", 0, header("s1"))
    put(con, "s1", 1, assistant(1, 100, 10), compress=True)
    p = OpenClawDbParser(db)
    assert [t.input for t in read_db(p)] == [100]
    assert read_db(p) == []  # nothing changed: nothing read
    put(con, "s1", 2, assistant(2, 200, 20))
    assert [t.input for t in read_db(p)] == [200]  # only the appended row
    # a rewrite (post-compaction trim): every row deleted and inserted again with new seqs
    con.execute("DELETE FROM transcript_events WHERE session_id = 's1'")
    for seq, ev in enumerate([header("s1"), assistant(2, 200, 20), assistant(3, 300, 30)], start=10):
        put(con, "s1", seq, ev)
    again = read_db(p)
    assert sorted(t.input for t in again) == [200, 300]  # re-read whole: the store keys by content
    # a reset generation kept as a blob, also published as a file elsewhere: same keys
    blob = zstd.compress(b"\n".join(jl(header("s0"), assistant(0, 50, 5))))
    con.execute(
        "INSERT INTO session_transcript_archives VALUES ('s0', 'g1', 'k', 'reset', 'zstd', ?, 'x', 'a1', 1)",
        (blob,),
    )
    assert [t.input for t in read_db(p)] == [50]
    assert read_db(p) == []
    # a restored parser (the cache) resumes where it was
    q = OpenClawDbParser(db)
    q.restore(json.loads(json.dumps(p.state())))
    put(con, "s1", 13, assistant(4, 400, 40))
    (t,) = read_db(q)
    assert (t.input, t.project) == (400, "/Users/alice/notes")
    con.close()


def test_hostile_compressed_rows_do_not_hide_the_others(tmp_path: Path) -> None:
    db = tmp_path / "openclaw-agent.sqlite"
    con = make_db(db)
    put(con, "s1", 0, header("s1"))
    bomb = zstd.compress(b"{" + b" " * (8 << 20) + b"}")
    con.execute("INSERT INTO transcript_events VALUES ('s1', 1, NULL, 1, ?, 9000000, '{}')", (bomb,))
    con.execute("INSERT INTO transcript_events VALUES ('s1', 2, NULL, 1, ?, 10, '{}')", (b"not zstd",))
    con.execute("INSERT INTO transcript_events VALUES ('s1', 3, NULL, 1, ?, 5, '{}')", (bomb,))  # lies
    put(con, "s1", 4, assistant(4, 400, 40), compress=True)
    assert [t.input for t in read_db(OpenClawDbParser(db))] == [400]
    con.close()


def test_jsonl_and_database_copies_of_a_session_count_once(tmp_path: Path) -> None:
    """`openclaw doctor` imports transcripts into SQLite; the JSONL may remain beside it."""
    agent = tmp_path / "agents" / "main"
    events = [header("s1"), assistant(1, 100, 10), assistant(2, 200, 20)]
    write_lines(agent / "sessions" / "s1.jsonl", jl(*events))
    con = make_db(agent / "agent" / "openclaw-agent.sqlite")
    for seq, ev in enumerate(events):
        put(con, "s1", seq, ev, compress=seq == 1)
    con.close()
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.store.totals().turns == 2 and len(engine.store.sessions) == 1


# ------------------------------------------------------------------------- the Codex harness
def codex_mirror(n: int) -> dict:
    return assistant(
        n, 800, 120, 24000, api="openai-codex-responses", provider="openai", model="gpt-5.5",
        idempotencyKey=f"codex-app-server:{THREAD}:turn_0{n}:assistant",
        __openclaw={"mirrorOrigin": "codex-app-server"},
    )  # fmt: skip


@pytest.mark.parametrize("scope", ["agent", "user"])
def test_codex_mirror_is_not_counted_when_the_rollout_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str
) -> None:
    state = tmp_path / ".openclaw"
    agent = state / "agents" / "main"
    write_lines(agent / "sessions" / "s1.jsonl", jl(header("s1", "/code"), codex_mirror(1)))
    user_codex = tmp_path / "user-codex"
    monkeypatch.setenv("CODEX_HOME", str(user_codex))
    home = agent / "agent" / "codex-home" if scope == "agent" else user_codex
    rollout = home / "sessions" / "2026" / "02" / "23" / CODEX_8BFE.name
    rollout.parent.mkdir(parents=True)
    shutil.copy(CODEX_8BFE, rollout)
    roots = [*AGENT.roots({"OPENCLAW_STATE_DIR": str(state)}, tmp_path), user_codex / "sessions"]
    engine = make_engine(*roots)
    engine.backfill()
    assert engine.store.sessions[("codex", THREAD)].totals.turns == 6  # the rollout: every response
    mirror = engine.store.sessions.get(("openclaw", "s1"))
    assert mirror is None or mirror.totals.turns == 0


def test_codex_mirror_is_kept_as_a_lower_bound_without_a_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "no-codex"))
    sessions = tmp_path / ".openclaw" / "agents" / "main" / "sessions"
    write_lines(sessions / "s1.jsonl", jl(header("s1"), codex_mirror(1)))
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.store.sessions[("openclaw", "s1")].totals.output == 120


# ------------------------------------------------------------------------- discovery
def test_state_dirs_profiles_and_roots(tmp_path: Path) -> None:
    (tmp_path / ".openclaw-work").mkdir()
    (tmp_path / ".clawdbot").mkdir()
    assert state_dirs({}, tmp_path) == [
        tmp_path / ".openclaw",
        tmp_path / ".openclaw-work",
        tmp_path / ".clawdbot",
    ]
    env = {"OPENCLAW_HOME": "/oc", "OPENCLAW_STATE_DIR": "~/state", "OPENCLAW_PROFILE": "dev"}
    assert state_dirs(env, tmp_path)[:3] == [
        Path("/oc/state"),
        Path("/oc/.openclaw-dev"),
        Path("/oc/.openclaw"),
    ]
    agents = tmp_path / ".openclaw" / "agents"
    (agents / "main").mkdir(parents=True)
    (agents / "helper").mkdir()
    roots = AGENT.roots({}, tmp_path)
    for agent_id in ("main", "helper"):
        assert agents / agent_id / "sessions" in roots
        assert agents / agent_id / "agent" / "openclaw-agent.sqlite" in roots
        assert agents / agent_id / "agent" / "codex-home" / "sessions" in roots
    assert tmp_path / ".openclaw-work" / "agents" / "main" / "sessions" in roots


def test_ownership_sniff_and_companions(tmp_path: Path) -> None:
    s = tmp_path / "agents" / "main" / "sessions"
    for name in ("a.jsonl", "a-topic-7.jsonl", "a.checkpoint.0b8e.jsonl", "a.jsonl.reset.2026-03-08T12-15-35.580Z",
                 "a.jsonl.deleted.2026-03-08T12-15-35.580Z.zst"):  # fmt: skip
        assert AGENT.owns_path(s / name), name
    for name in (
        "a.trajectory.jsonl",
        "sessions.json",
        "a.jsonl.bak.2026-03-08T12-15-35.580Z",
        "a.jsonl.reset.x",
    ):
        assert not AGENT.owns_path(s / name), name
    assert AGENT.owns_path(tmp_path / "agents" / "main" / "agent" / "openclaw-agent.sqlite")
    assert not AGENT.owns_path(tmp_path / "incognito-openclaw-agent.sqlite")
    assert AGENT.is_document(s / "a.jsonl.deleted.2026-03-08T12-15-35.580Z.zst")
    assert not AGENT.is_document(s / "a.jsonl")
    db = tmp_path / "openclaw-agent.sqlite"
    assert AGENT.companion_of(Path(f"{db}-wal")) == db
    assert AGENT.companion_of(Path(f"{db}-shm")) is None
    assert detect(EXCERPT) is AGENT
    flat = tmp_path / "x.jsonl"
    write_lines(flat, jl(header("s1"), assistant(1, 1, 1)))  # a version-4 header
    assert detect(flat) is AGENT


# ------------------------------------------------------------------------- live
def test_live_jsonl_and_database_are_followed(tmp_path: Path) -> None:
    agent = tmp_path / ".openclaw" / "agents" / "main"
    log = agent / "sessions" / "s1.jsonl"
    write_lines(log, jl(header("s1"), assistant(1, 100, 10)))
    con = make_db(agent / "agent" / "openclaw-agent.sqlite")
    put(con, "s2", 0, header("s2"))
    engine = make_engine(*AGENT.roots({"OPENCLAW_STATE_DIR": str(tmp_path / ".openclaw")}, tmp_path))
    engine.backfill()
    assert engine.store.totals().turns == 1
    try:
        with Following(engine) as f:
            append_bytes(log, jl(assistant(2, 222, 22))[0] + b"\n")
            assert f.wait_for(lambda t: t.input == 222).session_id == "s1"
            put(con, "s2", 1, assistant(3, 333, 33), compress=True)
            assert f.wait_for(lambda t: t.input == 333).session_id == "s2"
    finally:
        con.close()
    assert engine.store.totals().turns == 3


def test_changes_found_by_rowid_without_scanning_every_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokwatch.agents import openclaw as oc

    db = tmp_path / "openclaw-agent.sqlite"
    con = make_db(db)
    for sid in ("s1", "s2"):
        put(con, sid, 0, header(sid))
    put(con, "s1", 1, assistant(1, 100, 10))
    put(con, "s2", 1, assistant(2, 200, 20))  # s2 holds the top rowid
    p = OpenClawDbParser(db)
    assert len(read_db(p)) == 2
    full_scans: list[int] = []
    real = OpenClawDbParser._scan_sessions
    monkeypatch.setattr(oc.OpenClawDbParser, "_scan_sessions", lambda *a: full_scans.append(1) or real(*a))
    put(con, "s2", 2, assistant(3, 300, 30))
    assert [t.input for t in read_db(p)] == [300]
    # s1 rewritten below the top: its rows come back with new, higher rowids (and a new request)
    con.execute("DELETE FROM transcript_events WHERE session_id = 's1'")
    for seq, ev in enumerate([header("s1"), assistant(1, 100, 10), assistant(4, 400, 40)], start=5):
        put(con, "s1", seq, ev)
    assert sorted(t.input for t in read_db(p)) == [100, 400]
    assert full_scans == []
    # rows deleted from the top and inserted again reuse rowids: the row at the watermark changed
    con.execute("DELETE FROM transcript_events WHERE session_id = 's1'")
    for seq, ev in enumerate([header("s1"), assistant(1, 100, 10), assistant(4, 400, 40), assistant(5, 500, 50)],
                             start=20):  # fmt: skip
        put(con, "s1", seq, ev)
    assert 500 in [t.input for t in read_db(p)]
    assert full_scans == [1]
    con.close()
