"""`tokwatch report`: usage per day, ISO week, month, session or 5-hour block.

Reports aggregate turns (not sessions), so a session spanning midnight is split between its days
and every report's rows add up to exactly what `export` totals on the same logs. Costs are summed
in integer picodollars; a row with any unpriced turn has an unknown (null) cost, never $0, and
carries the known part as `known_cost_usd` (a lower bound). Rich is imported only to draw a
table: the status line imports this module for its time helpers and must start fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tokwatch.core import blocks as blk
from tokwatch.core.models import Tally, Tokens, iso
from tokwatch.reports import tally
from tokwatch.reports.tally import Part, Scope

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokwatch.core.ledger import Ledger
    from tokwatch.core.store import Store

VIEWS = ("daily", "weekly", "monthly", "session", "blocks")
KEY_NAMES = {"daily": "date", "weekly": "week", "monthly": "month"}
TOKEN_COLUMNS = (
    "turns",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "known_cost_usd",
    "unpriced_turns",
)
UNDATED = "unknown"  # the key of turns whose log gave no time


# ---------------------------------------------------------------- time
def parse_tz(name: str | None) -> tzinfo | None:
    """A zone for day boundaries; None means the machine's local zone (DST-aware)."""
    if not name or name.lower() == "local":
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}") from e


def to_local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)


def local_date(ts: float, tz: tzinfo | None) -> date:
    return to_local(ts, tz).date()


def zone_name(tz: tzinfo | None) -> str:
    if tz is None:
        return f"local, {datetime.now().astimezone().tzname()}"
    return str(tz)


def day_key(d: date) -> str:
    return d.isoformat()


def week_key(d: date) -> str:
    """ISO week (Monday first; the ISO year, so 2027-01-01 may be `2026-W53`)."""
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def month_key(d: date) -> str:
    return f"{d.year}-{d.month:02d}"


PERIOD_KEYS: dict[str, Callable[[date], str]] = {"daily": day_key, "weekly": week_key, "monthly": month_key}


# ---------------------------------------------------------------- selection
@dataclass(frozen=True, slots=True)
class Filters:
    agents: frozenset[str] = frozenset()  # empty: every agent
    project: str | None = None  # case-insensitive substring of the session's project
    since: date | None = None  # inclusive, in `tz`
    until: date | None = None
    tz: tzinfo | None = None

    def scope(self, store: Store, *, project: bool = True) -> Scope:
        """The ledger's turns these filters select, within the sessions the store shows."""
        return Scope(
            agents=self.agents,
            project=self.project if project else None,
            sessions=store.scope_ids(),
            since=None if self.since is None else local_midnight(self.since, self.tz),
            until=None if self.until is None else local_midnight(self.until + timedelta(days=1), self.tz),
        )

    def date_ok(self, ts: float) -> bool:
        if self.since is None and self.until is None:
            return True
        if not ts:
            return False
        d = local_date(ts, self.tz)
        return (self.since is None or d >= self.since) and (self.until is None or d <= self.until)


def local_midnight(d: date, tz: tzinfo | None) -> float:
    """The first instant of local day `d` (tz None: the machine's zone, DST included)."""
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


# ---------------------------------------------------------------- rows
@dataclass(slots=True)
class Row(Tally):
    #: the row's identity, in output order (date | week | month | session | block)
    key: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0  # blocks: the block's start (0.0 for the undated turns' row)


@dataclass(slots=True)
class Report:
    view: str
    rows: list[Row]
    totals: Tokens
    tz: tzinfo | None
    active: Row | None = None  # blocks: the running block, also in `rows`
    token_limit: int | None = None


def day_parts(store: Store, scope: Scope, tz: tzinfo | None) -> list[tuple[date | None, Part]]:
    """The scope's sums per local day and model (None: undated turns), exact in any zone."""
    return ledger_day_parts(store.ledger, scope, tz)


def ledger_day_parts(
    ledger: Ledger, scope: Scope, tz: tzinfo | None, tiers: Sequence[int] = ()
) -> list[tuple[date | None, Part]]:
    """`day_parts` on a ledger, optionally split by price tier bracket (`tally.parts`)."""
    out: list[tuple[date | None, Part]] = []
    split: list[float] = []
    for p in tally.parts(ledger, scope, bucket=tally.QUARTER, tiers=tiers):
        if p.bucket is None:
            out.append((None, p))
            continue
        d = local_date(p.bucket, tz)
        if local_date(p.bucket + tally.QUARTER - 1e-3, tz) != d:
            split.append(p.bucket)  # a zone whose midnight is not on a quarter hour: turn by turn
            continue
        out.append((d, p))
    for b in sorted(set(split)):
        narrow = replace(
            scope,
            since=max(b, scope.since or b),
            until=min(b + tally.QUARTER, scope.until or b + tally.QUARTER),
        )
        for p in tally.parts(ledger, narrow, bucket=1.0, tiers=tiers):
            if p.bucket is not None:
                out.append((local_date(p.bucket, tz), p))
    return out


