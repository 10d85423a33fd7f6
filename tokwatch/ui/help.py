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

#: One line each at 100 columns: the whole help fits a 100 x 30 terminal (it scrolls when smaller).
LEGEND = (
    ("●", "active: a turn in the last {minutes:g} minutes"),
    ("ctx 75%", "context used of the window: green < 50%, yellow < 80%, red above"),
    ("~272k  ?", "~ a window assumed from the agent's default; ? an unknown window"),
    ("peak", "the largest context seen (the gauge falls after a compaction)"),
    ("≥$X*", "a lower bound: some turns use a model with no known price"),
    ("unknown", "no turn of it could be priced (never shown as $0)"),
    ("burn rate", "tok/min and $/h over the latest turns (a 15-min pause ends the run)"),
    ("Today", "today's cost, tokens and turns (the local day); daily budget used"),
    ("Block", "the running 5-hour block: time left, cost, $/h, cost at its end"),
    ("daily 42%", "a budget's share used; reaching 80% and 100% rings the bell"),
    ("archived", "the session's log files were deleted; its totals come from the cache"),
    ("⚠ 3 skipped", "log lines that could not be read (header); ! lists them by file"),
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
            yield Static(Text("Keys", style="bold"), classes="help-heading", id="help-first")
            yield Static(self._grid((key, Text(what)) for key, what in self.keys))
            yield Static(Text("Marks", style="bold"), classes="help-heading")
            marks = ((mark, Text(what.format(minutes=self.active_minutes))) for mark, what in LEGEND)
            yield Static(self._grid(marks))
            yield Static(
                Text("Esc, ? or q closes this help; ↑/↓ scroll it.", style="dim"), classes="help-heading"
            )

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
