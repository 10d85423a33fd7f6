"""Numbers, money and durations as people read them: one function each, used by every output.

Costs are honest: unknown when no turn is priced, a lower bound (`≥`) when only some are.
"""

from __future__ import annotations

from tokwatch.core.models import Tokens


def num(n: int) -> str:
    return f"{n:,}"


def compact(n: int) -> str:
    for div, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def money(v: float) -> str:
    if v == 0:
        return "$0.00"
    if v < 0.01:
        return "<$0.01"
    return f"${v:,.2f}"


def cost_text(t: Tokens, unknown: str = "unknown") -> str:
    """`unknown` when no turn is priced, '≥$X' (a lower bound) when only some are."""
    if not t.unpriced_turns:
        return money(t.known_cost_usd)
    if t.unpriced_turns >= t.turns:
        return unknown
    return "≥" + money(t.known_cost_usd)


def duration(seconds: float) -> str:
    m = max(0, int(seconds // 60))
    return f"{m // 60}h{m % 60:02d}m"
