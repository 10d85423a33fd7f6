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
    ("● archived", "a turn in the last {minutes:g} min; the session's log files were deleted"),
    ("ctx 75%  peak", "context used (green < 50%, yellow < 80%, red); the largest seen"),
    ("~272k  ?  ┃", "a window assumed; unknown; where the agent auto-compacts"),
    ("≥$X*  unknown", "some turns have no known price (a lower bound); none has"),
    ("burn rate", "tok/min and $/h over the latest turns (a 15-min pause ends it)"),
    ("Today  Block", "today's usage; the 5-hour block: time left, $/h, cost at its end"),
    ("daily 42%", "a budget's share used; 80% and 100% ring the bell"),
    ("Codex 5h 13%", "a plan window: share, ↻ reset, 100% at this pace, age (⚠ stale)"),
    ("⚠ 3 skipped", "log lines that could not be read (header); ! lists them"),
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
