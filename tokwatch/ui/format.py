"""Pure text helpers for the dashboard: numbers, money, times and session list entries.

Nothing here touches Textual or the clock: "now" is always passed in, so every string is
reproducible in tests and snapshots. Text from logs (projects, models) only ever enters a
`rich.text.Text` as plain content, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass

import humanize
from rich.cells import cell_len
from rich.text import Text

from tokwatch.core.models import Session, Tokens
from tokwatch.core.text import DASH, TOKENS_UNIT, clean, compact, project_name

__all__ = ["DASH", "TOKENS_UNIT", "project_name"]

#: How many of a session's latest turns the burn rate looks at.
BURN_TURNS = 10
#: A longer pause between two turns ends the "recent" run the burn rate looks at (seconds).
BURN_MAX_GAP = 15 * 60.0
#: The shortest span a rate is computed over (seconds).
BURN_MIN_SPAN = 60.0


def tokens(n: int) -> str:
    """150000 -> '150k', 1534 -> '1.53k', 999 -> '999': the one token style (`core.text.compact`)."""
    return compact(n)


def usd(v: float) -> str:
    """Dollars for a human: cents, '<$0.01' for dust, no cents from $1,000 up."""
    if v == 0:
        return "$0.00"
    if v < 0.01:
        return "<$0.01"
    if v < 1000:
        return f"${v:.2f}"
    return f"${v:,.0f}"


def cost(t: Tokens) -> Text:
    """A cost that never pretends: 'unknown' when no turn is priced, '≥ $X*' when only some are."""
    if not t.unpriced_turns:
        return Text(usd(t.known_cost_usd))
    if t.unpriced_turns >= t.turns:
        return Text("unknown", style="italic")
    known = t.known_cost_usd
    return Text(f"≥{usd(known) if known >= 0.01 else '$0.00'}*", style="italic")


def cost_pico(values: list[int | None]) -> Text:
    """The cost of a few turns (picodollars, None = unpriced), with the same honesty as `cost`."""
    t = Tokens(turns=len(values))
    for v in values:
        if v is None:
            t.unpriced_turns += 1
        else:
            t.cost_pico += v
    return cost(t)


def ago(ts: float, now: float) -> str:
    """'5 minutes ago' (humanize); a timestamp from the future (clock skew) reads 'now'."""
    if not ts:
        return "never"
    text = humanize.naturaltime(max(0.0, now - ts))
    if ", " in text:  # "1 year, 1 month ago" -> "1 year ago": a list column has no room for both
        text = text.split(", ")[0] + " ago"
    return text


def duration(seconds: float) -> str:
    """A compact span: '45s', '12m', '5h 01m', '3d 04h'."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def short_id(session_id: str) -> str:
    return clean(session_id[:8])


def level(percent: float | None) -> str:
    """The gauge colour band: below 50% 'ok', below 80% 'warn', else 'high'."""
    if percent is None or percent < 50:
        return "ok"
    return "warn" if percent < 80 else "high"


#: Shown for a context window (and its share) that is not known.
UNKNOWN = "?"
#: Marks a window the agent does not state, assumed from its default (`~272k`).
ASSUMED = "~"


def window_text(window: int, assumed: bool) -> str:
    """'200k', '~272k' (assumed), '?' (unknown: never 0)."""
    if not window:
        return UNKNOWN
    return (ASSUMED if assumed else "") + tokens(window)


def percent(s: Session) -> str:
    """The context share: '49%', '~49%' of an assumed window, '?' of an unknown one."""
    p = s.context_percent
    if p is None:
        return UNKNOWN
    return f"{ASSUMED if s.context_window_assumed else ''}{p:.0f}%"


def is_active(s: Session, now: float, active_minutes: float) -> bool:
    return bool(s.last_seen) and now - s.last_seen <= active_minutes * 60


@dataclass(frozen=True, slots=True)
class Burn:
    """Spend over a session's latest turns: tokens per minute and the cost per hour."""

    turns: int
    tokens_per_min: float | None
    cost_per_hour: Text | None


