"""Plan windows and the road to compaction, read from the ledger (docs/limits.md).

`windows(ledger, now)` gives each plan window's newest sample with its history over the window's
current period (for a sparkline); `Window.at(now)` says what that means at `now`: the share used
(0 once the window is past its reset: the old figure no longer applies), the time to the reset,
the sample's age, and the projection at the window's pace so far. A window starts at 0%, so the
pace is simply its used share over the time elapsed since it started.

`road(ledger, session)` is a session's way to its next compaction: the agent's auto-compact point
(`Agent.compact_threshold`; unknown rules fall back to the whole window), the tokens left before
it, the context's growth per turn over its latest turns, and the compactions logged so far.

Everything here reads; nothing is written. Callers run it off the UI thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokwatch.core.ledger_obs import REFUSED_KEY, SAMPLE_COLUMNS, sample_from_row
from tokwatch.core.models import Session, iso
from tokwatch.core.observations import LimitSample, window_label

if TYPE_CHECKING:
    from tokwatch.core.ledger import Ledger

#: Cells of a window's history (the panel draws as many as fit).
BUCKETS = 48
#: Windows whose newest sample is older than this are not looked at (nor shown).
HORIZON_SECONDS = 35 * 86400.0
#: Samples of the same period have (nearly) the same reset time; another one is another period.
SAME_PERIOD_SECONDS = 600.0
#: No projection before the window has run this long (or this share of it): too little to go on.
MIN_ELAPSED_SECONDS = 300.0
MIN_ELAPSED_SHARE = 0.02
#: Turns looked at for the context's growth per turn.
GROWTH_TURNS = 8
#: Agents whose own window names read better than the agent's name.
PROVIDERS = {"codex": "Codex", "claude": "Claude"}


@dataclass(frozen=True, slots=True)
class Window:
    """One plan window as its newest sample saw it, and its history over the current period."""

    agent: str
    provider: str
    limit_id: str
    minutes: int
    used: float
    resets_at: float | None
    observed_at: float
    source: str
    plan_type: str
    #: the largest share seen in each of BUCKETS equal parts of the period (None: no sample there)
    history: tuple[float | None, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.agent}/{self.limit_id}/{self.minutes}"

    @property
    def seconds(self) -> float:
        return self.minutes * 60.0

    @property
    def label(self) -> str:
        """`5h`, `7d`, or `codex_other 5h` for a limit that is not the agent's main one."""
        w = window_label(self.minutes)
        return w if self.limit_id == self.agent else f"{self.limit_id} {w}"

    @property
    def name(self) -> str:
        return PROVIDERS.get(self.agent, self.agent)

    @property
    def start(self) -> float:
        """When the sample's period began (a window starts at 0%)."""
        end = self.resets_at if self.resets_at is not None else self.observed_at
        return end - self.seconds

    def visible(self, now: float) -> bool:
        """Worth showing: its period, or the one right after its reset, is not over."""
        end = self.resets_at if self.resets_at is not None else self.observed_at
        return now < end + self.seconds

    def at(self, now: float, stale_after: float) -> WindowState:
        reset = self.resets_at is not None and now >= self.resets_at
        age = max(0.0, now - self.observed_at)
        projected: float | None = None
        full_at: float | None = None
        if not reset and self.resets_at is not None:
            elapsed = self.observed_at - self.start
            if self.used >= 100:
                full_at = self.observed_at
                projected = self.used
            elif elapsed >= max(MIN_ELAPSED_SECONDS, MIN_ELAPSED_SHARE * self.seconds):
                pace = self.used / elapsed  # share per second since the window began
                projected = self.used + pace * (self.resets_at - self.observed_at)
                if pace > 0:
                    at = self.observed_at + (100.0 - self.used) / pace
                    full_at = at if at < self.resets_at else None
        return WindowState(
            window=self,
            now=now,
            reset=reset,
            percent=0.0 if reset else self.used,
            resets_in=None if self.resets_at is None or reset else self.resets_at - now,
            age=age,
            stale=age > stale_after,
            projected=projected,
            full_in=None if full_at is None else max(0.0, full_at - now),
        )


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window at a moment: what the panel draws and `status --json` prints."""

    window: Window
    now: float
    reset: bool  # past its reset: the sample's figure no longer applies (0% since, as far as known)
    percent: float
    resets_in: float | None
    age: float
    stale: bool
    projected: float | None  # the share at the reset if the pace holds (None: too early to say)
    full_in: float | None  # seconds until 100% at that pace (None: not before the reset, or unknown)

    @property
    def will_reach(self) -> bool:
        return self.full_in is not None

    def as_json(self) -> dict[str, object]:
        """The budget-like shape (`used` of `limit`, `percent`) plus what only a plan window has."""
        w = self.window
        return {
            "used": round(self.percent, 2),
            "limit": 100,
            "percent": round(self.percent, 1),
            "unit": "percent",
            "resetsAt": iso(w.resets_at) if w.resets_at else None,
            "resetsIn": None if self.resets_in is None else round(self.resets_in),
            "reset": self.reset,
            "projected": None if self.projected is None else round(self.projected, 1),
            "fullIn": None if self.full_in is None else round(self.full_in),
            "observedAt": iso(w.observed_at),
            "age": round(self.age),
            "stale": self.stale,
            "windowMinutes": w.minutes,
            "limitId": w.limit_id,
            "source": w.source,
            "planType": w.plan_type or None,
        }

    def text(self) -> str:
        """For an alert: `Codex 5h window at 82% (resets in 1h 10m)`."""
        from tokwatch.core.text import duration

        out = f"{self.window.name} {self.window.label} window at {self.percent:.0f}%"
        if self.resets_in is not None:
            out += f" (resets in {duration(self.resets_in)})"
        return out


def windows(ledger: Ledger, now: float, agents: Iterable[str] = ()) -> tuple[Window, ...]:
    """Every plan window worth showing at `now`, newest sample first per window, ordered by agent
    and length; with its history over the current period."""
    wanted = frozenset(agents)
    with ledger.reading() as db:
        rows = db.execute(
            "SELECT agent, limit_id, window_minutes, max(observed_at), provider, source, used_percent,"
            " resets_at, plan_type FROM limit_samples WHERE observed_at >= ? AND observed_at <= ?"
            " GROUP BY agent, limit_id, window_minutes",
            (now - HORIZON_SECONDS, now),
        ).fetchall()
        out = []
        for agent, limit_id, minutes, observed, provider, source, used, resets, plan in rows:
            if wanted and agent not in wanted:
                continue
            w = Window(
                str(agent), str(provider), str(limit_id), int(minutes), float(used),
                None if resets is None else float(resets), float(observed), str(source), str(plan),
            )  # fmt: skip
            if not w.visible(now):
                continue
            out.append(_with_history(db, w))
    out.sort(key=lambda w: (w.agent, w.limit_id != w.agent, w.limit_id, w.minutes))
    return tuple(out)


def _with_history(db: object, w: Window) -> Window:
    bucket = w.seconds / BUCKETS
    q = (
        "SELECT CAST((observed_at - ?) / ? AS INTEGER), max(used_percent) FROM limit_samples"
        " WHERE agent=? AND limit_id=? AND window_minutes=? AND observed_at >= ? AND observed_at <= ?"
    )
    args: list[object] = [w.start, bucket, w.agent, w.limit_id, w.minutes, w.start, w.observed_at]
    if w.resets_at is not None:
        q += " AND (resets_at IS NULL OR abs(resets_at - ?) <= ?)"
        args += [w.resets_at, SAME_PERIOD_SECONDS]
    cells: list[float | None] = [None] * BUCKETS
    for b, used in db.execute(q + " GROUP BY 1", args):  # type: ignore[attr-defined]
        if 0 <= b < BUCKETS:
            cells[b] = float(used)
    return Window(
        w.agent, w.provider, w.limit_id, w.minutes, w.used, w.resets_at, w.observed_at, w.source, w.plan_type,
        tuple(cells),
    )  # fmt: skip


def states(wins: Iterable[Window], now: float, stale_after: float) -> list[WindowState]:
    return [w.at(now, stale_after) for w in wins]


def limits_json(wins: Iterable[Window], now: float, stale_after: float) -> dict[str, dict[str, object]]:
    """`{"codex": {"5h": {...}, "7d": {...}}, "claude": {...}}` for `status --json`."""
    out: dict[str, dict[str, object]] = {}
    for st in states(wins, now, stale_after):
        out.setdefault(st.window.agent, {})[st.window.label] = st.as_json()
    return out


def refused(ledger: Ledger) -> int:
    """How many limit readings were refused as garbage (never stored)."""
    v = ledger.meta(REFUSED_KEY)
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0


def history(
    ledger: Ledger, since: float | None = None, until: float | None = None, agents: Iterable[str] = ()
) -> list[LimitSample]:
    """Every stored sample in a time range, by window then time (`report limits`)."""
    q = f"SELECT {SAMPLE_COLUMNS} FROM limit_samples WHERE 1=1"
    args: list[object] = []
    if since is not None:
        q += " AND observed_at >= ?"
        args.append(since)
    if until is not None:
        q += " AND observed_at < ?"
        args.append(until)
    wanted = sorted(set(agents))
    if wanted:
        q += f" AND agent IN ({','.join('?' * len(wanted))})"
        args += wanted
    q += " ORDER BY agent, limit_id, window_minutes, observed_at"
    with ledger.reading() as db:
        return [sample_from_row(r) for r in db.execute(q, args)]


# ---------------------------------------------------------------- the road to compaction
@dataclass(frozen=True, slots=True)
class Road:
    """A session's way to its next compaction."""

    used: int
    window: int
    threshold: int | None  # where the agent auto-compacts (None: its rule is unknown)
    rule: str  # that rule in words ("" when unknown)
    growth: float | None  # context tokens added per turn lately (None: not enough turns)
    count: int  # compactions logged in this session
    last_at: float  # when the last one was (0: never)

    @property
    def limit(self) -> int:
        """Where the road ends: the auto-compact point, else the whole window."""
        return self.threshold if self.threshold is not None else self.window

    @property
    def left(self) -> int | None:
        return max(0, self.limit - self.used) if self.limit else None

    @property
    def turns_left(self) -> float | None:
        left = self.left
        if left is None or not self.growth or self.growth <= 0:
            return None
        return left / self.growth

    def as_json(self) -> dict[str, object]:
        turns = self.turns_left
        return {
            "threshold": self.threshold,
            "basis": "auto-compact" if self.threshold is not None else ("window" if self.window else None),
            "rule": self.rule or None,
            "window": self.window or None,
            "used": self.used,
            "tokensLeft": self.left,
            "growthPerTurn": None if self.growth is None else round(self.growth),
            "turnsLeft": None if turns is None else math.floor(turns),
            "count": self.count,
            "lastAt": iso(self.last_at) if self.last_at else None,
        }


