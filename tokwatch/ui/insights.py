"""The insights view (`i`): cost over time, projects, models, cache efficiency and top sessions.

A screen of its own, installed once and pushed over the dashboard, so its range, tab, sort order
and cursor are there again the next time. Every number comes from `reports.insights.compute`: SQL
on the ledger, run on a thread worker through the ledger's read connections (a query runs
beside the engine's writes), posted back as an immutable `Insights`. One run at a time;
requests made while one runs (a batch of turns, a key) are coalesced into one more run. Live: the
app tells the screen when a batch is recorded, and the screen counts again while it is shown, so
today's bar grows as turns arrive; a new local day is noticed by the clock.

The screen never changes the store or the ledger. Enter on a project or a session posts `Drill`,
and the app shows that project's sessions (or that session) on the dashboard; Esc there comes
back here.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from tokwatch.config import Config
from tokwatch.core.models import Tokens
from tokwatch.core.store import SessionKey, Store
from tokwatch.reports import insights as ins
from tokwatch.reports import report
from tokwatch.reports.insights import Insights, Period, Query, Saving
from tokwatch.ui import format as fmt
from tokwatch.ui.chart import SERIES_CLASSES, Bar, BarChart
from tokwatch.ui.footer import KeyFooter

#: the tabs after the first are mounted this long after the view first shows (seconds)
FILL_AFTER = 0.3
TABS = ("cost", "projects", "models", "cache", "sessions")
TAB_TITLES = {
    "cost": "Cost",
    "projects": "Projects",
    "models": "Models",
    "cache": "Cache",
    "sessions": "Sessions",
}
#: Below this width the view is compact (fewer columns, shorter labels, fewer bars).
NARROW_BELOW = 90
#: From this width the tables show every token kind.
FULL_FROM = 120
#: From this width the cost and cache tabs add a side panel.
SIDE_FROM = 150
SERIES_MARK = "■"
#: Between the two ends of a span of days.
TO = f" {fmt.DASH} "


# ---------------------------------------------------------------------- text helpers
def usd_pico(pico: int) -> str:
    v = pico / 1e12
    if v < 0:
        return "-" + fmt.usd(-v)
    return fmt.usd(v)


def priced_part(r: ins.ModelRow, pico: int) -> str:
    """One part of a model's savings: unknown when none of its turns has a rate card."""
    return usd_pico(pico) if r.saving.unknown_turns < r.tokens.turns else "unknown"


def saving_text(s: Saving) -> Text:
    """Net dollars saved, a lower bound (`≥…*`) when some turns had no rate card."""
    if s.unknown_turns and not (s.read_saved or s.write_premium):
        return Text("unknown", style="italic")
    t = Text(usd_pico(s.net))
    if s.unknown_turns:
        t = Text(f"≥{t.plain}*", style="italic")
    return t


def turns(n: int) -> str:
    return f"{n:,} turn" + ("" if n == 1 else "s")


