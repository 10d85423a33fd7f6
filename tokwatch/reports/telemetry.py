"""What the telemetry exports, read from the ledger: the figures behind `watch --otlp/--prometheus`.

Counters are the ledger's own sums (SQL, via `tally.parts`) plus what `ledger prune` forgot, so a
restart of tokwatch neither counts a turn twice nor drops one: every collection reports the full
total since `since()`, whatever this process saw. Gauges are the sessions with a turn in the last
`active_minutes`, as the ledger folded them. Nothing here knows about OpenTelemetry.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import orjson

from tokwatch.core.ledger import SUMS_SINCE, Ledger
from tokwatch.core.models import Session, Tokens
from tokwatch.core.store import pruned_sums
from tokwatch.reports import tally

log = logging.getLogger(__name__)

INSTANCE = "telemetry_instance"  # meta key
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Usage:
    """Everything billed for one (agent, model, project), since `since`."""

    agent: str
    model: str
    project: str
    tokens: Tokens


@dataclass(frozen=True, slots=True)
class Active:
    """A session with a recent turn: its context figures (window 0: unknown)."""

    agent: str
    session_id: str
    project: str
    model: str
    context_used: int
    context_window: int
    last_seen: float


@dataclass(frozen=True, slots=True)
class PlanWindow:
    """One plan window (the limits work, issue 14): how much of it is used and when it resets."""

    agent: str
    limit_id: str
    window_minutes: int
    used_percent: float
    resets_at: float  # unix seconds; 0: unknown


@dataclass(frozen=True, slots=True)
class Snapshot:
    since: float  # unix seconds: the counters' start time
    usage: tuple[Usage, ...]
    active: tuple[Active, ...]
    windows: tuple[PlanWindow, ...]


def since(ledger: Ledger, *, save: bool = True) -> float:
    """The counters' start time: kept in the ledger, so it survives restarts. Set on first use
    (`save`: by the engine's thread, the ledger's one writer) to the oldest dated turn, since the
    counters hold everything from then on; to now for an empty ledger."""
    raw = ledger.meta(SUMS_SINCE)
    if raw is not None:
        try:
            return float(raw)
        except ValueError:
            pass
    with ledger.reading() as db:
        row = db.execute("SELECT min(ts) FROM turns WHERE ts > 0").fetchone()
    start = float(row[0]) if row and row[0] else time.time()
    if save:
        ledger.set_meta(SUMS_SINCE, repr(start))
    return start


def instance_id(ledger: Ledger) -> str:
    """`service.instance.id`: random once, then kept in the ledger, so the series of this
    machine's ledger keep their identity across restarts (a collector's `instance` label)."""
    raw = ledger.meta(INSTANCE)
    if raw:
        return raw
    value = str(uuid.uuid4())
    ledger.set_meta(INSTANCE, value)
    return value


def usage(ledger: Ledger, scope: tally.Scope) -> list[Usage]:
    """Sums per (agent, model, session's project); with no session scope, the turns `prune`
    forgot are added back (a counter of everything billed never goes down)."""
    acc: dict[tuple[str, str, str], Tokens] = {}
    for p in tally.parts(ledger, scope, by_project=True):
        _add(acc, (p.agent, p.model, p.project), p.tokens)
    if scope.sessions is None and scope.since is None and scope.until is None:
        for (agent, model, project), t in pruned_sums(ledger).items():
            if scope.agents and agent not in scope.agents:
                continue
            if scope.project and scope.project.lower() not in project.lower():
                continue
            _add(acc, (agent, model, project), t)
    return [Usage(a, m, p, t) for (a, m, p), t in sorted(acc.items())]


def _add(acc: dict[tuple[str, str, str], Tokens], key: tuple[str, str, str], t: Tokens) -> None:
    cur = acc.get(key)
    acc[key] = t.copy() if cur is None else Tokens.sum((cur, t))


def active(ledger: Ledger, scope: tally.Scope, now: float, minutes: float) -> list[Active]:
    """Sessions whose last turn is at most `minutes` old, newest first."""
    sql = "SELECT id, agent, session_id, state FROM sessions WHERE last_seen >= ? AND state IS NOT NULL"
    args: list[object] = [now - minutes * 60]
    if scope.agents:
        sql += f" AND agent IN ({','.join('?' * len(scope.agents))})"
        args += sorted(scope.agents)
    with ledger.reading() as db:
        rows = db.execute(sql, args).fetchall()
    wanted = None if scope.sessions is None else set(scope.sessions)
    out = []
    for sid, agent, session_id, state in rows:
        if wanted is not None and sid not in wanted:
            continue
        try:
            s = Session.from_row(orjson.loads(state))
        except Exception:  # a damaged state: the store folds it again; skip it here
            continue
        if scope.project and scope.project.lower() not in s.project.lower():
            continue
        model = s.context_model or (s.last_turn.model if s.last_turn is not None else "")
        out.append(
            Active(
                str(agent), str(session_id), s.project, model, s.context_used, s.context_window, s.last_seen
            )
        )
    out.sort(key=lambda a: (-a.last_seen, a.agent, a.session_id))
    return out


def plan_windows(ledger: Ledger, now: float) -> list[PlanWindow]:
    """The newest sample of each plan window, from the limits work's `limit_samples` table (issue
    14; none before it lands: then nothing). A window past its reset is left out: its use is
    unknown until the agent reports again, never the old figure."""
    with ledger.reading() as db:
        if (
            db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='limit_samples'").fetchone()
            is None
        ):
            return []
        rows = db.execute(
            "SELECT agent, limit_id, window_minutes, used_percent, resets_at, max(observed_at)"
            " FROM limit_samples GROUP BY agent, limit_id, window_minutes ORDER BY agent, limit_id, window_minutes"
        ).fetchall()
    out = []
    for agent, limit_id, minutes, used, resets_at, _observed in rows:
        if resets_at is not None and float(resets_at) <= now:
            continue
        out.append(PlanWindow(str(agent), str(limit_id), int(minutes), float(used), float(resets_at or 0.0)))
    return out


def _kept(old: tuple[_T, ...], new: list[_T]) -> tuple[_T, ...]:
    """The old tuple itself when nothing in it changed: consumers compare by identity."""
    return old if len(old) == len(new) and all(a == b for a, b in zip(old, new, strict=True)) else tuple(new)


class Source:
    """Snapshots for collectors on other threads: the counters are summed again only when the
    ledger changed (its data mark moved), the active sessions at most once a second; a part
    whose figures did not change is the same tuple as before (so a consumer can reuse its output)."""

    def __init__(
        self,
        ledger: Ledger,
        scope: Callable[[], tally.Scope] | None = None,
        *,
        active_minutes: float = 30.0,
    ) -> None:
        self.ledger = ledger
        #: the turns to count, asked at each collection (a view of some paths grows)
        self._scope_fn = scope or tally.Scope
        self.active_minutes = active_minutes
        self._lock = threading.Lock()
        self._mark: object = None
        self._usage: tuple[Usage, ...] = ()
        self._since = 0.0
        self._active: tuple[Active, ...] = ()
        self._windows: tuple[PlanWindow, ...] = ()
        self._active_at = -1.0
        self.sums = 0  # how many times the counters were summed (tests, and near-zero idle cost)

    def snapshot(self) -> Snapshot:
        with self._lock:
            try:
                scope = self._scope_fn()
                mark = (self.ledger.data_mark(), scope)
                if mark != self._mark:
                    self._since = since(self.ledger, save=False)
                    self._usage = _kept(self._usage, usage(self.ledger, scope))
                    self._mark = mark
                    self._active_at = -1.0
                    self.sums += 1
                now = time.time()
                if now - self._active_at >= 1.0 or now < self._active_at:
                    self._active = _kept(self._active, active(self.ledger, scope, now, self.active_minutes))
                    self._windows = _kept(self._windows, plan_windows(self.ledger, now))
                    self._active_at = now
            except sqlite3.Error as e:  # busy beyond the timeout, or damaged: the last figures stand
                log.warning("telemetry: the ledger could not be read (%s); last figures reported", e)
            return Snapshot(self._since, self._usage, self._active, self._windows)
