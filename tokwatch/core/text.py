"""Numbers, money and durations as people read them: one function each, used by every output.

Costs are honest: unknown when no turn is priced, a lower bound (`≥`) when only some are.
"""

from __future__ import annotations

import re

from tokwatch.core.models import Tokens

#: Shown where a name is unknown (an en dash).
DASH = "\u2013"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def num(n: int) -> str:
    return f"{n:,}"


def compact(n: int) -> str:
    """A token count as every view shows it: 3 significant digits and k, M, G, T
    ('999', '1.53k', '150k', '2.2M'), trailing zeros dropped."""
    if abs(n) < 1000:
        return str(n)
    v = float(n)
    units = ("", "k", "M", "G", "T", "P")
    i = 0
    while abs(v) >= 999.5 and i < len(units) - 1:  # (999.5k rounds to 1M, not '1e+03k')
        v /= 1000
        i += 1
    return f"{v:.3g}{units[i]}"


#: The unit after a token count wherever one is needed ("1.2M tok", "52k tok/min").
TOKENS_UNIT = "tok"


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


def project_name(project: str) -> str:
    """A project as views show it: the last folder of a path (POSIX, ~ or Windows); a Gemini
    project known only by its folder's sha256, `gemini:95377b2a`; any other name whole, as written."""
    if _SHA256.fullmatch(project):
        return f"gemini:{project[:8]}"
    looks_like_path = project.startswith(("/", "~", "\\")) or (
        len(project) > 2 and project[1:3] in (":\\", ":/")
    )
    if not looks_like_path:
        return project or DASH
    parts = [p for p in project.replace("\\", "/").split("/") if p]
    return parts[-1] if parts else project