def period_rows(store: Store, view: str, f: Filters) -> list[Row]:
    name, keyfn = KEY_NAMES[view], PERIOD_KEYS[view]
    rows: dict[str, Row] = {}
    for d, p in day_parts(store, f.scope(store), f.tz):
        if d is None and (f.since or f.until):
            continue
        k = keyfn(d) if d is not None else UNDATED
        row = rows.get(k)
        if row is None:
            row = rows[k] = Row(key={name: k})
        row.add_sums(p.model, p.tokens, p.first, p.last)
    return [rows[k] for k in sorted(rows, key=lambda k: (k == UNDATED, k))]


def session_rows(store: Store, f: Filters) -> list[Row]:
    rows: dict[int, Row] = {}
    for p in tally.parts(store.ledger, f.scope(store), by_session=True):
        assert p.session is not None
        sid, agent, session_id, project = p.session
        row = rows.get(sid)
        if row is None:
            row = rows[sid] = Row(key={"session_id": session_id, "agent": agent, "project": project})
        row.add_sums(p.model, p.tokens, p.first, p.last)
    out = sorted(rows.values(), key=lambda r: (r.last, r.key["agent"], r.key["session_id"]))
    for r in out:
        r.extra = {"first_seen": iso(r.first) or None, "last_seen": iso(r.last) or None}
    return out


def block_rows(
    store: Store, f: Filters, now: float, token_limit: int | str | None = None
) -> tuple[list[Row], Row | None, int | None]:
    """Blocks bounded by every turn of the selected agents, tallying the project's turns only."""
    bounds = replace(f.scope(store, project=False), since=None, until=None)
    starts = blk.block_starts(tally.timestamps(store.ledger, bounds))
    active_start = blk.active_start(starts, now)
    tallies: dict[float | None, blk.Block] = {}
    counted = replace(f.scope(store), since=None, until=None)
    for p in tally.parts(store.ledger, counted, bucket=tally.QUARTER):
        # blocks start on the hour and last 5 hours: a quarter hour is wholly in one block
        start = blk.start_of(p.bucket, starts) if p.bucket is not None else None
        b = tallies.get(start)
        if b is None:
            b = tallies[start] = blk.Block(start=start or 0.0)
        b.add_sums(p.model, p.tokens, p.first, p.last)
    limit: int | None
    if token_limit == "max":
        limit = blk.max_completed([b for k, b in tallies.items() if k is not None], now) or None
    else:
        limit = token_limit if isinstance(token_limit, int) else None
    rows: list[Row] = []
    active: Row | None = None
    for start in sorted(tallies, key=lambda k: (k is None, k or 0.0)):
        b = tallies[start]
        if start is not None and not f.date_ok(start):
            continue
        if start is None and (f.since or f.until):
            continue
        row = Row(
            tokens=b.tokens,
            by_model=b.by_model,
            first=b.first,
            last=b.last,
            key={
                "start": iso(b.start) if start is not None else None,
                "end": iso(b.end) if start is not None else None,
            },
            start=b.start if start is not None else 0.0,
        )
        row.extra = {
            "first_turn": iso(b.first) or None,
            "last_turn": iso(b.last) or None,
            "active": start is not None and start == active_start,
        }
        if limit:
            row.extra["limit_percent"] = round(100 * b.tokens.total / limit, 1)
        if row.extra["active"]:
            p = blk.project(b, now)
            row.extra.update(
                remaining_minutes=round(p.remaining_s / 60, 1),
                burn_rate_tokens_per_minute=None
                if p.tokens_per_minute is None
                else round(p.tokens_per_minute, 1),
                cost_per_hour_usd=None if p.cost_per_hour_usd is None else round(p.cost_per_hour_usd, 6),
                projected_tokens=p.projected_tokens,
                projected_cost_usd=None if p.projected_cost_usd is None else round(p.projected_cost_usd, 6),
            )
            if limit and p.projected_tokens is not None:
                row.extra["projected_limit_percent"] = round(100 * p.projected_tokens / limit, 1)
            active = row
        rows.append(row)
    return rows, active, limit


def build(
    store: Store,
    view: str,
    f: Filters | None = None,
    *,
    now: float | None = None,
    token_limit: int | str | None = None,
) -> Report:
    f = f or Filters()
    now = time.time() if now is None else now
    active: Row | None = None
    limit: int | None = None
    if view == "blocks":
        rows, active, limit = block_rows(store, f, now, token_limit)
    elif view == "session":
        rows = session_rows(store, f)
    elif view in PERIOD_KEYS:
        rows = period_rows(store, view, f)
    else:
        raise ValueError(f"unknown report {view!r}")
    return Report(view, rows, Tokens.sum(r.tokens for r in rows), f.tz, active, limit)
