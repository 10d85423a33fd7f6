"""Plan windows and compactions: read from real Codex rollouts and Claude transcripts, handed over
by Claude Code's status line, kept in the ledger as history, and shown by status/report."""

from __future__ import annotations

import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from helpers import (
    CLAUDE_MAIN,
    CODEX_8BFE,
    CODEX_EXCERPT,
    CODEX_POMODORO,
    CODEX_RTCHESS,
    REAL,
    append_bytes,
    line,
    make_engine,
    real_lines,
)

from tokwatch.agents.claude import ClaudeParser, hook_limits
from tokwatch.agents.codex import CodexParser
from tokwatch.config import Config
from tokwatch.core.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger
from tokwatch.core.ledger_obs import SAMPLE_COLUMNS, insert_samples
from tokwatch.core.observations import (
    SAME_SAMPLE_SECONDS,
    Compaction,
    LimitSample,
    Refused,
    from_row,
    limit_sample,
)
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import statusline
from tokwatch.reports import limits
from tokwatch.reports.limits import Window


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def observed(parser: CodexParser | ClaudeParser, lines: list[bytes]) -> list[object]:
    for raw in lines:
        parser.feed(raw)
    return list(parser.observations())


def sample(**kw: object) -> LimitSample:
    base: dict[str, object] = {
        "agent": "codex",
        "provider": "openai",
        "source": "rollout",
        "limit_id": "codex",
        "window_minutes": 300,
        "used_percent": 10.0,
        "resets_at": ts("2026-03-01T15:00:00+00:00"),
        "observed_at": ts("2026-03-01T12:00:00+00:00"),
    }
    base.update(kw)
    return LimitSample(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- Codex: the real lines
def test_codex_047_resets_in_seconds_shape() -> None:
    """0.47.0: `resets_in_seconds` counts from the event's time; windows logged as 299/10079 minutes."""
    obs = observed(CodexParser(CODEX_POMODORO), real_lines(CODEX_POMODORO)[:6])
    at = ts("2025-10-21T20:04:21.787+00:00")
    assert obs == [
        LimitSample("codex", "openai", "rollout", "codex", 300, 0.0, at + 17940, at, "", "019a085e-04c1-7f81-a09e-9555f6a1fb40"),
        LimitSample("codex", "openai", "rollout", "codex", 10080, 28.0, at + 319634, at, "", "019a085e-04c1-7f81-a09e-9555f6a1fb40"),
    ]  # fmt: skip


def test_codex_060_resets_at_shape() -> None:
    p = CodexParser(CODEX_RTCHESS)
    obs = observed(p, real_lines(CODEX_RTCHESS)[:7])
    at = ts("2025-11-22T20:48:44.649+00:00")
    assert [(o.window_minutes, o.used_percent, o.resets_at, o.observed_at) for o in obs] == [  # type: ignore[attr-defined]
        (300, 0.0, 1763862524.0, at),
        (10080, 3.0, 1764176208.0, at),
    ]


def test_codex_0104_limit_id_shape_on_an_info_null_event() -> None:
    """The first event of a session has `info: null` and rate limits only: no turn, two samples."""
    p = CodexParser(CODEX_8BFE)
    for raw in real_lines(CODEX_8BFE)[:11]:
        p.feed(raw)
    p.observations()
    assert p.feed(line(CODEX_8BFE, 12)) == []
    at = ts("2026-02-23T19:34:34.390+00:00")
    assert p.observations() == [
        LimitSample("codex", "openai", "rollout", "codex", 300, 4.0, 1771890497.0, at, "", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"),
        LimitSample("codex", "openai", "rollout", "codex", 10080, 10.0, 1772355702.0, at, "", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"),
    ]  # fmt: skip


def test_codex_garbage_rate_limits_are_refused_and_the_turn_kept() -> None:
    d = orjson.loads(line(CODEX_8BFE, 12))
    cases = [
        {"used_percent": "13", "window_minutes": 300, "resets_at": 1771890497},  # a string
        {"used_percent": -1.0, "window_minutes": 300, "resets_at": 1771890497},  # negative
        {"used_percent": 5000.0, "window_minutes": 300, "resets_at": 1771890497},  # absurd
        {"used_percent": True, "window_minutes": 300, "resets_at": 1771890497},  # a bool
        {"used_percent": 4.0, "window_minutes": "300", "resets_at": 1771890497},
        {"used_percent": 4.0, "window_minutes": 300, "resets_at": "tomorrow"},
        {"used_percent": 4.0, "window_minutes": 300, "resets_in_seconds": -5},
        "13%",
    ]
    for bad in cases:
        d["payload"]["rate_limits"]["primary"] = bad
        p = CodexParser(CODEX_8BFE)
        p.feed(orjson.dumps(d))
        obs = p.observations()
        assert obs[0] == Refused("codex", "limit"), bad
        assert isinstance(obs[1], LimitSample) and obs[1].window_minutes == 10080
    d["payload"]["rate_limits"] = ["not", "an", "object"]
    p = CodexParser(CODEX_8BFE)
    p.feed(orjson.dumps(d))
    assert p.observations() == [Refused("codex", "limit")]


def test_codex_over_100_percent_is_kept_as_reported() -> None:
    """Codex documents that `used_percent` can exceed 100 (over the limit): kept, not refused."""
    d = orjson.loads(line(CODEX_8BFE, 12))
    d["payload"]["rate_limits"]["primary"]["used_percent"] = 104.5
    p = CodexParser(CODEX_8BFE)
    p.feed(orjson.dumps(d))
    first = p.observations()[0]
    assert isinstance(first, LimitSample) and first.used_percent == 104.5


def test_codex_compaction_record_and_event_are_one() -> None:
    obs = observed(CodexParser(CODEX_EXCERPT), real_lines(CODEX_EXCERPT))
    comps = [o for o in obs if isinstance(o, Compaction)]
    # the last real turn before it (line 47) had a prompt of 209,950 tokens
    assert comps == [
        Compaction(
            "codex", "019c8a59-e9dd-71f0-9ae3-4079fe9726a9", "2026-02-24T09:51:48.878Z",
            ts("2026-02-24T09:51:48.878+00:00"), "", 209950, None,
        )
    ]  # fmt: skip


def test_claude_compact_boundary() -> None:
    obs = observed(ClaudeParser(CLAUDE_MAIN), real_lines(CLAUDE_MAIN))
    assert obs == [
        Compaction(
            "claude", "4d5611e5-241a-462a-8d15-5122611a9569", "dd3cc2e6-a191-4331-a0f0-2473e6d7692d",
            ts("2026-02-12T20:30:28.504+00:00"), "auto", 170251, None,
        )
    ]  # fmt: skip


def test_observations_round_trip_as_rows() -> None:
    items = [sample(), Compaction("claude", "s", "k", 1.5, "auto", 3, None), Refused("codex", "limit")]
    assert [from_row(orjson.loads(orjson.dumps(o.to_row()))) for o in items] == items


# ---------------------------------------------------------------- Claude: the status line's input
NOW = ts("2026-03-01T12:00:00+00:00")
FIVE = ts("2026-03-01T14:30:00+00:00")
SEVEN = ts("2026-03-05T09:00:00+00:00")


def claude_hook(**extra: object) -> dict[str, object]:
    """The status-line input of Claude Code 2.1.112 (`C9A()`), as docs/limits.md lists it."""
    d: dict[str, object] = {
        "session_id": "c0ffee00-1111-4222-8333-444455556666",
        "transcript_path": "/nonexistent/c0ffee00-1111-4222-8333-444455556666.jsonl",
        "cwd": "/home/dev/app",
        "model": {"id": "claude-opus-4-6", "display_name": "Opus 4.6"},
        "workspace": {"current_dir": "/home/dev/app", "project_dir": "/home/dev/app", "added_dirs": []},
        "version": "2.1.112",
        "output_style": {"name": "default"},
        "cost": {
            "total_cost_usd": 1.25,
            "total_duration_ms": 1000,
            "total_api_duration_ms": 800,
            "total_lines_added": 3,
            "total_lines_removed": 1,
        },
        "context_window": {
            "total_input_tokens": 1200,
            "total_output_tokens": 300,
            "context_window_size": 200000,
            "current_usage": {
                "input_tokens": 10,
                "output_tokens": 30,
                "cache_creation_input_tokens": 400,
                "cache_read_input_tokens": 50000,
            },
            "used_percentage": 25,
            "remaining_percentage": 75,
        },
        "exceeds_200k_tokens": False,
    }
    d.update(extra)
    return d


def test_hook_without_rate_limits_records_nothing() -> None:
    assert hook_limits(claude_hook(), NOW) == []


def test_hook_rate_limits() -> None:
    h = claude_hook(
        rate_limits={
            "five_hour": {"used_percentage": 42.5, "resets_at": FIVE},
            "seven_day": {"used_percentage": 9, "resets_at": int(SEVEN)},
        }
    )
    sid = "c0ffee00-1111-4222-8333-444455556666"
    assert hook_limits(h, NOW) == [
        LimitSample("claude", "anthropic", "statusline", "claude", 300, 42.5, FIVE, NOW, "", sid),
        LimitSample("claude", "anthropic", "statusline", "claude", 10080, 9.0, SEVEN, NOW, "", sid),
    ]
    only5 = hook_limits(
        claude_hook(rate_limits={"five_hour": {"used_percentage": 1, "resets_at": FIVE}}), NOW
    )
    assert [s.window_minutes for s in only5] == [300]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "window",
    [
        {"used_percentage": "42", "resets_at": FIVE},
        {"used_percentage": -3, "resets_at": FIVE},
        {"used_percentage": math.nan, "resets_at": FIVE},
        {"used_percentage": math.inf, "resets_at": FIVE},
        {"used_percentage": 1e6, "resets_at": FIVE},
        {"used_percentage": None, "resets_at": FIVE},
        {"used_percentage": 42, "resets_at": "soon"},
        {"used_percentage": 42, "resets_at": -1},
        {"used_percentage": 42, "resets_at": math.nan},
        "42%",
        [42],
    ],
)
def test_hook_garbage_is_refused(window: object) -> None:
    h = claude_hook(
        rate_limits={"five_hour": window, "seven_day": {"used_percentage": 9, "resets_at": SEVEN}}
    )
    out = hook_limits(h, NOW)
    assert out[0] == Refused("claude", "limit")
    assert isinstance(out[1], LimitSample) and out[1].used_percent == 9.0


def test_hook_over_100_percent_is_kept() -> None:
    """Claude Code 2.1.80-2.1.112 passed `utilization * 100` unclamped: 103.5 means over the limit."""
    [s] = hook_limits(
        claude_hook(rate_limits={"five_hour": {"used_percentage": 103.5, "resets_at": FIVE}}), NOW
    )
    assert isinstance(s, LimitSample) and s.used_percent == 103.5
    assert hook_limits(claude_hook(rate_limits="nope"), NOW) == [Refused("claude", "limit")]


def test_statusline_records_rate_limits_and_shows_the_five_hour_window(tmp_path: Path) -> None:
    h = claude_hook(
        rate_limits={
            "five_hour": {"used_percentage": 42.5, "resets_at": FIVE},
            "seven_day": {"used_percentage": "x", "resets_at": SEVEN},
        }
    )
    d = statusline.statusline_data(h, Config(), [tmp_path / "none"], NOW, UTC, tmp_path / "data")
    assert (
        statusline.render_line(d) == "Opus 4.6 │ 5h 42% (2h30m left) │ session $0.00 │ today $0.00 │ no block"
    )
    ledger = Ledger.at(tmp_path / "data")
    [row] = limits.history(ledger)
    assert (row.agent, row.window_minutes, row.used_percent, row.resets_at) == ("claude", 300, 42.5, FIVE)
    assert limits.refused(ledger) == 1
    # the same reading a second later adds nothing; a new figure adds a row
    statusline.statusline_data(h, Config(), [tmp_path / "none"], NOW + 1, UTC, tmp_path / "data")
    h["rate_limits"]["five_hour"]["used_percentage"] = 44  # type: ignore[index]
    statusline.statusline_data(h, Config(), [tmp_path / "none"], NOW + 2, UTC, tmp_path / "data")
    assert [s.used_percent for s in limits.history(ledger)] == [42.5, 44.0]
    assert limits.refused(ledger) == 3


def test_statusline_command_with_rate_limits(tmp_path: Path) -> None:
    five = datetime.now(UTC).timestamp() + 3600
    h = claude_hook(rate_limits={"five_hour": {"used_percentage": 12, "resets_at": five}})
    env = {**os.environ, "TOKWATCH_DATA_DIR": str(tmp_path / "data")}
    p = subprocess.run(
        [sys.executable, "-m", "tokwatch", "statusline", str(tmp_path / "none")],
        input=orjson.dumps(h),
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert " │ 5h 12% (" in p.stdout.decode()
    assert [s.used_percent for s in limits.history(Ledger.at(tmp_path / "data"))] == [12.0]


# ---------------------------------------------------------------- the ledger
def test_samples_are_history_idempotent_and_thinned(tmp_path: Path) -> None:
    """A re-read adds nothing; the same figures less than a minute apart are one row."""
    ledger = Ledger.at(tmp_path)
    store = Store(make_pricer(), ledger)
    a = sample()
    same_soon = sample(observed_at=a.observed_at + 30, resets_at=a.resets_at + 2)  # Codex's re-emitted event
    same_later = sample(observed_at=a.observed_at + 120)
    changed = sample(observed_at=a.observed_at + 40, used_percent=11.0)
    ch = store.apply([], [], [a, same_soon, same_later, changed])
    assert ch.limits == [a, same_later, changed] and ch
    again = store.apply([], [], [a, same_soon, same_later, changed])
    assert not again and again.limits == []
    assert [s.observed_at for s in limits.history(ledger)] == sorted(
        [a.observed_at, same_later.observed_at, changed.observed_at]
    )


#: The thinning rule as one SQL statement per sample: the reference insert_samples must agree with.
_RULE = f"""
INSERT OR IGNORE INTO limit_samples({SAMPLE_COLUMNS}, writer)
SELECT :agent, :provider, :source, :limit_id, :minutes, :used, :resets, :observed, :plan, :session, 1
WHERE NOT EXISTS (
    SELECT 1 FROM limit_samples
    WHERE agent = :agent AND limit_id = :limit_id AND window_minutes = :minutes
      AND observed_at BETWEEN :observed - {SAME_SAMPLE_SECONDS} AND :observed + {SAME_SAMPLE_SECONDS}
      AND used_percent = :used AND plan_type = :plan
      AND ((resets_at IS NULL AND :resets IS NULL) OR abs(resets_at - :resets) < {SAME_SAMPLE_SECONDS})
)
"""


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_a_batch_keeps_what_the_rule_keeps_one_sample_at_a_time(tmp_path: Path, seed: int) -> None:
    """insert_samples checks a batch in memory against the rows nearby (Codex: tens of thousands of
    readings); it keeps exactly what the SQL rule keeps, one statement per sample, with rows already
    in the ledger, out-of-order, interleaved and re-emitted readings, and two sources."""
    rng = random.Random(seed)
    base = sample()
    readings = [
        sample(
            observed_at=base.observed_at + rng.choice([0, 15, 30, 59, 60, 61, 90, 200, 400]),
            used_percent=rng.choice([10.0, 11.0]),
            resets_at=None if rng.random() < 0.2 else base.resets_at + rng.choice([0, 1, 59, 120]),
            window_minutes=rng.choice([300, 10080]),
            source=rng.choice(["rollout", "statusline"]),
            plan_type=rng.choice(["", "pro"]),
        )
        for _ in range(600)
    ]
    earlier, batch = readings[:150], readings[150:]
    ours, rule = Ledger.at(tmp_path / "ours"), Ledger.at(tmp_path / "rule")
    with ours.transaction() as db:
        insert_samples(db, earlier, writer=1)
        kept = insert_samples(db, batch, writer=1)
    expected = []
    with rule.transaction() as db:
        for i, s in enumerate(readings):
            row = {"agent": s.agent, "provider": s.provider, "source": s.source, "limit_id": s.limit_id,
                   "minutes": s.window_minutes, "used": s.used_percent, "resets": s.resets_at,
                   "observed": s.observed_at, "plan": s.plan_type, "session": s.session_id}  # fmt: skip
            if db.execute(_RULE, row).rowcount and i >= len(earlier):
                expected.append(s)
    assert kept == expected and 1 < len(kept) < len(batch)
    assert sorted(limits.history(ours), key=repr) == sorted(limits.history(rule), key=repr)


def test_the_ledger_refuses_what_the_checks_refuse(tmp_path: Path) -> None:
    ledger = Ledger.at(tmp_path)
    with pytest.raises(sqlite3.IntegrityError), ledger.transaction() as db:
        db.execute(
            "INSERT INTO limit_samples(agent, provider, source, limit_id, window_minutes, used_percent,"
            " observed_at) VALUES('codex', 'openai', 'rollout', 'codex', 300, -1, 1771875274)"
        )
    assert limit_sample(agent="a", provider="p", source="s", limit_id="", minutes=300, used=1,
                        resets_at=None, observed_at=0.0) is None  # fmt: skip


def test_upgrade_from_schema_1_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO sessions(agent, session_id, version) VALUES('codex', 's1', 3)")
    db.execute(
        "INSERT INTO turns VALUES(1, 't1', 'gpt-5', 1771875274.0, 10, 20, 0, 0, 5, 0, 0, 258400, 0, '/p',"
        " NULL, 1234, '', 7)"
    )
    db.execute("INSERT INTO meta VALUES('pricing', 'k')")
    db.commit()
    db.close()
    ledger = Ledger.at(tmp_path)
    opened = ledger.open()
    assert opened.migrated_from == 1
    with ledger.reading() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT turn_id, cost, writer FROM turns").fetchall() == [("t1", 1234, 7)]
        assert conn.execute("SELECT version FROM sessions").fetchall() == [(3,)]
        assert conn.execute("SELECT value FROM meta WHERE key='pricing'").fetchall() == [("k",)]
    store = Store(make_pricer(), ledger)
    store.apply([], [], [sample(), Compaction("codex", "s1", "k", 1771875300.0)])
    assert len(limits.history(ledger)) == 1
    ledger.close()
    assert Ledger.at(tmp_path).open().migrated_from is None  # already current: nothing to do


def test_upgrade_from_schema_2_keeps_every_sample_and_its_id(tmp_path: Path) -> None:
    """Schema 3 re-keys limit_samples (one index fewer); the rows, their ids and the key's
    duplicates rule are as before, and lookups by window still use an index."""
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    for v in (0, 1):
        db.executescript(MIGRATIONS[v])
    db.execute("PRAGMA user_version=2")
    rows = [
        (5, "codex", "openai", "rollout", "codex", 300, 12.5, 1771893000.0, 1771875274.0, "plus", "s1", 7),
        (9, "codex", "openai", "rollout", "codex", 10080, 40.0, None, 1771875274.0, "", "s1", 7),
        (11, "claude", "anthropic", "statusline", "claude", 300, 3.0, None, 1771875300.0, "", "", 0),
    ]
    db.executemany(
        f"INSERT INTO limit_samples(id, {SAMPLE_COLUMNS}, writer) VALUES({','.join('?' * 12)})", rows
    )
    db.commit()
    db.close()
    ledger = Ledger.at(tmp_path)
    assert ledger.open().migrated_from == 2
    with ledger.reading() as conn:
        assert (
            conn.execute(f"SELECT id, {SAMPLE_COLUMNS}, writer FROM limit_samples ORDER BY id").fetchall()
            == rows
        )
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name='limit_samples'")
        }
        assert "limit_samples_window" not in indexes and "limit_samples_time" in indexes
        plan = " ".join(
            str(r[3])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT used_percent FROM limit_samples WHERE agent='codex'"
                " AND limit_id='codex' AND window_minutes=300 AND observed_at BETWEEN 1 AND 2"
            )
        )
        assert "USING INDEX sqlite_autoindex_limit_samples" in plan and "observed_at>" in plan
    with pytest.raises(sqlite3.IntegrityError), ledger.transaction() as w:  # the same key, refused
        w.execute(
            f"INSERT INTO limit_samples({SAMPLE_COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?)",
            ("codex", "openai", "rollout", "codex", 300, 99.0, None, 1771875274.0, "", ""),
        )
    ledger.close()


# ---------------------------------------------------------------- the engine
def test_backfill_records_every_rollout_once_and_a_reread_adds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "codex"
    shutil.copytree(REAL / "codex", root)
    e = Engine(Store(make_pricer(), Ledger.at(tmp_path / "data")), [root])
    e.backfill()
    first = limits.history(e.ledger)
    assert len(first) == 207  # of 1,535 readings in the four rollouts, the rest repeat a figure
    assert {(s.window_minutes, s.used_percent) for s in first if s.session_id.startswith("019c8bfe")} == {
        (300, 4.0), (300, 7.0), (10080, 10.0), (10080, 11.0)
    }  # fmt: skip
    e.ledger.close()
    # a cold start on a copy of the ledger without cursors reads every file again: nothing new
    e2 = Engine(Store(make_pricer(), Ledger.at(tmp_path / "data")), [root])
    with e2.ledger.transaction() as db:
        db.execute("DELETE FROM files")
    e2.backfill()
    assert limits.history(e2.ledger) == first


def test_parallel_backfill_carries_observations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokwatch.ingest import backfill as backfill_mod

    root = tmp_path / "logs"
    shutil.copytree(REAL, root)
    seq = Engine(Store(make_pricer()), [root])
    seq.backfill(workers=1)
    monkeypatch.setattr(backfill_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(backfill_mod, "PARALLEL_CHUNK_BYTES", 1)
    par = Engine(Store(make_pricer()), [root])
    par.backfill(workers=2)
    assert limits.history(par.ledger) == limits.history(seq.ledger) != []
    count = "SELECT agent, session_id, key FROM compactions ORDER BY 1, 2"
    assert par.ledger.db.execute(count).fetchall() == seq.ledger.db.execute(count).fetchall()
    assert len(par.ledger.db.execute(count).fetchall()) == 2


def test_live_append_reports_new_samples(tmp_path: Path) -> None:
    root = tmp_path / "codex"
    log = root / "sessions" / "2026" / "02" / "23" / CODEX_8BFE.name
    log.parent.mkdir(parents=True)
    lines = real_lines(CODEX_8BFE)
    log.write_bytes(b"\n".join(lines[:11]) + b"\n")
    e = make_engine(root)
    e.backfill()
    assert limits.history(e.ledger) == []
    append_bytes(log, lines[11] + b"\n")
    ch = e.refresh([log])
    assert [(s.window_minutes, s.used_percent) for s in ch.limits] == [(300, 4.0), (10080, 10.0)]
    assert not ch.sessions  # no turn: the event had `info: null`


class Limits:
    """`engine.follow` in a thread, the limit samples of every recorded batch queued; entering
    waits until the watches exist, `wait_for` awaits the sample it expects (no sleeps)."""

    def __init__(self, engine: Engine) -> None:
        import queue
        import threading

        self.queue: queue.Queue[LimitSample] = queue.Queue()
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=engine.follow,
            args=(self.stop, lambda ch: [self.queue.put(s) for s in ch.limits]),
            kwargs={"on_started": self.started.set},
            daemon=True,
        )

    def __enter__(self) -> Limits:
        self.thread.start()
        assert self.started.wait(10), "follow never started"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def wait_for(self, used: float, timeout: float = 5.0) -> LimitSample:
        import queue
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                s = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if s.used_percent == used:
                return s
        raise AssertionError(f"no sample at {used}% in time")


def test_a_status_line_write_reaches_a_following_engine(tmp_path: Path) -> None:
    """`tokwatch statusline` writes Claude's windows into the ledger from another process: the
    dashboard's engine hears the ledger change and hands the new samples over."""
    logs = tmp_path / "logs"
    logs.mkdir()
    data = tmp_path / "data"
    e = Engine(Store(make_pricer(), Ledger.at(data)), [logs], debounce_ms=20, step_ms=10)
    e.backfill()
    with Limits(e) as f:
        h = claude_hook(rate_limits={"five_hour": {"used_percentage": 61, "resets_at": FIVE}})
        other = Ledger.at(data)  # another process's connection
        statusline.record_limits(other, h, NOW)
        other.close()
        got = f.wait_for(61.0)
    assert (got.agent, got.source, got.window_minutes) == ("claude", "statusline", 300)


def test_following_a_rollout_hands_over_its_samples(tmp_path: Path) -> None:
    root = tmp_path / "codex"
    log = root / "sessions" / "2026" / "02" / "23" / CODEX_8BFE.name
    log.parent.mkdir(parents=True)
    lines = real_lines(CODEX_8BFE)
    log.write_bytes(b"\n".join(lines[:13]) + b"\n")
    e = Engine(Store(make_pricer(), Ledger.at(tmp_path / "data")), [root], debounce_ms=20, step_ms=10)
    e.backfill()
    d = orjson.loads(lines[11])  # the first event: `info: null`, rate limits only
    assert d["payload"]["type"] == "token_count"
    d["timestamp"] = "2026-02-23T19:50:00.000Z"
    d["payload"]["rate_limits"]["primary"]["used_percent"] = 55.0
    with Limits(e) as f:
        append_bytes(log, orjson.dumps(d) + b"\n")
        got = f.wait_for(55.0)
    assert got.observed_at == ts("2026-02-23T19:50:00+00:00") and got.window_minutes == 300


# ---------------------------------------------------------------- windows at a moment
def window(**kw: object) -> Window:
    base: dict[str, object] = {
        "agent": "codex",
        "provider": "openai",
        "limit_id": "codex",
        "minutes": 300,
        "used": 40.0,
        "resets_at": ts("2026-03-01T15:00:00+00:00"),  # the window began at 10:00
        "observed_at": ts("2026-03-01T12:00:00+00:00"),
        "source": "rollout",
        "plan_type": "",
    }
    base.update(kw)
    return Window(**base)  # type: ignore[arg-type]


def test_projection_at_the_windows_pace() -> None:
    w = window()  # 40% after 2 of 5 hours: 20%/h, 100% at 15:00, exactly the reset: not before it
    st = w.at(ts("2026-03-01T12:10:00+00:00"), 900)
    assert st.projected == pytest.approx(100.0) and st.full_in is None and not st.will_reach
    assert st.resets_in == pytest.approx(2 * 3600 + 50 * 60) and st.age == 600 and not st.stale
    fast = window(used=60.0).at(ts("2026-03-01T12:00:00+00:00"), 900)  # 30%/h: 100% at 13:20
    assert fast.full_in == pytest.approx(80 * 60) and fast.projected == pytest.approx(150.0)
    early = window(observed_at=ts("2026-03-01T10:03:00+00:00"), used=5.0).at(
        ts("2026-03-01T10:03:00+00:00"), 900
    )
    assert early.projected is None and early.full_in is None  # three minutes in: too early to say
    full = window(used=100.0).at(ts("2026-03-01T12:30:00+00:00"), 900)
    assert full.full_in == 0 and full.percent == 100.0


def test_a_window_passing_its_reset() -> None:
    w = window(used=87.0)
    before = w.at(ts("2026-03-01T14:59:59+00:00"), 900)
    assert not before.reset and before.percent == 87.0 and before.resets_in == 1 and before.stale
    after = w.at(ts("2026-03-01T15:00:00+00:00"), 900)
    assert after.reset and after.percent == 0.0 and after.resets_in is None and after.projected is None
    assert after.as_json()["reset"] is True and after.as_json()["percent"] == 0.0
    assert w.visible(ts("2026-03-01T19:59:00+00:00")) and not w.visible(ts("2026-03-01T20:00:00+00:00"))


def test_windows_from_the_ledger_with_history(tmp_path: Path) -> None:
    root = tmp_path / "codex"
    shutil.copytree(REAL / "codex", root)
    e = make_engine(root)
    e.backfill()
    now = ts("2026-02-23T20:00:00+00:00")
    wins = limits.windows(e.ledger, now)
    assert [(w.label, w.used, w.resets_at) for w in wins] == [
        ("5h", 7.0, 1771890497.0),
        ("7d", 11.0, 1772355702.0),
    ]
    five = wins[0]
    assert five.start == 1771890497.0 - 5 * 3600
    # 19:34-19:36 is 46 minutes into the period that began at 18:48:17: the 8th of 48 cells of 6.25 min
    assert [i for i, v in enumerate(five.history) if v is not None] == [7] and five.history[7] == 7.0
    # the excerpt's earlier 5-hour period (13% at 11:54) is another period: not in this history
    assert max(v for v in five.history if v is not None) == 7.0
    doc = limits.limits_json(wins, now, 900)
    assert doc["codex"]["5h"]["used"] == 7.0 and doc["codex"]["5h"]["limit"] == 100  # type: ignore[index]
    assert doc["codex"]["7d"]["resetsAt"] == "2026-03-01T09:01:42.000Z"  # type: ignore[index]
    assert limits.windows(e.ledger, ts("2026-03-09T00:00:00+00:00")) == ()  # a week after its reset: gone


# ---------------------------------------------------------------- the road to compaction
def test_compaction_points_per_agent() -> None:
    from tokwatch.agents import get_agent

    def point(agent: str, window: int) -> int | None:
        a = get_agent(agent)
        assert a is not None
        return a.compact_threshold("m", window)

    assert point("claude", 200_000) == 167_000 and point("claude", 1_000_000) == 967_000
    assert point("codex", 258_400) == 244_800 and point("codex", 272_000) == 244_800
    assert point("gemini", 1_048_576) == 524_288
    assert point("qwen", 1_000_000) == 850_000 and point("qwen", 200_000) == 167_000
    assert point("opencode", 200_000) == 168_000 and point("copilot", 128_000) == 102_400
    assert point("kimi", 262_144) is None and point("kilo", 200_000) is None and point("pi", 200_000) is None


def test_growth_per_turn() -> None:
    assert limits.growth([10, 20, 30, 40]) == 10
    assert limits.growth([100, 200, 50, 60, 90]) == 20  # the run after the compaction
    assert limits.growth([100, 50]) is None and limits.growth([]) is None


def test_road_of_the_real_claude_session(tmp_path: Path) -> None:
    e = make_engine(REAL / "claude")
    e.backfill()
    s = e.store.sessions[("claude", "4d5611e5-241a-462a-8d15-5122611a9569")]
    r = limits.road(e.ledger, s)
    assert (r.window, r.threshold, r.count) == (200_000, 167_000, 1)
    assert r.left == 167_000 - s.context_used and r.last_at == ts("2026-02-12T20:30:28.504+00:00")
    j = r.as_json()
    assert j["count"] == 1 and j["basis"] == "auto-compact" and j["tokensLeft"] == r.left


# ---------------------------------------------------------------- status and report
def test_status_json_has_limits_and_compaction(tmp_path: Path) -> None:
    from tokwatch.reports.status import Target, status_doc, status_text

    e = make_engine(REAL / "codex")
    e.backfill()
    s = e.store.sessions[("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff")]
    now = ts("2026-02-23T20:00:00+00:00")
    doc = status_doc(e.store, Target(s.session_id, "codex", s.project, s), Config(), now, UTC)
    lim = doc["usage"]["limits"]["codex"]
    assert set(lim) == {"5h", "7d"}
    assert {k: lim["5h"][k] for k in ("used", "limit", "percent", "resetsAt", "stale")} == {
        "used": 7.0, "limit": 100, "percent": 7.0, "resetsAt": "2026-02-23T23:48:17.000Z", "stale": True,
    }  # fmt: skip
    assert doc["usage"]["compaction"]["threshold"] == 244_800 and doc["usage"]["compaction"]["count"] == 0
    text = status_text(doc)
    assert "codex 5h:      7% used, resets in 3h48m" in text and "auto-compacts at 244,800" in text


def test_report_limits_json_and_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "codex"
    shutil.copytree(REAL / "codex" / "sessions" / "2025" / "10", root)

    def run(*args: str) -> str:
        p = subprocess.run(
            [sys.executable, "-m", "tokwatch", "report", "limits", str(root), *args],
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        return p.stdout.decode()

    doc = orjson.loads(run("--json"))
    assert [(w["agent"], w["window"]) for w in doc["windows"]] == [("codex", "5h"), ("codex", "7d")]
    first = doc["windows"][0]["samples"][0]
    assert first == {
        "observedAt": "2025-10-21T20:04:21.787Z",
        "usedPercent": 0.0,
        "resetsAt": "2025-10-22T01:03:21.787Z",
        "source": "rollout",
        "planType": None,
        "sessionId": "019a085e-04c1-7f81-a09e-9555f6a1fb40",
    }
    csv_lines = run("--csv").splitlines()
    assert csv_lines[0].startswith("agent,provider,limit_id,window,window_minutes,observed_at,used_percent")
    assert len(csv_lines) == 1 + sum(len(w["samples"]) for w in doc["windows"])
    assert run("--json", "--since", "2030-01-01") == '{"windows":[],"refused":0}\n'
    assert "codex 5h" in run("--tz", "UTC")


def test_the_demo_moves_plan_resets_with_the_timestamps() -> None:
    """The demo replays samples as if recent: a window's reset moves with the event's time."""
    from datetime import timedelta

    from tokwatch.demo import shift_timestamps

    raw = line(CODEX_8BFE, 12)
    out, latest = shift_timestamps(raw, timedelta(days=2, seconds=3))
    d = orjson.loads(out)
    assert d["timestamp"] == "2026-02-25T19:34:37.390Z" and latest is not None
    assert d["payload"]["rate_limits"]["primary"]["resets_at"] == 1771890497 + 2 * 86400 + 3
    assert d["payload"]["rate_limits"]["secondary"]["resets_at"] == 1772355702 + 2 * 86400 + 3
