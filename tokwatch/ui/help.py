"""The `?` help screen: the keys (read from the live bindings, so a keymap change shows) and a legend."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

LEGEND = (
    ("●", "active: a turn in the last {minutes:g} minutes"),
    ("ctx 75%", "context used of the model's window: green < 50%, yellow < 80%, red above"),
    ("peak", "the largest context seen; the gauge falls back after a compaction"),
    ("≥$X*", "a lower bound: some turns use a model without a known price"),
    ("unknown", "no turn of it could be priced (never shown as $0)"),
    ("burn rate", "tokens/min and $/h over the latest turns (a pause over 15 min ends the run)"),
    ("Today", "today's cost, tokens and turns (local midnight to midnight); daily budget used"),
    (
        "Block",
        "the running 5-hour block: time left, cost, tokens, $/h since its first turn and the cost "
        "projected at its end at that pace; block budget used",
    ),
    ("daily 42%", "a budget's share used: green < 50%, yellow < 80%, red above; 80% and 100% ring the bell"),
    ("archived", "the session's log files were deleted; its totals come from tokwatch's cache"),
    ("⚠ 3 skipped", "log lines that could not be read (in the header); ! lists them by file"),
    (
        "Codex 5h 13%",
        "a plan window as last reported: share, its course, ↻ time to reset, 100% at this pace, age (⚠ stale)",
    ),
    (
        "┃ on the gauge",
        "where the agent auto-compacts; none when its rule is unknown (the road then ends at the window)",
    ),
)


class HelpScreen(ModalScreen[None]):
    """Keys and what the marks mean; any of Esc, ? or q closes it."""

    BINDINGS = [
        Binding("escape,question_mark", "dismiss", "Close help", id="help.close"),
        Binding("q", "dismiss", "Close help", id="help.quit", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], active_minutes: float) -> None:
        super().__init__()
        self.keys = keys
        self.active_minutes = active_minutes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("Keys", style="bold"), classes="help-heading")
            yield Static(self._grid((key, Text(what)) for key, what in self.keys))
            yield Static(Text("Marks", style="bold"), classes="help-heading")
            marks = ((mark, Text(what.format(minutes=self.active_minutes))) for mark, what in LEGEND)
            yield Static(self._grid(marks))
            yield Static(Text("Esc, ? or q closes this help.", style="dim"), classes="help-heading")

    @staticmethod
    def _grid(rows: Iterable[tuple[str, Text]]) -> Table:
        """Two columns; a long description wraps under itself, not under the key."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True, min_width=10)
        grid.add_column(ratio=1)
        for key, what in rows:
            grid.add_row(Text(key), what)
        return grid

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
