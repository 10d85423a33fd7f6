"""Budgets (per day, per 5-hour block, per session) and "today / this block" usage.

`current_usage` answers "today" and "the running block" without walking all history: only sessions
active since a cut-off are read, and the block chain is picked up at a turn that is known to start
a block (`blocks.anchor`); the cut-off moves back only when no such turn is found. `BudgetAlarm`
reports each 80% / 100% crossing once per period (a day, a block, a session), for the dashboard.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from tokwatch.config import Budget, BudgetsConfig
from tokwatch.core import blocks as blk
from tokwatch.core.models import Tokens, Turn

if TYPE_CHECKING:
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


def _recent(store: Store, since: float, agents: frozenset[str]) -> list[tuple[Turn, int | None]]:
    """Every turn of the sessions with a turn at or after `since` (so complete from `since` on)."""
    out: list[tuple[Turn, int | None]] = []
    with store.lock:
        for key, s in store.sessions.items():
            if (agents and s.agent not in agents) or s.last_seen < since:
                continue
            out.extend(store.turns_with_cost(key))
    out.sort(key=lambda e: e[0].timestamp)
    return out


def usage_from_turns(
    turns: list[tuple[Turn, int | None]],
    complete_from: float,
    now: float,
    tz: tzinfo | None,
    chain_from: float | None = None,
) -> Usage | None:
    """Today's and the running block's tallies from time-sorted turns complete from `complete_from` on.

    The block chain starts at `chain_from` when the caller knows a block starts there (and
    `complete_from <= chain_from`), else at a turn known to start one (`blocks.anchor`); None when
    there is no such turn, i.e. the turns must reach further back.
    """
    day, day_start, day_end = day_bounds(now, tz)
    today = Tokens()
    for t, cost in turns:
        if day_start <= t.timestamp < day_end:
            today.add(t, cost)
    stamps = [t.timestamp for t, _ in turns]
    block: blk.Block | None = None
    last_start: float | None = None
    if any(now - blk.BLOCK_SECONDS < ts <= now for ts in stamps):
        # Any turn known to start a block will do: a block cannot start inside another one.
        if chain_from is not None and complete_from <= chain_from:
            i: int | None = bisect.bisect_left(stamps, chain_from)
        else:
            i = blk.anchor(stamps, complete_from)
        if i is None:
            return None
        starts = blk.block_starts(stamps[i:])
        j = bisect.bisect_right(starts, now) - 1
        last_start = starts[j] if j >= 0 else None
        start = blk.active_start(starts, now)
        if start is not None:
            block = blk.Block(start=start)
            for t, cost in turns:
                if start <= t.timestamp < start + blk.BLOCK_SECONDS:
                    block.add(t, cost)
    return Usage(now=now, day=day.isoformat(), today=today, block=block, last_start=last_start)


def current_usage(
    store: Store,
    now: float,
    tz: tzinfo | None = None,
    agents: Iterable[str] = (),
    chain_from: float | None = None,
) -> Usage:
    """Today (midnight to midnight in `tz`, None = local) and the running block, from the store.

    Pass the previous result's `last_start` as `chain_from` (a live view calling this after each
    batch): the block chain then resumes there instead of looking back for a 5-hour gap.
    """
    chosen = frozenset(agents)
    recent = min(midnight(now, tz), now - blk.BLOCK_SECONDS)
    passes = [(min(recent, chain_from), chain_from)] if chain_from is not None and chain_from <= now else []
    passes += [(recent - back, None) for back in LOOKBACKS]
    for since, start in passes:
        u = usage_from_turns(_recent(store, since, chosen), since, now, tz, start)
        if u is not None:
            return u
    raise AssertionError("unreachable: the last pass reads everything")


# ---------------------------------------------------------------- alarms
@dataclass(frozen=True, slots=True)
class Crossing:
    budget: str
    period: str  # the day, the block's start, or the session id
    threshold: int
    state: BudgetState

    def message(self) -> str:
        what = {"daily": "Daily", "block": "Block", "session": "Session"}.get(self.budget, self.budget)
        verb = "exceeded" if self.threshold >= 100 else f"at {self.threshold}%"
        return f"{what} budget {verb}: {self.state.text()}"


class BudgetAlarm:
    """Remembers which (budget, period, threshold) was announced: each crossing is said once.

    When a jump passes several thresholds at once only the highest is reported.
    """

    def __init__(self, thresholds: Iterable[int] = THRESHOLDS) -> None:
        self.thresholds = tuple(sorted(thresholds))
        self._said: set[tuple[str, str, int]] = set()

    def check(self, states: Mapping[str, tuple[str, BudgetState]]) -> list[Crossing]:
        """`states`: budget name -> (period key, state). The new crossings, highest per budget."""
        out: list[Crossing] = []
        for name, (period, st) in states.items():
            new = [th for th in self.thresholds if st.percent >= th and (name, period, th) not in self._said]
            for th in new:
                self._said.add((name, period, th))
            if new:
                out.append(Crossing(name, period, max(new), st))
        return out


def period_keys(u: Usage, session_id: str = "") -> dict[str, str]:
    """The period each budget is counted over, as `BudgetAlarm` keys."""
    from tokwatch.core.models import iso

    return {"daily": u.day, "block": iso(u.block.start) if u.block else "", "session": session_id}
