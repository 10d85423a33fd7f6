"""The selected session: context gauge, totals, per-model table, last turn and a sparkline.

Each widget keeps the few values it draws (read from the store by `Detail` on the UI thread) and
lays them out in `render()` for its current width, so a resize re-flows the text without a
rebuild and a turn only refreshes the widgets whose numbers it changed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import DataTable, Label, Sparkline, Static
from textual.widgets.data_table import RowDoesNotExist

from tokwatch.core.models import Session, Tokens, Turn
from tokwatch.core.store import SessionKey, Store
from tokwatch.core.text import clean
from tokwatch.reports.limits import compact_point
from tokwatch.ui import format as fmt
from tokwatch.ui.road import CompactionRoad

#: Below this many columns the detail pane uses short labels and fewer table columns.
COMPACT_WIDTH = 70
#: The model column never grows past this: on a wide screen the numbers stay next to the names.
MODEL_NAME_MAX = 40


class ContextGauge(Widget):
    """`Context ━━━━━━━━━╺━━┃━━  150k / 200k  75%`, coloured by band; it falls after a compaction.
    `┃` marks where the agent auto-compacts, when its rule is known (`ui/road.py`); an assumed
    window (the log gave none) reads `~272k`."""

    COMPONENT_CLASSES = {
        "gauge--ok",
        "gauge--warn",
        "gauge--high",
        "gauge--rest",
        "gauge--label",
        "gauge--marker",
    }

    def __init__(self, **kw: str) -> None:
        super().__init__(**kw)
        self.used = 0
        self.window = 0
        self.peak = 0
        self.assumed = False
        self.threshold = 0

    def set(self, used: int, window: int, peak: int, assumed: bool = False, threshold: int = 0) -> None:
        new = (used, window, peak, assumed, threshold)
        if new != (self.used, self.window, self.peak, self.assumed, self.threshold):
            self.used, self.window, self.peak, self.assumed, self.threshold = new
            self.refresh()

    @property
    def percent(self) -> float | None:
        return 100.0 * self.used / self.window if self.window else None

    def render(self) -> Text:
        width = self.content_size.width
        pct = self.percent
        band = fmt.level(pct)
        label_style = self.get_component_rich_style("gauge--label")
        mark = fmt.ASSUMED if self.assumed else ""
        numbers = Text.assemble(
            (fmt.tokens(self.used), "bold"),
            " / ",
            fmt.window_text(self.window, self.assumed),
            "  ",
            (fmt.UNKNOWN if pct is None else f"{mark}{pct:.0f}%", "bold"),
        )
        if self.peak > self.used * 1.1 and self.peak:
            numbers.append(f"  peak {fmt.tokens(self.peak)}", style="dim")
        label = Text("Context ", style=label_style)
        bar_width = width - label.cell_len - numbers.cell_len - 2
        if bar_width < 8:
            bar_width = max(0, width - label.cell_len - numbers.cell_len - 1)
            bar_width = bar_width if bar_width >= 4 else 0
        filled = 0 if pct is None else round(bar_width * min(pct, 100.0) / 100.0)
        bar = Text.assemble(
            ("━" * filled, self.get_component_rich_style(f"gauge--{band}")),
            ("━" * (bar_width - filled), self.get_component_rich_style("gauge--rest")),
        )
        if bar_width and self.window and 0 < self.threshold <= self.window:
            at = min(bar_width - 1, round(bar_width * self.threshold / self.window))
            bar = bar[:at] + Text("┃", style=self.get_component_rich_style("gauge--marker")) + bar[at + 1 :]
        return Text.assemble(label, bar, " " if bar_width else "", numbers, no_wrap=True)


@dataclass(frozen=True, slots=True)
class Figure:
    """One labelled number of the totals grid."""

    label: str
    short: str
    value: Text


class Totals(Widget):
    """Session totals as a grid of label/value pairs: as many pairs per line as the width allows."""

    def __init__(self, **kw: str) -> None:
        super().__init__(**kw)
        self.figures: list[Figure] = []
        self.burn = Text()

    def set(self, figures: list[Figure], burn: Text) -> None:
        self.figures = figures
        self.burn = burn
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        compact = width < COMPACT_WIDTH
        labels = [f.short if compact else f.label for f in self.figures]
        if not labels:
            return []
        label_w = max(len(x) for x in labels) + 1
        value_w = max(max(f.value.cell_len for f in self.figures), 5)
        gap = 2 if compact else 3
        # at most 3 pairs a line: the 9 figures then make a tidy 3 x 3 block at any width
        per_line = max(1, min(3, (width + gap) // (label_w + value_w + gap)))
        lines: list[Text] = []
        for start in range(0, len(self.figures), per_line):
            line = Text(no_wrap=True)
            for i, f in enumerate(self.figures[start : start + per_line]):
                if i:
                    line.append(" " * gap)
                line.append(fmt.fit(Text(labels[start + i], style="dim"), label_w))
                line.append_text(fmt.fit(f.value, value_w, "right"))
            lines.append(line)
        lines.append(Text.assemble(("Burn" if compact else "Burn rate", "dim"), "  ", self.burn))
        return lines

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_size.width))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self._lines(width)) or 1


#: Turns that are not one request (`Turn.kind`): what the "Last turn" line calls them.
_KIND_LABEL = {"step": "observed step", "aggregate": "aggregate of several requests"}


class LastTurn(Widget):
    """The newest turn's numbers and how long ago it was (the only part the 1 s clock changes)."""

    def __init__(self, clock: Callable[[], float], **kw: str) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.turn: Turn | None = None
        self.cost = Text()

    def set(self, turn: Turn | None, cost: Text) -> None:
        self.turn = turn
        self.cost = cost
        self.refresh(layout=True)

    def render(self) -> Text:
        t = self.turn
        if t is None:
            return Text("No turns yet", style="dim")
        head = Text.assemble(
            ("Last turn", "bold"),
            "  ",
            (fmt.ago(t.timestamp, self.clock()), "dim"),
            "  ",
            Text(clean(t.model)),
            (" (subagent)", "dim") if t.sidechain and not t.kind else "",
            (f" ({_KIND_LABEL[t.kind]})", "dim") if t.kind else "",
        )
        parts: list[tuple[str, str]] = [
            ("in", fmt.tokens(t.input)),
            ("out", fmt.tokens(t.output)),
            ("cache read", fmt.tokens(t.cache_read)),
            ("cache write", fmt.tokens(t.cache_write)),
        ]
        if t.reasoning:
            parts.append(("reasoning", fmt.tokens(t.reasoning)))
        parts.append(("total", fmt.tokens(t.total)))
        body = Text()
        for i, (label, value) in enumerate(parts):
            if i:
                body.append(" · ", style="dim")
            body.append(label + " ", style="dim")
            body.append(value, style="bold")
        body.append(" · ", style="dim")
        body.append_text(self.cost)
        return Text.assemble(head, "\n", body)