def short_ago(ts: float, now: float) -> str:
    """`5m ago`, `13h ago`, `2d ago`: the narrow screen's last activity."""
    if not ts:
        return "never"
    s = max(0.0, now - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return "now"


def percent(v: float | None) -> str:
    return fmt.DASH if v is None else f"{v * 100:.0f}%"


def per_1k_output(t: Tokens) -> Text:
    """Cost per 1,000 output tokens (the whole request's cost: what a unit of work costs)."""
    if not t.output or t.unpriced_turns >= t.turns:
        return Text(fmt.DASH if not t.output else "unknown", style="italic" if t.output else "")
    v = t.known_cost_usd * 1000 / t.output
    text = f"${v:.3f}" if v < 10 else f"${v:,.2f}"
    return Text(f"≥{text}*", style="italic") if t.unpriced_turns else Text(text)


def project_labels(paths: Sequence[str]) -> dict[str, str]:
    """Each project's last folder, or as many trailing folders as tell it apart from the others."""
    out: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for p in paths:
        names.setdefault(fmt.project_name(p), []).append(p)
    for name, group in names.items():
        if len(group) == 1:
            out[group[0]] = name
            continue
        for p in group:
            parts = [x for x in p.replace("\\", "/").split("/") if x]
            label = name
            for k in range(2, len(parts) + 1):
                label = "/".join(parts[-k:])
                if sum(1 for q in group if q.replace("\\", "/").rstrip("/").endswith("/" + label)) <= 1:
                    break
            out[p] = label
    return out


def bucket_labels(p: Period, bucket: str) -> tuple[str, str, str]:
    """(long axis label, short axis label, the readout's title) of a period."""
    s = p.start
    if bucket == "week":
        return (
            f"{s:%b} {s.day}",
            f"{s.day}",
            f"Week {p.key} · {s:%a %b} {s.day}{TO}{p.end:%a %b} {p.end.day}, {p.end.year}",
        )
    if bucket == "month":
        return s.strftime("%b"), s.strftime("%b")[0], s.strftime("%B %Y")
    return f"{s:%b} {s.day}", f"{s.day}", f"{s:%a %b} {s.day}, {s.year}"


# ---------------------------------------------------------------------- tables
@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    cell: Callable[[Any], Text | str]
    sort: Callable[[Any], Any]
    right: bool = True
    width: int | None = None


class SortTable(DataTable[Text]):
    """A table sorted by one column at a time: ←/→ pick the column, `o` flips the order."""

    BINDINGS = [
        Binding("left", "sort_column(-1)", "Sort ←", id="table.sort_prev", show=False),
        Binding("right", "sort_column(1)", "Sort →", id="table.sort_next", show=False),
        Binding("o", "sort_reverse", "Order", id="table.sort_reverse"),
    ]

    class Activated(Message):
        """Enter on a row: its item."""

        def __init__(self, table: SortTable, item: object) -> None:
            super().__init__()
            self.table = table
            self.item = item

        @property
        def control(self) -> SortTable:
            return self.table

    def __init__(self, *, default_sort: str, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.columns_spec: list[Column] = []
        self.items: list[Any] = []
        self.sort_key = default_sort
        self.descending = True
        self._shown: list[Any] = []
        self._key_of: Callable[[Any], str] = repr

    def show(self, columns: list[Column], items: Sequence[Any], key: Callable[[Any], str]) -> None:
        """New rows (or columns): rebuilt in the current order, the cursor kept on its item."""
        self.columns_spec = columns
        self.items = list(items)
        self._key_of = key
        if self.sort_key not in {c.key for c in columns}:
            self.sort_key = next((c.key for c in columns if c.key == "cost"), columns[0].key)
        self._rebuild()

    def _rebuild(self) -> None:
        cur = (
            self._shown[self.cursor_row] if self._shown and 0 <= self.cursor_row < len(self._shown) else None
        )
        cur_key = self._key_of(cur) if cur is not None else None
        col = next(c for c in self.columns_spec if c.key == self.sort_key)
        try:
            self._shown = sorted(self.items, key=col.sort, reverse=self.descending)
        except TypeError:
            self._shown = list(self.items)
        self.clear(columns=True)
        for c in self.columns_spec:
            mark = (" ▼" if self.descending else " ▲") if c.key == self.sort_key else ""
            label = Text(c.label + mark, justify="right" if c.right else "left")
            self.add_column(label, key=c.key, width=c.width)
        for item in self._shown:
            cells = []
            for c in self.columns_spec:
                v = c.cell(item)
                t = v if isinstance(v, Text) else Text(v)
                t.justify = "right" if c.right else "left"
                t.no_wrap = True
                t.overflow = "ellipsis"
                cells.append(t)
            self.add_row(*cells, key=self._key_of(item))
        if cur_key is not None:
            with contextlib.suppress(Exception):
                self.move_cursor(row=self.get_row_index(cur_key), animate=False)

    def action_sort_column(self, step: int) -> None:
        keys = [c.key for c in self.columns_spec]
        if not keys:
            return
        i = keys.index(self.sort_key) if self.sort_key in keys else 0
        self.sort_key = keys[(i + step) % len(keys)]
        # text columns read best A to Z, numbers largest first
        col = self.columns_spec[(i + step) % len(keys)]
        self.descending = col.right
        self._rebuild()

    def action_sort_reverse(self) -> None:
        self.descending = not self.descending
        self._rebuild()

    @property
    def current(self) -> Any | None:
        if not self._shown or not (0 <= self.cursor_row < len(self._shown)):
            return None
        return self._shown[self.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        item = self.current
        if item is not None:
            self.post_message(self.Activated(self, item))


# ---------------------------------------------------------------------- messages
class InsightsComputed(Message):
    """The worker's result (immutable), with the request it answers."""

    def __init__(self, data: Insights, token: int) -> None:
        super().__init__()
        self.data = data
        self.token = token


class Drill(Message):
    """Show a project's sessions (or one session) on the dashboard; Esc there comes back."""

    def __init__(self, project: str | None = None, session: SessionKey | None = None) -> None:
        super().__init__()
        self.project = project
        self.session = session


# ---------------------------------------------------------------------- the screen
class InsightsScreen(Screen[None]):
    """History at a glance, live; every figure a SQL sum on the ledger (see the module doc)."""

    #: the header's title here (the dashboard's names the selected session)
    TITLE = "tokwatch · insights"
    BINDINGS = [
        Binding("escape,i", "close", "Dashboard", id="insights.close", key_display="esc"),
        Binding("r", "range", "Range", id="insights.range"),
        Binding("b", "bucket", "Bucket", id="insights.bucket"),
        Binding("s", "split", "Split", id="insights.split"),
        Binding("tab", "tab(1)", "Next tab", id="insights.next_tab", show=False),
        Binding("shift+tab", "tab(-1)", "Previous tab", id="insights.prev_tab", show=False),
        *(
            Binding(str(i + 1), f"show_tab('{t}')", TAB_TITLES[t], id=f"insights.tab_{t}", show=False)
            for i, t in enumerate(TABS)
        ),
    ]
    #: re-counting after a batch waits at least this long after the previous count began (s)
    MIN_INTERVAL = 0.25

    def __init__(
        self,
        store: Store,
        *,
        config: Config,
        clock: Callable[[], float],
        tz: tzinfo | None,
        query: Query | None = None,
    ) -> None:
        super().__init__(id="insights")
        self.store = store
        self.config = config
        self.clock = clock
        self.tz = tz
        self.spec = query or Query()
        self.data: Insights | None = None
        #: keeps the days before today between counts: a count after a batch queries today only
        self.counter = ins.Counter()
        self._count_lock = threading.Lock()
        self._token = 0
        self._busy = False
        self._pending = False
        self._failed = False
        self._started_at = -math.inf
        self._labels: dict[str, str] = {}
        self._shown_before = False
        self._filled = self._filling = False  # the tabs after the first (`_fill_hidden_tabs`)
        self._styled_for = -1  # the app's CSS generation this screen's styles were computed for
        #: (compact, full, side): below 90 columns, from 120, from 150 (see `_relayout`)
        self._mode: tuple[bool, bool, bool] | None = None
        self.compact = self.full = self.side = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header(icon="◔")
        yield Static(id="ins-head")
        with TabbedContent(initial="cost", id="ins-tabs"):
            with TabPane(TAB_TITLES["cost"], id="cost"), Horizontal(classes="ins-row"):
                with Vertical(classes="ins-main"):
                    yield BarChart(id="cost-chart")
                    yield Static(id="cost-read", classes="ins-read")
                yield Static(id="cost-side", classes="ins-side")
            for tab in TABS[1:]:  # filled once the first tab shows (`_fill_hidden_tabs`)
                yield TabPane(TAB_TITLES[tab], id=tab)
        yield KeyFooter()

    @staticmethod
    def _hidden_tab_widgets() -> dict[str, list[Widget]]:
        return {
            "projects": [SortTable(default_sort="cost", id="projects-table")],
            "models": [SortTable(default_sort="cost", id="models-table")],
            "cache": [
                Horizontal(
                    Vertical(
                        BarChart(percent=True, id="cache-chart"),
                        Static(id="cache-read", classes="ins-read"),
                        classes="ins-main",
                    ),
                    Static(id="cache-side", classes="ins-side"),
                    classes="ins-row",
                ),
                SortTable(default_sort="saved", id="cache-table"),
            ],
            "sessions": [SortTable(default_sort="cost", id="sessions-table")],
        }

    def _fill_soon(self) -> None:
        """Fill the hidden tabs a moment after the first paint: mounting them takes a few hundred
        ms of the UI thread, which must not hold back the footer's keys (built after a refresh)."""
        self.set_timer(FILL_AFTER, self._fill_hidden_tabs, name="insights-fill")

    async def _fill_hidden_tabs(self) -> None:
        """Mount the tabs not shown at first: after the first count is on screen (or at once when
        one is chosen), so the first open styles and lays out only what it shows."""
        if self._filled or self._filling:
            return
        self._filling = True
        for tab, widgets in self._hidden_tab_widgets().items():
            await self.query_one(f"#{tab}", TabPane).mount_all(widgets)
        self._filled = True
        self._mode = None  # the new chart and side panel take the layout, and the count is shown
        self._relayout(self.size.width)
        self._focus_tab()

    def count_ahead(self) -> None:
        """Count before the view is first opened (the app asks once history is read), so the first
        open draws numbers at once instead of "counting…"; the open counts again all the same."""
        if self.is_attached:
            return
        app = self.app
        app.run_worker(
            lambda: app.call_from_thread(self._counted_ahead, self._compute(self.spec, self._today())),
            thread=True,
            group="insights-ahead",
            name="insights-ahead",
            exit_on_error=False,
        )

    def _counted_ahead(self, data: Insights) -> None:
        if not self.is_attached and data.query == self.spec:
            self.data = data

    def on_mount(self) -> None:
        self.request_refresh(now=True)  # first: the count runs while the screen is laid out
        self._styled_for = self.app._css_update_count
        if self.data is not None:
            if self.data.today != self._today():
                self.data = None  # (counted ahead on another day)
            else:
                self._fill_soon()
        self._relayout(self.size.width)
        self._draw_head()
        self.set_interval(1.0, self._tick, name="insights-clock")

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles a resumed screen from scratch (a third of a second here, and on the
        # first open right after the mount styled it): only needed when the app's CSS changed
        # (a theme) since this screen was styled. (Runs before Screen's own handler.)
        generation = self.app._css_update_count
        if generation == self._styled_for:
            event.refresh_styles = False
        self._styled_for = generation
        self._relayout(self.size.width)
        self._focus_tab()
        # the footer was made while the dashboard was still the screen: ask again which app keys
        # apply here (after the first paint, so the view shows first)
        self.call_after_refresh(self.app.refresh_bindings)
        if self._shown_before:
            self.request_refresh(now=True)
        self._shown_before = True

    def on_resize(self) -> None:
        self._relayout(self.size.width)

    def _relayout(self, width: int) -> None:
        """The layout for this width: attributes and two widgets' `display`, not screen classes
        (a class on the screen restyles every widget in it: a tenth of a second, on each open)."""
        mode = (width < NARROW_BELOW, width >= FULL_FROM, width >= SIDE_FROM)
        if mode == self._mode:
            return
        self._mode = mode
        self.compact, self.full, self.side = mode
        for chart in self.query(BarChart):
            chart.min_slot = 3 if self.compact else 2
        for panel in self.query(".ins-side"):
            panel.display = self.side
        for footer in self.query(KeyFooter):  # as the dashboard's: every key fits in 60 columns
            footer.compact = self.compact
            footer.show_command_palette = not self.compact  # (ctrl+p still works)
        if self.data is not None:
            self._show(self.data)

    # ------------------------------------------------------------------ counting
    def data_changed(self, oldest: float | None = None) -> None:
        """The app recorded a batch whose oldest turn is at `oldest` (None: unknown, e.g. history
        was read): count again if shown (coalesced, rate-limited). Only a turn before today makes
        the kept days before today stale."""
        if oldest is None or oldest < report.local_midnight(self._today(), self.tz):
            self.counter.invalidate()
        if self.is_current:
            self.request_refresh()

    def request_refresh(self, now: bool = False) -> None:
        self._token += 1
        if self._busy:
            self._pending = True
            return
        wait = self._started_at + self.MIN_INTERVAL - self._monotonic()
        if wait > 0 and not now:
            self._pending = True
            self._busy = True  # (a timer stands in for the run until it fires)
            self.set_timer(wait, self._start_pending)
            return
        self._start()

    def _start_pending(self) -> None:
        self._busy = False
        self._pending = False
        self._start()

    def _start(self) -> None:
        self._busy, self._pending = True, False
        self._started_at = self._monotonic()
        self._count(self.spec, self._today(), self._token)

    @staticmethod
    def _monotonic() -> float:
        import time

        return time.monotonic()

    def _compute(self, q: Query, today: date) -> Insights:
        """The two queries and the arithmetic (a worker thread; one count at a time: the counter
        keeps the days before today between counts)."""
        with self._count_lock:
            with self.store.lock:
                models = {(s.agent, m) for s in self.store.sessions.values() for m in s.by_model}
            base = report.Filters(tz=self.tz).scope(self.store)
            return self.counter.count(
                self.store.ledger, base, q, today, self.tz, self.store.pricer.card, models
            )

    @work(thread=True, exit_on_error=False, group="insights", name="insights")
    def _count(self, q: Query, today: date, token: int) -> None:
        """On a worker thread: count; post the immutable result."""
        data = self._compute(q, today)
        if not get_current_worker().is_cancelled:
            self.post_message(InsightsComputed(data, token))

    def on_insights_computed(self, message: InsightsComputed) -> None:
        self._busy = False
        stale = message.data.query != self.spec
        if not stale:
            self._failed = False
            self.data = message.data
            self._show(message.data)
            if not self._filled:
                self._fill_soon()
        if self._pending or stale:
            self._pending = False
            self.request_refresh(now=stale)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "insights" or event.state not in (WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._busy = False
        if event.state is WorkerState.ERROR and not self._failed:
            self._failed = True  # said once; the next batch or key tries again
            self.notify(f"Counting the insights failed: {event.worker.error}", severity="error", markup=False)

    def _tick(self) -> None:
        """A new local day starts a new bar (and moves the range)."""
        d = self.data
        if self.is_current and d is not None and not self._busy and self._today() != d.today:
            self.request_refresh(now=True)

    def _today(self) -> date:
        return report.local_date(self.clock(), self.tz)

    # ------------------------------------------------------------------ keys
    def action_close(self) -> None:
        self.app.pop_screen()

    def _change(self, **kw: Any) -> None:
        from dataclasses import replace

        self.spec = replace(self.spec, **kw)
        self._draw_head()
        self.request_refresh(now=True)

    def action_range(self) -> None:
        r = ins.RANGES
        self._change(days=r[(r.index(self.spec.days) + 1) % len(r)] if self.spec.days in r else r[1])

    def action_bucket(self) -> None:
        b = ins.BUCKETS
        self._change(bucket=b[(b.index(self.spec.bucket) + 1) % len(b)])

    def action_split(self) -> None:
        s = ins.SPLITS
        self._change(split=s[(s.index(self.spec.split) + 1) % len(s)])

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab()

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        i = TABS.index(tabs.active) if tabs.active in TABS else 0
        self.action_show_tab(TABS[(i + step) % len(TABS)])

    @on(TabbedContent.TabActivated)
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id != TABS[0]:  # (another tab chosen before they were filled: fill now)
            await self._fill_hidden_tabs()
        self.call_after_refresh(self._focus_tab)

    def _focus_tab(self) -> None:
        if not self._filled:
            with contextlib.suppress(NoMatches):
                self.set_focus(self.query_one("#cost-chart"))
            return
        tab = self.query_one(TabbedContent).active
        target = {
            "cost": "#cost-chart",
            "projects": "#projects-table",
            "models": "#models-table",
            "cache": "#cache-chart",
            "sessions": "#sessions-table",
        }.get(tab)
        if target:
            self.set_focus(self.query_one(target))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`b` and `s` change the charts: shown (and live) on the tabs that have one."""
        if action in ("bucket", "split"):
            try:
                tab = self.query_one(TabbedContent).active
            except Exception:
                return True
            if action == "split":
                return tab == "cost"
            return tab in ("cost", "cache")
        return True

    @on(SortTable.Activated, "#projects-table")
    def _project_chosen(self, event: SortTable.Activated) -> None:
        self.post_message(Drill(project=event.item.project))

    @on(SortTable.Activated, "#sessions-table")
    def _session_chosen(self, event: SortTable.Activated) -> None:
        self.post_message(Drill(session=event.item.key))

    @on(BarChart.CursorMoved)
    def _cursor_moved(self, event: BarChart.CursorMoved) -> None:
        if self.data is None:
            return
        if event.chart.id == "cost-chart":
            self._draw_cost_read(self.data)
        elif event.chart.id == "cache-chart":
            self._draw_cache_read(self.data)

    # ------------------------------------------------------------------ drawing
    def _range_text(self) -> str:
        q = self.spec
        if self.data is not None and self.data.query == q:
            d = self.data
            span = f"{d.start:%b %d}{TO}{d.today:%b %d, %Y}"
        else:
            span = "counting…"
        if self.compact:
            return f"{q.days}d · by {q.bucket} · {span}"
        return f"Last {q.days} days · by {q.bucket} · split by {q.split} · {span}"

    def _draw_head(self) -> None:
        head = Text(self._range_text(), style="bold", no_wrap=True, overflow="ellipsis")
        d = self.data
        if d is not None and d.query == self.spec:
            t = d.totals
            head.append("   ")
            head.append_text(fmt.cost(t))
            head.append(f" · {fmt.tokens(t.total)} tok · {turns(t.turns)}", style="dim")
            if not self.compact:
                head.append(f" · {d.session_count:,} sessions", style="dim")
        self.query_one("#ins-head", Static).update(head)

    def _limit(self, bucket: str) -> float | None:
        daily = self.config.budgets.daily
        if daily is None or daily.usd is None:
            return None
        if bucket == "day":
            return daily.usd
        if bucket == "week":
            return daily.usd * 7
        return None

    def _show(self, d: Insights) -> None:
        """Put a result on screen (the UI thread; only widgets, never the store)."""
        self._draw_head()
        cost_bars, cache_bars = [], []
        for p in d.periods:
            long, short, _ = bucket_labels(p, d.query.bucket)
            cost_bars.append(Bar(p.key, long, short, tuple(t.known_cost_usd for t in p.series) or (0.0,)))
            rate = ins.hit_rate(p.tokens)
            # a period with prompts but no cache hit at all still gets a sliver: not "no data"
            cache_bars.append(Bar(p.key, long, short, (rate or (1e-9 if rate is not None else 0.0),)))
        self.query_one("#cost-chart", BarChart).set_data(cost_bars, self._limit(d.query.bucket))
        self._draw_cost_read(d)
        if not self._filled:
            return
        self.query_one("#cache-chart", BarChart).set_data(cache_bars)
        self._draw_cache_read(d)
        self._labels = project_labels([p.project for p in d.projects])
        self._fill_projects(d)
        self._fill_models(d)
        self._fill_cache_models(d)
        self._fill_sessions(d)

    def _period(self, d: Insights, chart_id: str) -> Period | None:
        bar = self.query_one(chart_id, BarChart).selected
        if bar is None:
            return None
        return next((p for p in d.periods if p.key == bar.key), None)

    def _series_line(self, d: Insights, values: Sequence[Tokens], *, width_hint: int) -> Text:
        out = Text(no_wrap=False)
        chart = self.query_one("#cost-chart", BarChart)
        for i, (name, t) in enumerate(zip(d.series, values, strict=False)):
            style = chart.get_component_rich_style(
                SERIES_CLASSES[min(i, len(SERIES_CLASSES) - 1)], partial=True
            )
            if out:
                out.append("  ")
            out.append(SERIES_MARK + " ", style=style)
            label = name if len(name) <= width_hint else name[: width_hint - 1] + "…"
            if t.turns:
                out.append(label + " ")
                out.append_text(fmt.cost(t))
            else:  # (the legend still names it: nothing of it in this period)
                out.append(f"{label} {fmt.DASH}", style="dim")
        return out

    def _draw_cost_read(self, d: Insights) -> None:
        p = self._period(d, "#cost-chart")
        read = self.query_one("#cost-read", Static)
        side = self.query_one("#cost-side", Static)
        if p is None:
            read.update(Text("No usage in this range.", style="dim"))
            side.update("")
            return
        _, _, title = bucket_labels(p, d.query.bucket)
        if p.end == d.today:
            title += " (so far)"
        t = p.tokens
        line = Text.assemble(
            (title, "bold"), "  ", fmt.cost(t), (f" · {fmt.tokens(t.total)} tok · {turns(t.turns)}", "dim")
        )
        limit = self._limit(d.query.bucket)
        if limit:
            share = t.known_cost_usd / limit * 100
            line.append(
                f" · budget {fmt.usd(limit)}: {'≥' if t.unpriced_turns else ''}{share:.0f}%", style="dim"
            )
            if self.config.budgets.agents:
                line.append(f" (budget counts {', '.join(self.config.budgets.agents)})", style="dim")
        elif self.config.budgets.daily is not None:
            daily = self.config.budgets.daily
            what = fmt.usd(daily.usd) if daily.usd is not None else f"{fmt.tokens(daily.tokens or 0)} tokens"
            line.append(f" · daily budget {what} (line on day and week bars in dollars)", style="dim")
        legend = self._series_line(d, p.series, width_hint=14 if self.compact else 40)
        read.update(Text.assemble(line, "\n", legend))
        side.update(self._side_cost(d, p))

    def _side_cost(self, d: Insights, p: Period) -> Text:
        """The wide screen's panel: the selected period by series, and the range's totals."""
        chart = self.query_one("#cost-chart", BarChart)
        _, _, title = bucket_labels(p, d.query.bucket)
        out = Text.assemble((title, "bold"), "\n")
        for i, (name, t) in enumerate(zip(d.series, p.series, strict=False)):
            if not t.turns:
                continue
            style = chart.get_component_rich_style(
                SERIES_CLASSES[min(i, len(SERIES_CLASSES) - 1)], partial=True
            )
            out.append(SERIES_MARK + " ", style=style)
            out.append_text(fmt.fit(Text(name), 18))
            out.append_text(fmt.fit(fmt.cost(t), 10, "right"))
            out.append(f" {fmt.tokens(t.total):>6} tok\n", style="dim")
        out.append("\n")
        out.append("Range", style="bold")
        out.append(f"  {d.start:%b %d}{TO}{d.today:%b %d}\n", style="dim")
        days = (d.today - d.start).days + 1
        out.append_text(Text.assemble("Total     ", fmt.cost(d.totals), "\n"))
        avg = Tokens(
            turns=d.totals.turns, cost_pico=d.totals.cost_pico // days, unpriced_turns=d.totals.unpriced_turns
        )
        out.append_text(Text.assemble("Per day   ", fmt.cost(avg), "\n"))
        out.append(f"Tokens    {fmt.tokens(d.totals.total)}\nTurns     {d.totals.turns:,}\n")
        out.append(f"Sessions  {d.session_count:,}\n")
        return out

    def _draw_cache_read(self, d: Insights) -> None:
        read = self.query_one("#cache-read", Static)
        side = self.query_one("#cache-side", Static)
        total = Text.assemble(
            ("Range", "bold"),
            f"  {percent(ins.hit_rate(d.totals))} of {fmt.tokens(ins.prompt(d.totals))} prompt tokens from cache · saved ",
            saving_text(d.saving),
        )
        p = self._period(d, "#cache-chart")
        if p is None:
            read.update(Text.assemble(total, "\n", Text("No usage in this range.", style="dim")))
            side.update("")
            return
        _, _, title = bucket_labels(p, d.query.bucket)
        sel = Text.assemble(
            (title, "bold"),
            f"  {percent(ins.hit_rate(p.tokens))} of {fmt.tokens(p.prompt)} from cache · saved ",
            saving_text(p.saving),
        )
        read.update(Text.assemble(sel, "\n", total))
        side.update(self._side_cache(d, p))

    def _side_cache(self, d: Insights, p: Period) -> Text:
        _, _, title = bucket_labels(p, d.query.bucket)
        s = p.saving
        t = p.tokens
        rows = [
            ("Prompt", fmt.tokens(ins.prompt(t))),
            ("Cache read", fmt.tokens(t.cache_read)),
            ("Cache write", fmt.tokens(t.cache_write)),
            ("Uncached", fmt.tokens(t.input)),
            ("Hit rate", percent(ins.hit_rate(t))),
            ("Reads saved", usd_pico(s.read_saved)),
            ("Write premium", usd_pico(s.write_premium)),
        ]
        out = Text.assemble((title, "bold"), "\n")
        for k, v in rows:
            out.append(f"{k:<14}{v:>10}\n")
        out.append_text(Text.assemble(f"{'Net saved':<14}", fmt.fit(saving_text(s), 10, "right"), "\n"))
        if s.unknown_turns:
            out.append(
                f"\n{s.unknown_turns:,} turns of models without a price are not counted.\n", style="dim"
            )
        return out

    # ------------------------------------------------------------------ tables
    def _usage_columns(self) -> list[Column]:
        """Tokens, cost and last activity: the last columns of the projects and sessions tables."""
        now = self.clock()
        ago = short_ago if self.compact else fmt.ago
        return [
            Column("tokens", "Tokens", lambda r: fmt.tokens(r.tokens.total), lambda r: r.tokens.total),
            Column(
                "cost", "Cost", lambda r: fmt.cost(r.tokens), lambda r: (r.tokens.cost_pico, r.tokens.total)
            ),
            Column(
                "last",
                "Last" if self.compact else "Last active",
                lambda r: ago(r.last, now),
                lambda r: r.last,
            ),
        ]

    def _fill_projects(self, d: Insights) -> None:
        full = self.side
        labels = self._labels

        def name(r: ins.ProjectRow) -> Text:
            return Text(r.project if full else labels.get(r.project, r.project) or fmt.DASH)

        cols = [
            Column(
                "project",
                "Project",
                name,
                lambda r: labels.get(r.project, r.project).casefold(),
                right=False,
                width=16 if self.compact else None,
            ),
            Column(
                "sessions",
                "Sess" if self.compact else "Sessions",
                lambda r: f"{r.sessions:,}",
                lambda r: r.sessions,
            ),
            Column("turns", "Turns", lambda r: f"{r.tokens.turns:,}", lambda r: r.tokens.turns),
            *self._usage_columns(),
        ]
        self.query_one("#projects-table", SortTable).show(cols, d.projects, lambda r: r.project)

    def _fill_models(self, d: Insights) -> None:
        full = self.full
        cols = []
        if not self.compact:
            cols.append(Column("agent", "Agent", lambda r: r.agent, lambda r: r.agent, right=False))
        cols += [
            Column("model", "Model", lambda r: Text(r.model), lambda r: r.model.casefold(), right=False),
            Column("turns", "Turns", lambda r: f"{r.tokens.turns:,}", lambda r: r.tokens.turns),
        ]
        if full:
            cols += [
                Column("input", "Input", lambda r: fmt.tokens(r.tokens.input), lambda r: r.tokens.input),
                Column("output", "Output", lambda r: fmt.tokens(r.tokens.output), lambda r: r.tokens.output),
                Column(
                    "cache_read",
                    "Cache read",
                    lambda r: fmt.tokens(r.tokens.cache_read),
                    lambda r: r.tokens.cache_read,
                ),
                Column(
                    "cache_write",
                    "Cache write",
                    lambda r: fmt.tokens(r.tokens.cache_write),
                    lambda r: r.tokens.cache_write,
                ),
                Column(
                    "reasoning",
                    "Reasoning",
                    lambda r: fmt.tokens(r.tokens.reasoning),
                    lambda r: r.tokens.reasoning,
                ),
            ]
        else:
            cols.append(
                Column("tokens", "Tokens", lambda r: fmt.tokens(r.tokens.total), lambda r: r.tokens.total)
            )
        cols += [
            Column(
                "cost", "Cost", lambda r: fmt.cost(r.tokens), lambda r: (r.tokens.cost_pico, r.tokens.total)
            ),
            Column("per_1k", "$/1k out", lambda r: per_1k_output(r.tokens), _per_1k_sort),
            Column(
                "hit",
                "Hit" if self.compact else "Cache hit",
                lambda r: percent(ins.hit_rate(r.tokens)),
                lambda r: ins.hit_rate(r.tokens) or -1.0,
            ),
        ]
        self.query_one("#models-table", SortTable).show(cols, d.models, lambda r: f"{r.agent}\x1f{r.model}")

    def _fill_cache_models(self, d: Insights) -> None:
        cols = [
            Column("model", "Model", lambda r: Text(r.model), lambda r: r.model.casefold(), right=False),
            Column(
                "prompt", "Prompt", lambda r: fmt.tokens(ins.prompt(r.tokens)), lambda r: ins.prompt(r.tokens)
            ),
            Column(
                "hit",
                "Hit",
                lambda r: percent(ins.hit_rate(r.tokens)),
                lambda r: ins.hit_rate(r.tokens) or -1.0,
            ),
        ]
        if not self.compact:
            cols += [
                Column(
                    "read_saved",
                    "Reads saved",
                    lambda r: priced_part(r, r.saving.read_saved),
                    lambda r: r.saving.read_saved,
                ),
                Column(
                    "premium",
                    "Write premium",
                    lambda r: priced_part(r, r.saving.write_premium),
                    lambda r: r.saving.write_premium,
                ),
            ]
        cols.append(Column("saved", "Saved", lambda r: saving_text(r.saving), lambda r: r.saving.net))
        self.query_one("#cache-table", SortTable).show(cols, d.models, lambda r: f"{r.agent}\x1f{r.model}")

    def _fill_sessions(self, d: Insights) -> None:
        labels = self._labels
        cols = [
            Column(
                "project",
                "Project",
                lambda r: Text(labels.get(r.project, fmt.project_name(r.project))),
                lambda r: fmt.project_name(r.project).casefold(),
                right=False,
                width=14 if self.compact else None,
            ),
            Column("agent", "Agent", lambda r: r.agent, lambda r: r.agent, right=False),
        ]
        if not self.compact:
            cols.append(
                Column(
                    "session",
                    "Session",
                    lambda r: Text(fmt.short_id(r.session_id)),
                    lambda r: r.session_id,
                    right=False,
                )
            )
            cols.append(Column("turns", "Turns", lambda r: f"{r.tokens.turns:,}", lambda r: r.tokens.turns))
        cols += [
            *self._usage_columns(),
        ]
        self.query_one("#sessions-table", SortTable).show(
            cols, d.sessions, lambda r: f"{r.agent}\x1f{r.session_id}"
        )


def _per_1k_sort(r: ins.ModelRow) -> float:
    t = r.tokens
    return t.known_cost_usd / t.output if t.output else -1.0
