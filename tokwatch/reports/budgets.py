"""Budgets (per day, per 5-hour block, per session) and "today / this block" usage.

`current_usage` answers "today" and "the running block" without walking all history: only sessions
active since a cut-off are read, and the block chain is picked up at a turn that is known to start
a block (`blocks.anchor`); the cut-off moves back only when no such turn is found. `BudgetAlarm`
reports each 80% / 100% crossing once per period (a day, a block, a session), for the dashboard.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal, Protocol

from tokwatch.config import Budget, BudgetsConfig
from tokwatch.core import blocks as blk
from tokwatch.core.models import Tokens
from tokwatch.reports import tally
from tokwatch.reports.tally import Scope

if TYPE_CHECKING:
    from tokwatch.core.ledger import Ledger
    from tokwatch.core.store import Store

THRESHOLDS = (80, 100)
DAY = 86400.0
#: How far before today's midnight to look first for the block chain, then further.
LOOKBACKS = (DAY, 7 * DAY, math.inf)


@dataclass(frozen=True, slots=True)
class BudgetState:
    name: str  # daily | block | session
    unit: Literal["tokens", "usd"]
    used: float  # tokens, or the known dollars (a lower bound when `lower_bound`)
    limit: float
    lower_bound: bool  # a dollar budget with unpriced turns: the real use is higher

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.limit

    def as_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            "used": self.used if self.unit == "tokens" else round(self.used, 9),
            "limit": self.limit,
            "percent": round(self.percent, 1),
            "unit": self.unit,
        }
        if self.lower_bound:
            d["lowerBound"] = True
        return d

    def text(self) -> str:
        if self.unit == "usd":
            amount = f"{'≥' if self.lower_bound else ''}${self.used:,.2f} of ${self.limit:,.2f}"
        else:
            amount = f"{int(self.used):,} of {int(self.limit):,} tokens"
        return f"{self.percent:.0f}% ({amount})"


def evaluate(name: str, budget: Budget, t: Tokens) -> BudgetState:
    if budget.tokens is not None:
        return BudgetState(name, "tokens", t.total, budget.tokens, False)
    assert budget.usd is not None
    return BudgetState(name, "usd", t.known_cost_usd, budget.usd, t.unpriced_turns > 0)


# ---------------------------------------------------------------- today and the running block
@dataclass(slots=True)
class Usage:
    """What "today" and "this block" add up to at `now` (in the zone days were cut in)."""

    now: float
    day: str  # YYYY-MM-DD
    today: Tokens
    block: blk.Block | None  # the running block, None when no turn in the last 5 hours
    last_start: float | None = None  # the latest block start up to now (where the chain can resume)

    def states(self, cfg: BudgetsConfig, session: Tokens | None = None) -> dict[str, BudgetState]:
        out: dict[str, BudgetState] = {}
        for name, b in cfg.items():
            if name == "daily":
                out[name] = evaluate(name, b, self.today)
            elif name == "block":
                out[name] = evaluate(name, b, self.block.tokens if self.block else Tokens())
            elif session is not None:
                out[name] = evaluate(name, b, session)
        return out


def day_bounds(now: float, tz: tzinfo | None) -> tuple[date, float, float]:
    """The local day of `now` and its two midnights as timestamps (23 or 25 h apart on DST days)."""
    d = (datetime.fromtimestamp(now, tz) if tz is not None else datetime.fromtimestamp(now)).date()
    nxt = d + timedelta(days=1)
    # tz None: naive datetimes are the machine's local time, DST included
    start = datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()
    return d, start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


def midnight(now: float, tz: tzinfo | None) -> float:
    return day_bounds(now, tz)[1]


def usage_in(
    ledger: Ledger,
    scope: Scope,
    now: float,
    tz: tzinfo | None = None,
    chain_from: float | None = None,
    *,
    ensure: Callable[[float], None] | None = None,
) -> Usage:
    """Today (midnight to midnight in `tz`, None = local) and the running block, summed by the
    ledger over the turns in `scope`.

    The block chain is picked up at `chain_from` when the caller knows a block starts there (a
    live view passes the previous result's `last_start`), else at a turn known to start one
    (`blocks.anchor`): only the timestamps from there on are read, looking further back only
    when no such turn is found. `ensure(since)`, when given, is called before a pass that needs
    every turn from `since` on (the status line reads the logs written since then)."""
    day, day_start, day_end = day_bounds(now, tz)
    today = tally.total(tally.parts(ledger, replace(scope, since=day_start, until=day_end)))
    recent = min(day_start, now - blk.BLOCK_SECONDS)
    passes = [(min(recent, chain_from), chain_from)] if chain_from is not None and chain_from <= now else []
    passes += [(recent - back, None) for back in LOOKBACKS]
    for since, known in passes:
        if ensure is not None:
            ensure(since)
        stamps = tally.timestamps(
            ledger, replace(scope, since=None if math.isinf(since) else since, until=None)
        )
        found = _block(stamps, since, now, known)
        if found is None:
            continue
        start, last_start = found
        block: blk.Block | None = None
        if start is not None:
            block = blk.Block(start=start)
            for part in tally.parts(ledger, replace(scope, since=start, until=start + blk.BLOCK_SECONDS)):
                block.add_sums(part.model, part.tokens, part.first, part.last)
        return Usage(now=now, day=day.isoformat(), today=today, block=block, last_start=last_start)
    raise AssertionError("unreachable: the last pass reads everything")


def _block(
    stamps: list[float], complete_from: float, now: float, chain_from: float | None
) -> tuple[float | None, float | None] | None:
    """(the running block's start or None, the latest block start up to now), from the sorted
    times of every turn at or after `complete_from`; None when the chain cannot be picked up there."""
    if not any(now - blk.BLOCK_SECONDS < ts <= now for ts in stamps):
        return None, None
    # Any turn known to start a block will do: a block cannot start inside another one.
    if chain_from is not None and complete_from <= chain_from:
        i: int | None = bisect.bisect_left(stamps, chain_from)
    else:
        i = blk.anchor(stamps, complete_from)
    if i is None:
        return None
    starts = blk.block_starts(stamps[i:])
    j = bisect.bisect_right(starts, now) - 1
    return blk.active_start(starts, now), (starts[j] if j >= 0 else None)


def current_usage(
    store: Store,
    now: float,
    tz: tzinfo | None = None,
    agents: Iterable[str] = (),
    chain_from: float | None = None,
) -> Usage:
    """`usage_in` over the sessions the store shows (every session, or those of some paths)."""
    return usage_in(
        store.ledger, Scope(agents=frozenset(agents), sessions=store.scope_ids()), now, tz, chain_from
    )


# ---------------------------------------------------------------- alarms
@dataclass(frozen=True, slots=True)
class Crossing:
    budget: str
    period: str  # the day, the block's start, or the session id
    threshold: float
    state: BudgetState

    def message(self) -> str:
        what = {"daily": "Daily", "block": "Block", "session": "Session"}.get(self.budget, self.budget)
        verb = "exceeded" if self.threshold >= 100 else f"at {self.threshold}%"
        return f"{what} budget {verb}: {self.state.text()}"


class Measured(Protocol):
    """Anything with a share used: a budget, or a plan window (`reports.limits.WindowState`)."""

    @property
    def percent(self) -> float: ...


class BudgetAlarm:
    """Remembers which (budget, period, threshold) was announced: each crossing is said once.

    When a jump passes several thresholds at once only the highest is reported. The plan windows'
    alerts use it too (name: the window, period: its reset time).
    """

    def __init__(self, thresholds: Iterable[float] = THRESHOLDS) -> None:
        self.thresholds = tuple(sorted(thresholds))
        self._said: set[tuple[str, str, float]] = set()

    def check(self, states: Mapping[str, tuple[str, Measured]]) -> list[Crossing]:
        """`states`: budget name -> (period key, state). The new crossings, highest per budget."""
        out: list[Crossing] = []
        for name, (period, st) in states.items():
            new = [th for th in self.thresholds if st.percent >= th and (name, period, th) not in self._said]
            for th in new:
                self._said.add((name, period, th))
            if new:
                out.append(Crossing(name, period, max(new), st))  # type: ignore[arg-type]
        return out


def period_keys(u: Usage, session_id: str = "") -> dict[str, str]:
    """The period each budget is counted over, as `BudgetAlarm` keys."""
    from tokwatch.core.models import iso

    return {"daily": u.day, "block": iso(u.block.start) if u.block else "", "session": session_id}