MODEL_COLUMNS_WIDE = (
    ("turns", "Turns", 5),
    ("input", "In", 5),
    ("output", "Out", 5),
    ("cache_read", "C.read", 6),
    ("cache_write", "C.write", 7),
    ("reasoning", "Reason", 6),
    ("cost", "Cost", 8),
)
MODEL_COLUMNS_NARROW = (("turns", "Turns", 5), ("total", "Tokens", 6), ("cost", "Cost", 8))


def model_cells(
    model: str, t: Tokens, columns: tuple[tuple[str, str, int], ...], name_width: int
) -> list[Text]:
    cells = [fmt.fit(Text(clean(model)), name_width)]
    for key, _, width in columns:
        if key == "cost":
            value = fmt.cost(t)
        elif key == "turns":
            value = Text(str(t.turns))
        else:
            value = Text(fmt.tokens(getattr(t, key)))
        cells.append(fmt.fit(value, width, "right"))
    return cells


class ModelTable(DataTable[Text]):
    """Per-model totals of the selected session; rows keyed by model, updated cell by cell."""

    def __init__(self, **kw: str) -> None:
        super().__init__(cursor_type="none", show_cursor=False, zebra_stripes=True, **kw)
        self.can_focus = False
        self.columns_spec = MODEL_COLUMNS_WIDE
        self.name_width = 20
        self.layout_width = 0
        self._models: dict[str, Tokens] = {}

    def relayout(self, width: int) -> None:
        """Pick the column set for this width (rare: on resize) and rebuild the few rows."""
        if width == self.layout_width or width <= 0:
            return
        self.layout_width = width
        spec = MODEL_COLUMNS_WIDE if width >= COMPACT_WIDTH else MODEL_COLUMNS_NARROW
        pad = 2 * self.cell_padding
        self.columns_spec = spec
        self.name_width = max(8, min(MODEL_NAME_MAX, width - sum(w + pad for _, _, w in spec) - pad))
        self.clear(columns=True)
        self.add_column("Model", key="model", width=self.name_width)
        for key, label, w in spec:
            self.add_column(Text(label, justify="right"), key=key, width=w)
        models, self._models = self._models, {}
        self.show(models)

    def show(self, by_model: dict[str, Tokens]) -> None:
        """Another session: replace the rows (a handful of models)."""
        self.clear()
        self._models = {}
        self.update_models(by_model)

    def update_models(self, by_model: dict[str, Tokens]) -> None:
        """The same session changed: update rows in place, add new models, drop vanished ones."""
        if not self.layout_width:
            self._models = {m: copy.copy(t) for m, t in by_model.items()}
            return
        for model in list(self._models):
            if model not in by_model:
                del self._models[model]
                with contextlib.suppress(RowDoesNotExist):
                    self.remove_row(model)
        for model in sorted(by_model):
            t = by_model[model]
            if model in self._models:
                if self._models[model] == t:
                    continue
                cells = model_cells(model, t, self.columns_spec, self.name_width)
                for (key, _, _), cell in zip(self.columns_spec, cells[1:], strict=True):
                    self.update_cell(model, key, cell)
            else:
                self.add_row(*model_cells(model, t, self.columns_spec, self.name_width), key=model)
            self._models[model] = copy.copy(t)  # detached: the store keeps mutating its own

    def on_resize(self) -> None:
        self.relayout(self.size.width)

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """Grow or shrink with the rows (`height: auto`).

        DataTable sets its virtual size while handling Idle, and the layout request this makes is
        only acted on at the next Idle, which may never come on a quiet screen: post one.
        """
        if old.height != new.height:
            self.call_next(self.refresh, layout=True)


