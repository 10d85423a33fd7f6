"""Writing observations into the ledger (tables `limit_samples` and `compactions`, schema 2).

Called by `Store.apply` inside the batch's transaction, and by `tokwatch statusline` for the
plan windows Claude Code hands it. Rows are only added: a sample is keyed by (agent, source,
limit, window, observed at) and a compaction by (agent, session, key), so reading a log again
adds nothing. A sample with the same figures as one of the same window less than a minute away
is not added either (Codex writes every event twice; a status line runs after every message):
the history keeps every change, and a reading at least every minute while nothing changes.
Reads for the views are SQL in `reports/limits.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from tokwatch.core.observations import SAME_SAMPLE_SECONDS, Compaction, LimitSample

SAMPLE_COLUMNS = "agent, provider, source, limit_id, window_minutes, used_percent, resets_at, observed_at, plan_type, session_id"

_INSERT_SAMPLE = f"""
INSERT OR IGNORE INTO limit_samples({SAMPLE_COLUMNS}, writer)
SELECT :agent, :provider, :source, :limit_id, :minutes, :used, :resets, :observed, :plan, :session, :writer
WHERE NOT EXISTS (
    SELECT 1 FROM limit_samples
    WHERE agent = :agent AND limit_id = :limit_id AND window_minutes = :minutes
      AND observed_at BETWEEN :observed - {SAME_SAMPLE_SECONDS} AND :observed + {SAME_SAMPLE_SECONDS}
      AND used_percent = :used AND plan_type = :plan
      AND ((resets_at IS NULL AND :resets IS NULL) OR abs(resets_at - :resets) < {SAME_SAMPLE_SECONDS})
)
"""
_INSERT_COMPACTION = (
    "INSERT OR IGNORE INTO compactions(agent, session_id, key, ts, trigger, pre_tokens, post_tokens)"
    " VALUES(?,?,?,?,?,?,?)"
)
REFUSED_KEY = "limits_refused"


def insert_samples(db: sqlite3.Connection, samples: Iterable[LimitSample], writer: int) -> list[LimitSample]:
    """Add samples (in the caller's transaction); the ones that were new."""
    out = []
    for s in samples:
        cur = db.execute(
            _INSERT_SAMPLE,
            {
                "agent": s.agent,
                "provider": s.provider,
                "source": s.source,
                "limit_id": s.limit_id,
                "minutes": s.window_minutes,
                "used": s.used_percent,
                "resets": s.resets_at,
                "observed": s.observed_at,
                "plan": s.plan_type,
                "session": s.session_id,
                "writer": writer,
            },
        )
        if cur.rowcount:
            out.append(s)
    return out


def insert_compactions(db: sqlite3.Connection, items: Iterable[Compaction]) -> list[Compaction]:
    out = []
    for c in items:
        cur = db.execute(
            _INSERT_COMPACTION,
            (c.agent, c.session_id, c.key, c.timestamp, c.trigger, c.pre_tokens, c.post_tokens),
        )
        if cur.rowcount:
            out.append(c)
    return out


def add_refused(db: sqlite3.Connection, n: int) -> None:
    """Count limit readings refused as garbage (they are never stored)."""
    if n:
        db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE"
            " SET value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
            (REFUSED_KEY, str(n)),
        )


def sample_from_row(r: tuple[object, ...]) -> LimitSample:
    agent, provider, source, limit_id, minutes, used, resets, observed, plan, session = r
    return LimitSample(
        str(agent), str(provider), str(source), str(limit_id), int(minutes), float(used),  # type: ignore[call-overload, arg-type]
        None if resets is None else float(resets), float(observed), str(plan), str(session),  # type: ignore[arg-type]
    )  # fmt: skip


def last_sample_id(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(max(id), 0) FROM limit_samples").fetchone()[0])


def samples_after(db: sqlite3.Connection, mark: int, writer: int) -> tuple[list[LimitSample], int]:
    """Samples other processes added after row `mark`, and the new mark."""
    rows = db.execute(
        f"SELECT id, writer, {SAMPLE_COLUMNS} FROM limit_samples WHERE id > ? ORDER BY id", (mark,)
    ).fetchall()
    out = [sample_from_row(r[2:]) for r in rows if r[1] != writer]
    return out, (int(rows[-1][0]) if rows else mark)
