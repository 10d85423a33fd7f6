"""A stacked bar chart for the insights view, drawn with Rich segments (eighth blocks).

Why not textual-plotext or textual-plot: measured on this project's machine (docs/performance.md),
plotext takes 150-700 ms to build one 200-column frame, on the UI thread, for every cursor move;
both merge neighbouring bars into one block once there are more bars than columns allow; neither
stacks series with a highlighted bar; plotext hands labels through ANSI text (log text must never
become escape sequences) and textual-plot brings numpy. This widget draws a 200 x 40 frame in a
few milliseconds, keeps a one-column gap between bars (showing fewer bars, scrolled by the cursor,
when the width is short), stacks series with two colours per cell (foreground below, background
above), and takes every colour from the theme or its own component classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

#: Lower eighth blocks: index n draws n eighths of a cell from the bottom.
BLOCKS = " ▁▂▃▄▅▆▇█"
SERIES_CLASSES = tuple(f"bar-chart--s{i}" for i in range(6))
#: The widest a bar gets (few bars on a wide screen): the rest is gap.
MAX_BAR = 12


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: `values` are stacked bottom up, one per series (the chart's `series` order)."""

    key: str
    label: str  # the x label when there is room, e.g. "Mar 24"
    short: str  # when there is not, e.g. "24"
    values: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.values)


def nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least `v` (an axis that reads round)."""
    if v <= 0:
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        c = m * 10**exp
        if c >= v * (1 - 1e-9):
            return float(c)
    return float(10 ** (exp + 1))


def money_tick(v: float) -> str:
    """An axis label in dollars: $0, $0.25, $2.5, $15, $120, $1.5k, $25k."""
    if v == 0:
        return "$0"
    if v >= 1000:
        return f"${v / 1000:.3g}k"
    if v >= 10:
        return f"${v:.0f}"
    return f"${v:.2f}".rstrip("0").rstrip(".")


def percent_tick(v: float) -> str:
    return f"{v * 100:.0f}%"


class BarChart(Widget, can_focus=True):
    """Bars over time with a keyboard cursor; a horizontal limit line (a budget) when given."""

    COMPONENT_CLASSES = {
        "bar-chart--axis",
        "bar-chart--cursor",
        "bar-chart--cursor-label",
        "bar-chart--limit",
        *SERIES_CLASSES,
    }
    DEFAULT_CSS = """
    BarChart {
        height: 1fr;
        min-height: 5;
    }
    BarChart > .bar-chart--axis { color: $text-muted; }
    BarChart > .bar-chart--cursor { background: $foreground 5%; }
    BarChart:focus > .bar-chart--cursor { background: $foreground 9%; }
    BarChart > .bar-chart--cursor-label { color: $text; text-style: bold; background: $foreground 12%; }
    BarChart:focus > .bar-chart--cursor-label { background: $primary 50%; }
    BarChart > .bar-chart--limit { color: $error; }
    BarChart > .bar-chart--s0 { color: #4e79a7; }
    BarChart > .bar-chart--s1 { color: #f28e2b; }
    BarChart > .bar-chart--s2 { color: #59a14f; }
    BarChart > .bar-chart--s3 { color: #e15759; }
    BarChart > .bar-chart--s4 { color: #b07aa1; }
    BarChart > .bar-chart--s5 { color: #9c9c9c; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "Earlier", id="chart.left", show=False),
        Binding("right", "move(1)", "Later", id="chart.right", show=False),
        Binding("home", "first", "First", id="chart.first", show=False),
        Binding("end", "last", "Last", id="chart.last", show=False),
    ]

    cursor: reactive[int] = reactive(0, init=False, always_update=True)

    class CursorMoved(Message):
        """The selected bar changed (or the data under it)."""

        def __init__(self, chart: BarChart, index: int) -> None:
            super().__init__()
            self.chart = chart
            self.index = index

        @property
        def control(self) -> BarChart:
            return self.chart

    def __init__(self, *, percent: bool = False, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.percent = percent
        self.bars: tuple[Bar, ...] = ()
        self.limit: float | None = None
        #: bars the width shows at most (set by the last draw), and the first one shown
        self.window = 0
        self.first = 0
        #: at least this many columns per bar, gap included (3 makes a narrow chart show fewer bars)
        self.min_slot = 2
        self._lines: list[Strip] | None = None
        self._drawn_for = Size(0, 0)
        self._follow_end = True

    # ------------------------------------------------------------------ data
    def set_data(self, bars: Sequence[Bar], limit: float | None = None) -> None:
        """New bars; the cursor stays on the same key when it still exists, else on the last bar."""
        old = self.bars[self.cursor].key if self.bars and 0 <= self.cursor < len(self.bars) else None
        at_end = not self.bars or self.cursor >= len(self.bars) - 1
        self.bars = tuple(bars)
        self.limit = limit if limit and limit > 0 else None
        index = len(self.bars) - 1
        if old is not None and not at_end:
            index = next((i for i, b in enumerate(self.bars) if b.key == old), index)
        self._lines = None
        self.cursor = max(0, index)
        self.refresh()  # (the cursor may not have moved: its watcher would not redraw)

    @property
    def selected(self) -> Bar | None:
        if not self.bars:
            return None
        return self.bars[min(max(0, self.cursor), len(self.bars) - 1)]

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.bars) - 1)) if self.bars else 0

    def watch_cursor(self, value: int) -> None:
        self._scroll_to_cursor()
        self._lines = None
        self.refresh()
        self.post_message(self.CursorMoved(self, value))

    def action_move(self, step: int) -> None:
        self.cursor += step

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self.bars) - 1

    def _scroll_to_cursor(self) -> None:
        if not self.window:
            return
        if self.cursor < self.first:
            self.first = self.cursor
        elif self.cursor >= self.first + self.window:
            self.first = self.cursor - self.window + 1
        self.first = max(0, min(self.first, max(0, len(self.bars) - self.window)))

    # ------------------------------------------------------------------ drawing
    def notify_style_update(self) -> None:
        """A theme change or a CSS class: the colours come from styles, draw again."""
        super().notify_style_update()
        self._lines = None

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(5, container.height)

    def render_line(self, y: int) -> Strip:
        # (drawn again at a new size here: the compositor can paint at the new size before the
        # Resize event arrives, which left the rows of the old, taller drawing on screen)
        if self._lines is None or self._drawn_for != self.size:
            self._drawn_for = self.size
            self._lines = self._draw(self.size.width, self.size.height)
        return self._lines[y] if 0 <= y < len(self._lines) else Strip.blank(self.size.width)

    def ticks(self, top: float, rows: int) -> dict[int, str]:
        """Axis labels by row: the top, the middle (when it falls on a row edge) and zero."""
        fmt: Callable[[float], str] = percent_tick if self.percent else money_tick
        out = {0: fmt(top), rows - 1: fmt(0)}
        if rows >= 5 and rows % 2 == 0:
            out[rows // 2] = fmt(top / 2)
        return out

    def scale(self) -> float:
        if self.percent:
            return 1.0
        peak = max((b.total for b in self.bars), default=0.0)
        top = peak
        # the limit line is shown when it fits in a scale up to 3x the tallest bar
        if self.limit is not None and (peak <= 0 or self.limit <= 3 * peak):
            top = max(top, self.limit)
        return nice_ceiling(top) if top > 0 else 1.0

    def _draw(self, width: int, height: int) -> list[Strip]:
        rows = max(1, height - 1)
        axis = self.get_component_rich_style("bar-chart--axis", partial=True)
        band = self._blended("bar-chart--cursor")
        label_on = self._blended("bar-chart--cursor-label")
        limit_style = self.get_component_rich_style("bar-chart--limit", partial=True)
        colours = [self.get_component_rich_style(c, partial=True).color for c in SERIES_CLASSES]
        base = self.rich_style
        top = self.scale()
        ticks = self.ticks(top, rows)
        yw = max(len(t) for t in ticks.values()) + 1
        plot_w = max(0, width - yw)
        n = len(self.bars)
        slot = max(self.min_slot, plot_w // n) if n else self.min_slot
        self.window = min(n, max(1, plot_w // slot))
        self._scroll_to_cursor()
        if n and self.first + self.window > n:
            self.first = max(0, n - self.window)
        shown = self.bars[self.first : self.first + self.window]
        count = max(1, len(shown))
        # bars spread over the whole width: equal bars, gaps that differ by at most one column
        slot = max(1, plot_w // count)
        gap = max(1, slot // 4) if slot > 2 else 1
        bw = max(1, min(MAX_BAR, slot - gap))
        xs = [yw + (i * plot_w) // count for i in range(count + 1)]
        bar_x = [xs[i] + max(0, (xs[i + 1] - xs[i] - bw) // 2) for i in range(count)]
        eighths = rows * 8
        limit_row = None
        if self.limit is not None and self.limit <= top:
            limit_row = rows - 1 - min(rows - 1, int(self.limit / top * rows))

        # each shown bar: cumulative heights in eighths, bottom up (a non-zero bar gets at least one)
        stacks: list[list[int]] = []
        for b in shown:
            cum: list[int] = []
            acc = 0.0
            for v in b.values:
                acc += max(0.0, v)
                cum.append(round(acc / top * eighths) if top else 0)
            if cum and acc > 0 and cum[-1] == 0:
                cum[-1] = 1
            stacks.append([min(c, eighths) for c in cum])

        def colour(k: int) -> object:
            return colours[min(k, len(colours) - 1)]

        def cell(cum: list[int], r: int, selected: bool) -> tuple[str, Style]:
            lo = (rows - 1 - r) * 8
            bg = band.bgcolor if selected else None
            k = next((i for i, c in enumerate(cum) if c > lo), None)
            if k is None:
                if r == limit_row:
                    return "╌", limit_style + Style(bgcolor=bg)
                return " ", Style(bgcolor=bg)
            end = cum[k]
            if end >= lo + 8:
                return BLOCKS[8], Style(color=colour(k), bgcolor=bg)  # type: ignore[arg-type]
            upper = next((i for i in range(k + 1, len(cum)) if cum[i] > end), None)
            above = colour(upper) if upper is not None else bg
            return BLOCKS[end - lo], Style(color=colour(k), bgcolor=above)  # type: ignore[arg-type]

        blank = (" ", Style())
        dash = ("╌", limit_style)
        lines: list[Strip] = []
        for r in range(rows):
            row = [dash if r == limit_row else blank] * width
            label = ticks.get(r, "").rjust(yw - 1) + ("┤" if r in ticks else "│")
            for j, c in enumerate(label[:width]):
                row[j] = (c, axis)
            for i, cum in enumerate(stacks):
                selected = self.first + i == self.cursor
                ch = cell(cum, r, selected)
                for x in range(bar_x[i], min(bar_x[i] + bw, width)):
                    row[x] = ch
            lines.append(_strip(row, base))
        lines.append(self._labels(shown, bar_x, width, axis, label_on))
        while len(lines) < height:
            lines.append(Strip.blank(width))
        return lines[:height]

    def _blended(self, name: str) -> Style:
        """A component's style with its (translucent) background mixed onto the widget's own."""
        style = self.get_component_rich_style(name, partial=True)
        background = self.get_component_styles(name).background
        if background.a > 0:
            under = self.background_colors[1]
            style = style + Style(bgcolor=(under + background).rich_color)
        return style

    def _labels(
        self, shown: Sequence[Bar], bar_x: Sequence[int], width: int, axis: Style, on: Style
    ) -> Strip:
        """The x labels: long ones when each fits its bar, else every k-th (ending on the newest
        bar), short ones when even that is too tight; the selected bar's label always, and no
        other label that would touch it."""
        chars = [" "] * width
        styles: list[Style] = [axis] * width
        n = len(shown)
        if not n:
            return Strip([Segment(" " * width, axis)])
        steps = (1, 2, 3, 4, 5, 7, 10, 14, 15, 20, 30, 50, 100, 1000)
        slot = (bar_x[-1] - bar_x[0]) / (n - 1) if n > 1 else width
        yw = bar_x[0]
        longest = max(len(b.label) for b in shown)
        shortest = max(len(b.short) for b in shown)
        step = next(c for c in steps if longest + 1 <= c * slot or c == steps[-1])
        use_long = True
        if step > 7:
            short_step = next(c for c in steps if shortest + 1 <= c * slot or c == steps[-1])
            if short_step < step:
                step, use_long = short_step, False
        last = self.first + n - 1

        def span(i: int, text: str) -> tuple[int, int]:
            x = bar_x[i]
            if x + len(text) > width:  # at the right edge: end the label there
                x = max(yw, width - len(text))
            return x, x + len(text)

        def put(i: int, text: str, style: Style) -> None:
            a, b = span(i, text)
            for j in range(a, min(b, width)):
                chars[j] = text[j - a]
                styles[j] = style

        sel = self.cursor - self.first
        taken = (-1, -1)
        if 0 <= sel < n:
            taken = span(sel, shown[sel].label)
        end = -1
        for i, b in enumerate(shown):
            if i == sel or (last - (self.first + i)) % step:
                continue
            text = b.label if use_long else b.short
            a, z = span(i, text)
            if (z + 1 > taken[0] and a < taken[1] + 1) or a <= end:
                continue
            put(i, text, axis)
            end = z
        if 0 <= sel < n:
            put(sel, shown[sel].label, on)
        return _strip(list(zip(chars, styles, strict=True)), self.rich_style)


def _strip(cells: Sequence[tuple[str, Style]], base: Style) -> Strip:
    """One line from (character, style) cells, neighbours of one style in one segment."""
    segs: list[Segment] = []
    text: list[str] = []
    style: Style | None = None
    for c, st in cells:
        if st is not style and st != style:
            if text:
                segs.append(Segment("".join(text), base + style if style else base))
            text, style = [], st
        text.append(c)
    if text:
        segs.append(Segment("".join(text), base + style if style else base))
    return Strip(segs)
