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

import bisect
import sqlite3
from collections.abc import Iterable

from tokwatch.core.observations import SAME_SAMPLE_SECONDS, Compaction, LimitSample

SAMPLE_COLUMNS = "agent, provider, source, limit_id, window_minutes, used_percent, resets_at, observed_at, plan_type, session_id"

_INSERT_SAMPLE = (
    f"INSERT OR IGNORE INTO limit_samples({SAMPLE_COLUMNS}, writer) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
)
_NEARBY = (
    "SELECT source, observed_at, used_percent, plan_type, resets_at FROM limit_samples"
    " WHERE agent = ? AND limit_id = ? AND window_minutes = ? AND observed_at BETWEEN ? AND ?"
    " ORDER BY observed_at"
)
_INSERT_COMPACTION = (
    "INSERT OR IGNORE INTO compactions(agent, session_id, key, ts, trigger, pre_tokens, post_tokens)"
    " VALUES(?,?,?,?,?,?,?)"
)
REFUSED_KEY = "limits_refused"


def _same_resets(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < SAME_SAMPLE_SECONDS)


def insert_samples(db: sqlite3.Connection, samples: Iterable[LimitSample], writer: int) -> list[LimitSample]:
    """Add samples (in the caller's `BEGIN IMMEDIATE` transaction, so nobody else writes meanwhile);
    the ones that were new, in order.

    A sample is dropped when the table's UNIQUE key already holds that instant, or when a row of
    the same agent, limit and window, with the same figures (used, plan, resets within a minute),
    is at most SAME_SAMPLE_SECONDS away — among the rows already there and the ones this call
    keeps. Checked here against the nearby rows read once per window, not by a query per sample:
    Codex logs a reading with every event, tens of thousands in a history.
    """
    batch = list(samples)
    # per (agent, limit, window, used, plan): the times kept, ascending, and their resets alongside
    # (plain float lists: bisect without a key function)
    kept: dict[tuple[object, ...], tuple[list[float], list[float | None]]] = {}
    keys: set[tuple[object, ...]] = set()
    span: dict[tuple[str, str, int], tuple[float, float]] = {}
    for s in batch:
        w = (s.agent, s.limit_id, s.window_minutes)
        lo, hi = span.get(w, (s.observed_at, s.observed_at))
        span[w] = (min(lo, s.observed_at), max(hi, s.observed_at))
    for (agent, limit_id, minutes), (lo, hi) in span.items():
        rows = db.execute(
            _NEARBY, (agent, limit_id, minutes, lo - SAME_SAMPLE_SECONDS, hi + SAME_SAMPLE_SECONDS)
        ).fetchall()
        for source, observed, used, plan, resets in rows:  # (by time: appended in order)
            keys.add((agent, source, limit_id, minutes, observed))
            times, resets_at = kept.setdefault((agent, limit_id, minutes, used, plan), ([], []))
            times.append(observed)
            resets_at.append(resets)
    out: list[LimitSample] = []
    for s in batch:
        unique = (s.agent, s.source, s.limit_id, s.window_minutes, s.observed_at)
        if unique in keys:
            continue
        times, resets_at = kept.setdefault(
            (s.agent, s.limit_id, s.window_minutes, s.used_percent, s.plan_type), ([], [])
        )
        at = s.observed_at
        lo = bisect.bisect_left(times, at - SAME_SAMPLE_SECONDS)
        hi = bisect.bisect_right(times, at + SAME_SAMPLE_SECONDS)
        if any(_same_resets(r, s.resets_at) for r in resets_at[lo:hi]):
            continue
        i = bisect.bisect_right(times, at)
        times.insert(i, at)
        resets_at.insert(i, s.resets_at)
        keys.add(unique)
        out.append(s)
    db.executemany(
        _INSERT_SAMPLE,
        [
            (s.agent, s.provider, s.source, s.limit_id, s.window_minutes, s.used_percent, s.resets_at,
             s.observed_at, s.plan_type, s.session_id, writer)
            for s in out
        ],
    )  # fmt: skip
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
