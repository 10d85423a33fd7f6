"""The Limits panel: each plan window the agents reported, one line each, under the Today strip.

`Codex 5h ━━━━━━━━━━━━━━ 13%  ▁▂▂▃▄  resets in 3h 12m  100% in ~1h 40m  seen 2m ago`

The windows come from the ledger (`reports.limits.windows`), read on a worker thread whenever
the engine reports new samples (a rollout's `rate_limits`, or `tokwatch statusline` writing to
the ledger from Claude Code) and when a period ends; this widget only lays them out. Everything
that moves with time (the countdown, the age, a window passing its reset, the projection) is
computed in `render()` from the clock, so the app's 1 s tick just refreshes it. It is hidden
while no agent reported a window worth showing.

Alerts: crossing a share in `[limits] alerts` (80% and 95% by default) rings the bell and shows a
notice, once per crossing per window period (`budgets.BudgetAlarm`, keyed by the reset time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from tokwatch.config import LimitsConfig
from tokwatch.core.ledger import Ledger
from tokwatch.core.models import iso
from tokwatch.reports import limits
from tokwatch.reports.budgets import BudgetAlarm
from tokwatch.reports.limits import Window, WindowState
from tokwatch.ui import format as fmt
from tokwatch.ui.strip import Styles

SPARKS = "▁▂▃▄▅▆▇█"
#: Detail levels tried in order (0 the richest); every line of the panel uses the same one.
LEVELS = (0, 1, 2, 3)
#: Bar cells: the bar takes what is left of the line, within these bounds.
BAR_MIN = (10, 8, 6, 0)
BAR_MAX = (24, 24, 10, 0)
SPARK_CELLS = (12, 8, 6, 0)
#: `100%`, `reset`: the share column.
SHARE_WIDTH = 5


def sparkline(w: Window, now: float, cells: int) -> str:
    """Used % over the window's period so far, `cells` wide: each cell the largest share seen in
    its part of the period, carried forward where no sample fell; blank before the first sample
    and after now."""
    if cells <= 0 or not w.history:
        return ""
    n = len(w.history)
    elapsed = 0.0 if w.seconds <= 0 else (min(now, w.start + w.seconds) - w.start) / w.seconds
    out = []
    last: float | None = None
    for i in range(cells):
        lo, hi = i * n // cells, max(i * n // cells + 1, (i + 1) * n // cells)
        seen = [v for v in w.history[lo:hi] if v is not None]
        if seen:
            last = max(seen)
        if last is None or i / cells > elapsed:
            out.append(" ")
            continue
        out.append(SPARKS[min(len(SPARKS) - 1, int(max(0.0, last) / 100 * len(SPARKS)))])
    return "".join(out)


def _age(seconds: float) -> str:
    return "now" if seconds < 60 else fmt.duration(seconds)


def _parts(st: WindowState, level: int, styles: Styles) -> tuple[Text, list[Text]]:
    """(the share text, the parts after the bar) of one window at a detail level."""
    w = st.window
    if st.reset:
        since = st.now - (w.resets_at or st.now)
        share = Text("reset", style=styles.ok + Style(bold=True))
        parts = [Text(f"reset {_age(since)} ago" if level <= 1 else f"↻ {_age(since)} ago", style="dim")]
        if level <= 1:
            parts.append(Text("no sample since", style="dim"))
        return share, parts
    pct = st.percent
    share = Text(f"{pct:.0f}%", style=styles.band(min(pct, 100.0)) + Style(bold=True))
    parts: list[Text] = []
    if st.resets_in is not None:
        left = fmt.duration(st.resets_in)
        parts.append(Text(f"resets in {left}" if level == 0 else f"↻ {left}" if level == 1 else f"↻{left}"))
    if level <= 2:
        if st.full_in is not None:
            soon = fmt.duration(st.full_in) if st.full_in >= 60 else "now"
            text = f"100% in ~{soon}" if level <= 1 else f"→{soon}"
            parts.append(Text(text, style=styles.high if st.full_in < 3600 else styles.warn))
        elif st.projected is not None:
            text = (
                "won't reach 100% before reset" if level == 0 else "won't reach 100%" if level == 1 else "→ok"
            )
            parts.append(Text(text, style="dim"))
    age = _age(st.age)
    if st.stale:
        parts.append(Text(f"⚠ seen {age} ago" if level <= 1 else f"⚠{age}", style=styles.warn))
    elif level <= 1:
        parts.append(Text(f"seen {age} ago" if age != "now" else "seen now", style="dim"))
    return share, parts


def _shown(st: WindowState) -> tuple[object, ...]:
    """What of a window's line depends on the clock, as shown (a redraw is due when it changes)."""
    return (
        st.reset,
        st.stale,
        _age(st.age),
        None if st.resets_in is None else fmt.duration(st.resets_in),
        None if st.full_in is None else fmt.duration(st.full_in),
        None if not st.reset else _age(st.now - (st.window.resets_at or st.now)),
    )


