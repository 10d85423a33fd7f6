"""5-hour usage blocks, counted the way Claude plans count them.

A block starts at its first turn's time floored to the (UTC) hour and lasts 5 hours; the first
turn at or after its end, or after a gap of 5 hours, opens the next one. Boundaries are a chain
(each block's start depends on the previous block's end), so they are computed from every turn
of the chosen agents; a caller may then tally only some of those turns (a project) per block.

A turn with no gap of 5 hours before it always starts a block (`anchor`): the chain can be picked
up there without reading older history, which is what keeps the status line fast.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tokwatch.core.models import Tally

BLOCK_SECONDS = 5 * 3600
HOUR = 3600


def floor_hour(ts: float) -> float:
    return float(math.floor(ts / HOUR) * HOUR)


def block_starts(timestamps: Sequence[float]) -> list[float]:
    """The start of every block, for turn times sorted ascending (undated, 0.0, are left out)."""
    starts: list[float] = []
    end = -math.inf
    last = -math.inf
    for ts in timestamps:
        if not ts:
            continue
        if ts >= end or ts - last >= BLOCK_SECONDS:
            start = floor_hour(ts)
            starts.append(start)
            end = start + BLOCK_SECONDS
        last = ts
    return starts


def anchor(timestamps: Sequence[float], complete_from: float) -> int | None:
    """Index of the first sorted turn known to start a block, given that every turn at or after
    `complete_from` is present (older ones may be missing); None when no turn qualifies."""
    prev = -math.inf
    for i, ts in enumerate(timestamps):
        if ts and ts - prev >= BLOCK_SECONDS and ts - BLOCK_SECONDS >= complete_from:
            return i
        if ts:
            prev = ts
    return None


def start_of(ts: float, starts: Sequence[float]) -> float | None:
    """The start of the block holding a turn at `ts` (None: undated, or before the first block)."""
    if not ts:
        return None
    i = bisect.bisect_right(starts, ts) - 1
    if i < 0 or ts >= starts[i] + BLOCK_SECONDS:
        return None
    return starts[i]


def active_start(starts: Sequence[float], now: float) -> float | None:
    """The block running at `now`, if any (later turns, as in a replay or skewed clock, do not count)."""
    i = bisect.bisect_right(starts, now) - 1
    if i >= 0 and now < starts[i] + BLOCK_SECONDS:
        return starts[i]
    return None


@dataclass(slots=True)
class Block(Tally):
    """One block's tally. `first`/`last` are its first and last turn times."""

    start: float = 0.0

    @property
    def end(self) -> float:
        return self.start + BLOCK_SECONDS


@dataclass(frozen=True, slots=True)
class Projection:
    """The running block seen from `now`: pace so far and where it ends at that pace."""

    elapsed_s: float
    remaining_s: float
    tokens_per_minute: float | None  # None in the block's first minute: one point is no rate
    cost_per_hour_usd: float | None  # None as well when any turn is unpriced
    projected_tokens: int | None
    projected_cost_usd: float | None


def project(block: Block, now: float) -> Projection:
    """Pace measured from the block's first turn to now (idle time slows it, as it should)."""
    remaining = max(0.0, block.end - now)
    elapsed = max(0.0, now - block.first) if block.first else 0.0
    if elapsed < 60:
        return Projection(elapsed, remaining, None, None, None, None)
    minutes = elapsed / 60
    tpm = block.tokens.total / minutes
    projected = block.tokens.total + round(tpm * remaining / 60)
    cost = block.tokens.cost_usd
    if cost is None:
        return Projection(elapsed, remaining, tpm, None, projected, None)
    per_min = cost / minutes
    return Projection(elapsed, remaining, tpm, per_min * 60, projected, cost + per_min * remaining / 60)


def max_completed(blocks: Sequence[Block], now: float) -> int:
    """The largest token total of a block that has ended (for `--token-limit max`)."""
    return max((b.tokens.total for b in blocks if b.end <= now), default=0)
