"""Running totals turned into observed steps, each counted once (docs/agents.md, "observed steps").

Some agents keep only per-session running totals (Goose before schema 15, Hermes, Droid). Each
time tokwatch reads them, what a total grew by since the last read becomes one turn, an OBSERVED
STEP (`STEP_MARK` in its id): it may cover several requests, or part of one.

* The sums already emitted are kept per key (a session, or a Hermes usage row) in the parser's
  state, which the cache persists with the file: a restart that reads the same totals emits
  nothing, and one that reads larger totals emits only the growth.
* A step's id is the key, the source's own time of the change and the running total, so
  reading the same totals again yields the same id and numbers.
* A total that goes DOWN means the row was replaced or reset (a Hermes gateway agent rebuilt, a
  Droid settings file restored): the new value becomes the baseline and nothing is emitted, so
  nothing is counted twice (usage between the reset and the new value is lost, as in the agent).
* The first read of a key with no memory (a cold start) emits the whole total as one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokwatch.core.models import STEP_MARK

#: Per-key counters: input (not from cache), cache read, cache write, output, reasoning.
Counts = tuple[int, int, int, int, int]


@dataclass(slots=True, frozen=True)
class Step:
    turn_id: str
    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    cost_usd: float | None  # the agent's own cost for the step, when it keeps a running cost


class Steps:
    def __init__(self) -> None:
        #: key -> [input, cache_read, cache_write, output, reasoning, cost or None] already emitted
        self.emitted: dict[str, list[float | int | None]] = {}

    def observe(self, key: str, marker: str, counts: Counts, cost: float | None = None) -> Step | None:
        """The step since the last observation of `key`, or None (no growth, or a reset)."""
        prev = self.emitted.get(key)
        now: list[float | int | None] = [*counts, cost]
        if prev is None:
            delta = counts
            dcost = cost if cost is not None and cost > 0 else None
        else:
            old = prev[:5]
            delta = tuple(int(c) - int(p or 0) for c, p in zip(counts, old, strict=True))  # type: ignore[assignment]
            if any(d < 0 for d in delta):
                self.emitted[key] = now  # replaced or reset: a new baseline, nothing emitted
                return None
            pc = prev[5]
            dcost = (
                cost - pc
                if cost is not None and isinstance(pc, int | float) and cost - pc > 0 and any(delta)
                else None
            )
        self.emitted[key] = now
        if not any(delta):
            return None
        d_in, d_cr, d_cw, d_out, d_rsn = delta
        return Step(
            f"{STEP_MARK}{key}@{marker}#{sum(counts)}",
            d_in,
            d_cr,
            d_cw,
            d_out,
            min(d_rsn, d_out),
            dcost,
        )

    def state(self) -> dict[str, list[float | int | None]]:
        return {k: list(v) for k, v in self.emitted.items()}

    def restore(self, state: object) -> None:
        self.emitted = {}
        if not isinstance(state, Mapping):
            return
        for k, v in state.items():
            if (
                isinstance(k, str)
                and isinstance(v, list)
                and len(v) == 6
                and all(type(x) is int and x >= 0 for x in v[:5])
                and (v[5] is None or isinstance(v[5], int | float))
            ):
                self.emitted[k] = list(v)