def _row(st: WindowState, level: int, styles: Styles) -> tuple[Text, Text, Text]:
    """(label, share, what follows the share) of one window's line at `level`."""
    w = st.window
    label = Text.assemble((w.name, "bold"), " ", w.label)
    share, parts = _parts(st, level, styles)
    spark = "" if st.reset else sparkline(w, st.now, SPARK_CELLS[level])
    tail = Text()
    gap = "  " if level <= 1 else " "
    if spark:
        tail.append(gap)
        tail.append(spark, style=styles.band(min(st.percent, 100.0)))
    for part in parts:
        tail.append(gap)
        tail.append_text(part)
    return label, share, tail


def _bar(st: WindowState, width: int, styles: Styles) -> Text:
    filled = 0 if st.reset else round(width * min(st.percent, 100.0) / 100.0)
    return Text.assemble(
        ("━" * filled, styles.band(min(st.percent, 100.0))), ("━" * (width - filled), styles.rest), " "
    )


def lines(states: Sequence[WindowState], width: int, styles: Styles | None = None) -> list[Text]:
    """The panel at `width`: the richest level at which every window's line fits, with the
    bars, shares and sparklines in columns."""
    styles = styles or Styles()
    if not states:
        return []
    for level in LEVELS:
        rows = [_row(st, level, styles) for st in states]
        label_w = max(r[0].cell_len for r in rows)
        fixed = label_w + 1 + SHARE_WIDTH + max(r[2].cell_len for r in rows)
        bar_w = min(BAR_MAX[level], width - fixed - 1)
        if (BAR_MAX[level] and bar_w < BAR_MIN[level]) or (not BAR_MAX[level] and fixed > width):
            if level != LEVELS[-1]:
                continue
            bar_w = 0
        out = []
        for st, (label, share, tail) in zip(states, rows, strict=True):
            line = Text.assemble(fmt.fit(label, label_w), " ", no_wrap=True)
            if bar_w > 0:
                line.append_text(_bar(st, bar_w, styles))
            line.append_text(fmt.fit(share, SHARE_WIDTH, "right"))
            line.append_text(tail)
            out.append(fmt.fit(line, width))
        return out
    return []


@dataclass(frozen=True, slots=True)
class Alert:
    state: WindowState
    threshold: float

    def message(self) -> str:
        return f"{self.state.text()}: past {self.threshold:g}%"