def compact_point(s: Session) -> tuple[int | None, str]:
    """Where `s`'s agent auto-compacts it (tokens) and the rule in words; (None, "") when unknown.
    Pure: safe on any thread."""
    from tokwatch.agents import get_agent

    agent = get_agent(s.agent)
    if agent is None or not s.context_window:
        return None, ""
    threshold = agent.compact_threshold(s.context_model, s.context_window)
    if threshold is None or not (0 < threshold <= s.context_window):
        return None, ""
    return threshold, agent.compact_rule


def road(ledger: Ledger, s: Session) -> Road:
    """`s`'s road to compaction; the growth and the count are read from the ledger."""
    threshold, rule = compact_point(s)
    with ledger.reading() as db:
        row = db.execute(
            "SELECT id FROM sessions WHERE agent=? AND session_id=?", (s.agent, s.session_id)
        ).fetchone()
        contexts: list[int] = []
        if row is not None:
            for ctx, i, cr, cw in db.execute(
                "SELECT context_tokens, input, cache_read, cache_write FROM turns WHERE session=? AND (flags & 1) = 0"
                " ORDER BY ts DESC, turn_id DESC LIMIT ?",
                (row[0], GROWTH_TURNS + 1),
            ):
                contexts.append(int(ctx) or int(i) + int(cr) + int(cw))
        count, last = db.execute(
            "SELECT count(*), coalesce(max(ts), 0) FROM compactions WHERE agent=? AND session_id=?",
            (s.agent, s.session_id),
        ).fetchone()
    return Road(
        s.context_used, s.context_window, threshold, rule, growth(contexts[::-1]), int(count), float(last)
    )


def growth(contexts: list[int]) -> float | None:
    """Tokens added per turn over the latest run of growing prompts (a drop, i.e. a compaction or
    a rewind, starts a new run); None with fewer than two turns in the run."""
    start = len(contexts) - 1
    while start > 0 and contexts[start - 1] <= contexts[start]:
        start -= 1
    n = len(contexts) - start
    if n < 2:
        return None
    return (contexts[-1] - contexts[start]) / (n - 1)
