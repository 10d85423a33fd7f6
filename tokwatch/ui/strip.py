"""The "Today / current block" strip under the header: what today and the running 5-hour block add up to.

The numbers come from `budgets.current_usage` (computed off the UI thread by the app, see
`TokwatchApp._compute_usage`); this widget only lays them out. The clock moves the countdown, the
burn rate and the projection, so `render()` reads it: the 1 s timer just calls `refresh()`.

Costs follow the dashboard's rule: `unknown` when nothing could be priced, `≥$X*` when only part
of it could, never $0 for an unpriced turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tokwatch.core import blocks as blk
from tokwatch.core.models import Tokens
from tokwatch.reports.budgets import BudgetState, Usage
from tokwatch.ui import format as fmt

#: Cells of the daily budget bar (only drawn when there is room).
BAR_WIDTH = 10
#: How the two halves are joined on one line.
SEPARATOR = "  │  "
#: Detail levels tried in order: 0 is the richest, the last the barest.
LEVELS = (0, 1, 2, 3)
#: (today, block) levels tried for a single line before splitting into two (120 columns fit one).
ONE_LINE = ((0, 0), (0, 1), (1, 1), (1, 2))


_GREEN, _YELLOW, _RED, _DIM = Style(color="green"), Style(color="yellow"), Style(color="red"), Style(dim=True)


@dataclass(frozen=True, slots=True)
class Styles:
    """Styles of the budget bands: the widget reads the theme's from its CSS; these are for tests."""

    ok: Style = _GREEN
    warn: Style = _YELLOW
    high: Style = _RED
    rest: Style = _DIM

    def band(self, percent: float) -> Style:
        return getattr(self, fmt.level(percent))


def _join(label: Text, parts: Sequence[Text]) -> Text:
    out = label.copy()
    for i, part in enumerate(parts):
        out.append("  " if i == 0 else " · ", style="dim" if i else "")
        out.append_text(part)
    return out


def _label(name: str, agents: Sequence[str], level: int) -> Text:
    label = Text(name, style="bold")
    if agents and level <= 1:
        label.append(f" ({', '.join(agents)})", style="dim")
    return label


def budget_text(state: BudgetState, styles: Styles, bar: bool, name: str = "") -> Text:
    """`daily ━━━━╺───── 42%` (bar optional); `≥42%` when unpriced turns make it a lower bound."""
    pct = state.percent
    out = Text()
    if name:
        out.append(name + " ", style="dim")
    if bar:
        filled = round(BAR_WIDTH * min(pct, 100.0) / 100.0)
        out.append("━" * filled, style=styles.band(pct))
        out.append("━" * (BAR_WIDTH - filled), style=styles.rest)
        out.append(" ")
    out.append(f"{'≥' if state.lower_bound else ''}{pct:.0f}%", style=styles.band(pct) + Style(bold=True))
    return out


def today_text(
    u: Usage, daily: BudgetState | None, agents: Sequence[str], styles: Styles, level: int
) -> Text:
    """`Today  $4.21 · 1.23M tokens · 48 turns · daily ━━━━╺───── 42%`, barer at higher levels."""
    t = u.today
    parts: list[Text] = []
    if not t.turns:
        parts.append(Text("no turns yet", style="dim"))
    else:
        cost = fmt.cost(t)
        cost.stylize("bold")
        parts.append(cost)
        if level <= 2:
            parts.append(Text(fmt.tokens(t.total) + (f" {fmt.TOKENS_UNIT}" if level <= 1 else "")))
        if level <= 1:
            parts.append(Text(f"{t.turns} turn{'s' if t.turns != 1 else ''}"))
    if daily is not None:
        parts.append(budget_text(daily, styles, bar=level == 0, name="daily" if level <= 2 else ""))
    return _join(_label("Today", agents, level), parts)


def _scaled(t: Tokens, factor: float, extra_pico: int = 0) -> Tokens:
    """`t`'s cost times `factor` (plus `extra_pico`), keeping its priced/unpriced counts for `fmt.cost`."""
    return Tokens(
        turns=t.turns, unpriced_turns=t.unpriced_turns, cost_pico=extra_pico + int(t.cost_pico * factor)
    )