class LimitsPanel(Widget):
    """The plan windows, one line each; hidden while there is none."""

    COMPONENT_CLASSES = {"limits--ok", "limits--warn", "limits--high", "limits--rest"}
    DEFAULT_CSS = """
    LimitsPanel {
        height: auto;
        max-height: 8;
        padding: 0 1;
        background: $boost;
        display: none;
    }
    LimitsPanel.-shown {
        display: block;
    }
    LimitsPanel > .limits--ok { color: $success; }
    LimitsPanel > .limits--warn { color: $warning; }
    LimitsPanel > .limits--high { color: $error; }
    LimitsPanel > .limits--rest { color: $foreground 15%; }
    """

    class Computed(Message):
        """The windows as the ledger holds them at `now` (from the worker thread)."""

        def __init__(self, windows: tuple[Window, ...], now: float) -> None:
            super().__init__()
            self.windows = windows
            self.now = now

    def __init__(self, ledger: Ledger, clock: Callable[[], float], config: LimitsConfig, **kw: str) -> None:
        super().__init__(**kw)
        self.ledger = ledger
        self.clock = clock
        self.config = config
        self.windows: tuple[Window, ...] = ()
        self.alarm = BudgetAlarm(config.alerts)
        self._reading = False
        self._read_again = False
        self._read_failed = False
        #: what the clock-driven parts showed at the last redraw
        self._shown: tuple[tuple[object, ...], ...] = ()
        #: when the shown set changes by itself (a period ends): read the ledger again then
        self._expires = math.inf

    @property
    def stale_after(self) -> float:
        return self.config.stale_minutes * 60.0

    # ------------------------------------------------------------------ reading
    def request(self) -> None:
        """Read the windows again off the UI thread (one read at a time, later requests coalesced)."""
        if self._reading:
            self._read_again = True
            return
        self._reading, self._read_again = True, False
        self._read(self.clock())

    @work(thread=True, exclusive=True, exit_on_error=False, group="limits", name="limits")
    def _read(self, now: float) -> None:
        wins = limits.windows(self.ledger, now)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Computed(wins, now))

    def on_limits_panel_computed(self, message: Computed) -> None:
        message.stop()
        self._reading = False
        self.set_windows(message.windows)
        if self._read_again:
            self.request()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed or cancelled read: the next request may run (the app reports failures)."""
        if event.worker.group == "limits" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._reading = False
            if event.state is WorkerState.ERROR and not self._read_failed:
                self._read_failed = True  # said once: the next batch tries again anyway
                self.notify(
                    f"Reading the plan limits failed: {event.worker.error}", severity="error", markup=False
                )

    def set_windows(self, windows: tuple[Window, ...]) -> None:
        self.windows = windows
        ends = [t for w in windows for t in ((w.resets_at or w.observed_at) + w.seconds, w.resets_at) if t]
        self._expires = min(ends, default=math.inf)
        self.set_class(bool(windows), "-shown")
        self.refresh(layout=True)
        self._alert()

    # ------------------------------------------------------------------ alerts
    def _alert(self) -> None:
        """Each new crossing of an alert share: a notice and the bell (once per window period)."""
        alerts: list[Alert] = []
        for st in self.states():
            period = iso(st.window.resets_at) if st.window.resets_at else ""
            for c in self.alarm.check({st.window.key: (period, st)}):
                alerts.append(Alert(st, c.threshold))
        for a in alerts:
            self.notify(
                a.message(),
                title="Plan limit",
                severity="error" if a.threshold >= 95 else "warning",
                timeout=10,
                markup=False,
            )
            self.app.bell()

    # ------------------------------------------------------------------ drawing
    def states(self) -> list[WindowState]:
        return limits.states(self.windows, self.clock(), self.stale_after)

    def _styles(self) -> Styles:
        get = self.get_component_rich_style
        return Styles(get("limits--ok"), get("limits--warn"), get("limits--high"), get("limits--rest"))

    def _lines(self, width: int) -> list[Text]:
        return lines(self.states(), max(1, width), self._styles())

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_size.width))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return max(1, len(self.windows))

    def tick(self) -> None:
        """The 1 s clock: countdowns and ages move; a period that ended changes what is shown.

        Redrawn only when a figure it shows changed (most move by the minute)."""
        if not self.windows:
            return
        if self.clock() >= self._expires:
            self._expires = math.inf  # asked once; the result sets the next one
            self.request()
        key = tuple(_shown(st) for st in self.states())
        if key != self._shown:
            self._shown = key
            self.refresh()
