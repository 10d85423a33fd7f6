"""What a log (or a status-line hook) tells us besides billed turns.

A parser reports these through `LogParser.observations()`; the store records them in the SAME
transaction as the batch's turns. They are history: rows are added, never rewritten by reading,
and each carries a key so reading a log again adds nothing.

* `LimitSample`: one reading of one plan window ("5h: 13% used, resets at ...") as an agent saw
  it at `observed_at` (Codex rollouts, Claude's status-line stdin).
* `Compaction`: a logged compaction boundary of a session (when, why, how big the context was).
* `ContextSize`: the context after an event that is not a request (Kimi after `/compact`): it
  moves the session's gauge, never its totals.
* `Refused`: a limit reading with garbage values (a string, NaN, a negative or absurd percent),
  only counted.

Values are checked here, once, by `limit_sample` (shared by every reader): what it refuses never
reaches the ledger. No pydantic: backfill workers import this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokwatch.core.models import MAX_TS, MIN_TS

#: A used percentage above this is garbage, not "over the limit". Codex documents that
#: `used_percent` "can exceed 100" and Claude Code before 2.1.332 passed `utilization * 100`
#: unclamped, so 100-1000 is kept as reported (the views show it as full).
MAX_PERCENT = 1000.0
#: Window lengths we accept (1 minute to 10 years).
MAX_WINDOW_MINUTES = 10 * 366 * 1440
#: Two samples of one window with the same figures less than this apart: only the first is kept
#: (Codex writes every event twice; a status line runs after every message).
SAME_SAMPLE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class LimitSample:
    agent: str  # who reported it: "codex", "claude"
    provider: str  # whose plan: "openai", "anthropic"
    source: str  # how: "rollout", "statusline"
    limit_id: str  # the agent's name for the limit ("codex"; Claude has one: "claude")
    window_minutes: int  # 300 = the 5-hour window, 10080 = the weekly one
    used_percent: float
    resets_at: float | None  # unix seconds; None when not reported
    observed_at: float  # unix seconds
    plan_type: str = ""  # "plus", "pro", ... when reported
    session_id: str = ""  # the session whose log carried it, when there is one

    @property
    def key(self) -> tuple[str, str, int]:
        """The window this sample is about (across every source and session)."""
        return (self.agent, self.limit_id, self.window_minutes)

    def to_row(self) -> list[object]:
        return ["limit", self.agent, self.provider, self.source, self.limit_id, self.window_minutes,
                self.used_percent, self.resets_at, self.observed_at, self.plan_type, self.session_id]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Compaction:
    agent: str
    session_id: str
    key: str  # unique within the session: the log's id for the boundary, else its time
    timestamp: float
    trigger: str = ""  # "auto", "manual", or "" when the log does not say
    pre_tokens: int | None = None  # the context just before it, when logged
    post_tokens: int | None = None  # and just after

    def to_row(self) -> list[object]:
        return ["compaction", self.agent, self.session_id, self.key, self.timestamp, self.trigger,
                self.pre_tokens, self.post_tokens]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContextSize:
    agent: str
    session_id: str
    timestamp: float
    tokens: int
    window: int = 0  # when the log states it

    def to_row(self) -> list[object]:
        return ["context", self.agent, self.session_id, self.timestamp, self.tokens, self.window]


@dataclass(frozen=True, slots=True)
class Refused:
    agent: str
    what: str  # "limit"

    def to_row(self) -> list[object]:
        return ["refused", self.agent, self.what]


Observation = LimitSample | Compaction | ContextSize | Refused

_KINDS: dict[str, type] = {
    "limit": LimitSample,
    "compaction": Compaction,
    "context": ContextSize,
    "refused": Refused,
}


def from_row(row: list[object]) -> Observation:
    """The inverse of `to_row` (a backfill worker hands observations back as rows)."""
    kind = _KINDS[str(row[0])]
    return kind(*row[1:])  # type: ignore[no-any-return]


def _number(v: object) -> float | None:
    """A JSON number (never a bool or a string), finite; else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def epoch(v: object) -> float | None:
    """Unix seconds from a number of seconds (or milliseconds); None when not a usable time."""
    f = _number(v)
    if f is None or f <= 0:
        return None
    if f > 1e11:  # milliseconds
        f /= 1000.0
    return f if MIN_TS <= f <= MAX_TS else None


def window_minutes(v: object) -> int | None:
    """A window length in whole minutes; 299 and 10079 (Codex 0.47) are 300 and 10080."""
    f = _number(v)
    if f is None or not (1 <= f <= MAX_WINDOW_MINUTES):
        return None
    m = round(f)
    hours = round(m / 60)
    if m >= 60 and abs(m - hours * 60) <= 2:
        m = hours * 60
    return m


def window_label(minutes: int) -> str:
    """300 -> '5h', 10080 -> '7d', 90 -> '90m'."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def limit_sample(
    *,
    agent: str,
    provider: str,
    source: str,
    limit_id: str,
    minutes: object,
    used: object,
    resets_at: object,
    observed_at: float,
    plan_type: object = None,
    session_id: str = "",
) -> LimitSample | None:
    """A checked sample, or None when any value is garbage (the caller counts a `Refused`).

    `used` must be a number in 0..MAX_PERCENT; `resets_at` a time or null; `minutes` a length;
    `observed_at` a real time (a sample that cannot be placed in history is useless)."""
    pct = _number(used)
    if pct is None or pct < 0 or pct > MAX_PERCENT:
        return None
    m = window_minutes(minutes)
    if m is None or not (MIN_TS <= observed_at <= MAX_TS):
        return None
    resets: float | None = None
    if resets_at is not None:
        resets = epoch(resets_at)
        if resets is None:
            return None
    plan = plan_type if isinstance(plan_type, str) else ""
    return LimitSample(
        agent, provider, source, limit_id or agent, m, pct, resets, observed_at, plan[:40], session_id
    )