def block_text(
    u: Usage, block_state: BudgetState | None, agents: Sequence[str], styles: Styles, now: float, level: int
) -> Text:
    """`Block  3h 12m left · $1.23 · 456k tokens · $0.45/h → $2.10 at end · block 20%`.

    The pace is measured from the block's first turn (`blocks.project`); the projection is the
    cost at the block's end if it holds. Both are left out in the block's first minute.
    """
    b = u.block
    if b is None or now >= b.end:
        return Text("No active block", style="dim")
    t = b.tokens
    proj = blk.project(b, now)
    parts: list[Text] = [Text(fmt.duration(proj.remaining_s) + (" left" if level <= 2 else ""), style="bold")]
    cost = fmt.cost(t)
    parts.append(cost)
    if level <= 1:
        parts.append(Text(f"{fmt.tokens(t.total)} {fmt.TOKENS_UNIT}"))
    if level <= 2 and proj.tokens_per_minute is not None and proj.elapsed_s > 0:
        minutes = proj.elapsed_s / 60
        if t.turns and t.unpriced_turns >= t.turns:
            # nothing priced: a token pace says more than "unknown/h"
            pace = Text(f"{fmt.tokens(round(proj.tokens_per_minute))} {fmt.TOKENS_UNIT}/min → ")
            pace.append(f"{fmt.tokens(proj.projected_tokens or t.total)} {fmt.TOKENS_UNIT}")
        else:
            pace = fmt.cost(_scaled(t, 60.0 / minutes))
            pace.append("/h → ")
            pace.append_text(fmt.cost(_scaled(t, proj.remaining_s / 60.0 / minutes, t.cost_pico)))
        if level == 0:
            pace.append(" at end", style="dim")
        parts.append(pace)
    if block_state is not None:
        parts.append(budget_text(block_state, styles, bar=False, name="block" if level <= 2 else ""))
    return _join(_label("Block", agents, level), parts)


def lines(
    u: Usage | None,
    states: Mapping[str, BudgetState],
    agents: Sequence[str],
    now: float,
    width: int,
    styles: Styles | None = None,
) -> list[Text]:
    """The strip for `width` cells: one line when both halves fit, else one line each."""
    styles = styles or Styles()
    if u is None:
        return [Text.assemble(("Today", "bold"), "  ", ("reading history…", "dim"))]
    daily, block_state = states.get("daily"), states.get("block")
    for today_level, block_level in ONE_LINE:
        one = Text.assemble(
            today_text(u, daily, agents, styles, today_level),
            (SEPARATOR, "dim"),
            block_text(u, block_state, agents, styles, now, block_level),
        )
        if one.cell_len <= width:
            return [one]
    out: list[Text] = []
    for make in (
        lambda lv: today_text(u, daily, agents, styles, lv),
        lambda lv: block_text(u, block_state, agents, styles, now, lv),
    ):
        for level in LEVELS:
            text = make(level)
            if text.cell_len <= width:
                break
        out.append(fmt.fit(text, width))
    return out


class TodayStrip(Widget):
    """One line (two when narrow) under the header: today's spend and the running block's."""

    COMPONENT_CLASSES = {"strip--ok", "strip--warn", "strip--high", "strip--rest"}

    def __init__(self, clock: Callable[[], float], agents: Sequence[str] = (), **kw: str) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.agents = tuple(agents)
        self.usage: Usage | None = None
        self.states: dict[str, BudgetState] = {}

    def set(self, usage: Usage, states: Mapping[str, BudgetState]) -> None:
        self.usage = usage
        self.states = dict(states)
        self.refresh(layout=True)

    def _styles(self) -> Styles:
        get = self.get_component_rich_style
        return Styles(get("strip--ok"), get("strip--warn"), get("strip--high"), get("strip--rest"))

    def _lines(self, width: int) -> list[Text]:
        return lines(self.usage, self.states, self.agents, self.clock(), max(1, width), self._styles())

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_size.width))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self._lines(width))

    def tick(self) -> None:
        """The 1 s clock: the countdown, the pace and the projection move with it.

        A relayout only when the strip would change height (a longer countdown no longer fits).
        """
        if self.usage is None or self.usage.block is None:
            return
        self.refresh(layout=len(self._lines(self.content_size.width)) != self.content_size.height)