def _bold(text: Text) -> Text:
    text.stylize("bold")
    return text


class Detail(VerticalScroll):
    """The main pane: reads the selected session from the store and hands each widget its numbers."""

    def __init__(self, store: Store, clock: Callable[[], float], **kw: str) -> None:
        super().__init__(**kw)
        self.can_focus = False
        self.store = store
        self.clock = clock
        self.key: SessionKey | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Waiting for sessions…"), id="empty")
        yield ContextGauge(id="gauge")
        yield CompactionRoad(self.store.ledger, id="road")
        yield Totals(id="totals")
        yield ModelTable(id="models")
        yield LastTurn(self.clock, id="last-turn")
        with Horizontal(id="spark-row"):
            yield Label("Tokens/turn", id="spark-label")
            yield Sparkline([], summary_function=max, id="spark")

    def show(self, key: SessionKey | None) -> None:
        """Switch to another session (or to the empty state)."""
        self.key = key
        self.set_class(key is None, "-empty")
        if key is None:
            return
        with self.store.lock:
            s = self.store.sessions.get(key)
            if s is None:
                return
            self.query_one(ModelTable).show(s.by_model)
            self._fill(s)
        self.scroll_home(animate=False)

    def update_session(self) -> None:
        """The selected session got turns: refresh numbers in place."""
        if self.key is None:
            return
        with self.store.lock:
            s = self.store.sessions.get(self.key)
            if s is None:
                return
            self.query_one(ModelTable).update_models(s.by_model)
            self._fill(s)

    def set_empty_text(self, text: Text) -> None:
        self.query_one("#empty", Static).update(text)

    def _fill(self, s: Session) -> None:
        self.query_one(ContextGauge).set(
            s.context_used,
            s.context_window,
            s.max_context,
            s.context_window_assumed,
            compact_point(s)[0] or 0,
        )
        self.query_one(CompactionRoad).update_session(s)
        t = s.totals
        b = fmt.burn(s)
        figures = [
            Figure("Input", "in", Text(fmt.tokens(t.input))),
            Figure("Output", "out", Text(fmt.tokens(t.output))),
            Figure("Total", "total", Text(fmt.tokens(t.total), style="bold")),
            Figure("Cache read", "c.read", Text(fmt.tokens(t.cache_read))),
            Figure("Cache write", "c.write", Text(fmt.tokens(t.cache_write))),
            Figure("Turns", "turns", Text(str(t.turns))),
            Figure("Reasoning", "reason", Text(fmt.tokens(t.reasoning))),
            Figure("Cost", "cost", _bold(fmt.cost(t))),
            Figure("Duration", "time", Text(fmt.duration(s.last_seen - s.first_seen))),
        ]
        if b.tokens_per_min is None:
            burn = Text(f"{fmt.DASH} (needs 2 turns within {fmt.BURN_MAX_GAP / 60:.0f} min)", style="dim")
        else:
            burn = Text.assemble(
                (f"{fmt.tokens(round(b.tokens_per_min))} {fmt.TOKENS_UNIT}/min", "bold"),
                " · ",
                b.cost_per_hour or "",
                "/h",
                (f"  last {b.turns} turns", "dim"),
            )
        self.query_one(Totals).set(figures, burn)
        last = s.last_turn
        self.query_one(LastTurn).set(last, fmt.cost_pico([s.last_cost]) if last is not None else Text())
        spark = self.query_one(Sparkline)
        spark.data = list(s.recent)
        spark.styles.max_width = max(1, len(s.recent))  # one bar per turn, never smeared

    def tick(self) -> None:
        """The 1 s clock: only the last turn's 'x ago' depends on it."""
        if self.key is not None:
            self.query_one(LastTurn).refresh()