def burn(s: Session, n: int = BURN_TURNS, max_gap: float = BURN_MAX_GAP) -> Burn:
    """Rates over the latest run of turns: at most `n`, with no pause longer than `max_gap` seconds.

    A session resumed after a week must not average its spend over that week. The first turn of
    the run only opens the time span, so its own tokens are not counted. A span shorter than a
    minute counts as one: two turns a second apart must not read as millions of tokens a minute.
    """
    ts = s.recent_ts
    start = len(ts) - 1
    while start > 0 and len(ts) - start < n and 0 <= ts[start] - ts[start - 1] <= max_gap:
        start -= 1
    run = len(ts) - start
    if run < 2 or ts[-1] - ts[start] <= 0:
        return Burn(run, None, None)
    span = max(ts[-1] - ts[start], BURN_MIN_SPAN)
    per_min = sum(s.recent[start + 1 :]) * 60.0 / span
    t = Tokens(turns=run - 1)
    for c in s.recent_cost[start + 1 :]:
        if c is None:
            t.unpriced_turns += 1
        else:
            t.cost_pico += c
    t.cost_pico = int(t.cost_pico * 3600.0 / span)
    return Burn(run, per_min, cost(t))


def fit(text: Text, width: int, justify: str = "left") -> Text:
    """`text` cut with an ellipsis or padded to exactly `width` cells."""
    width = max(0, width)
    out = text.copy()
    if out.cell_len > width:
        out.truncate(width, overflow="ellipsis")
    pad = width - out.cell_len
    if pad > 0:
        if justify == "right":
            out = Text(" " * pad) + out
        else:
            out.append(" " * pad)
    return out


AGENT_WIDTH = 9
#: The mark of a session whose log files were deleted (its totals come from the cache).
ARCHIVED = "archived"
AGO_WIDTH = 14
CTX_WIDTH = 5
COST_WIDTH = 9


def entry(s: Session, now: float, active: bool, width: int, one_line: bool) -> Text:
    """One session list entry, exactly `width` cells wide: one line (narrow) or two (wide).

    one line:  `● claude  spotter-dov      5 minutes ago  49%    $1.08`
    two lines: `● claude  spotter-dov                 $1.08`
               `  5 minutes ago                    ctx 49%`
    An archived session (its logs were deleted) gets a dim `archived` after its name (one line)
    or after its time (two lines).
    """
    marker = Text("● ", style="bold green") if active else Text("· ", style="dim")
    agent = fit(Text(clean(s.agent), style="bold"), AGENT_WIDTH - 1) + Text(" ")
    name = Text(project_name(s.project))
    when = Text(ago(s.last_seen, now), style="" if active else "dim")
    money = cost(s.totals)
    if one_line:
        rest = width - 2 - AGENT_WIDTH - AGO_WIDTH - CTX_WIDTH - COST_WIDTH - 2
        if s.archived:  # after the name, which gives up its room first
            mark = Text(ARCHIVED, style="dim")
            room = max(0, rest - mark.cell_len - 1)
            name = (fit(name, room) if name.cell_len > room else name) + Text(" ") + mark
        line = Text.assemble(
            marker,
            agent,
            fit(name, rest),
            "  ",
            fit(when, AGO_WIDTH),
            fit(Text(percent(s)), CTX_WIDTH, "right"),
            fit(money, COST_WIDTH, "right"),
        )
        return fit(line, width)  # a tiny terminal: cut, never wider than the list
    rest = width - 2 - AGENT_WIDTH - COST_WIDTH
    line1 = Text.assemble(marker, agent, fit(name, rest), fit(money, COST_WIDTH, "right"))
    ctx = Text("ctx " + percent(s), style="dim")
    if s.archived:
        when.append(" · ", style="dim")
        when.append(ARCHIVED, style="dim")
    line2 = Text.assemble("  ", fit(when, width - 2 - cell_len(ctx.plain)), ctx)
    return Text.assemble(fit(line1, width), "\n", fit(line2, width))
