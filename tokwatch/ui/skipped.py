"""The `!` screen: which log files had lines tokwatch could not read, and how many.

Paths come from the file system, so they only ever enter a `Text` as plain content (a folder
named `[red]` shows those brackets), and terminal-safe (`clean`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tokwatch.core.text import clean


def skipped_table(by_file: Mapping[Path, int]) -> Table:
    """Most skipped lines first; the path wraps under itself, the count stays right-aligned."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(justify="right", no_wrap=True, style="bold")
    grid.add_column(ratio=1, overflow="fold")
    for path, n in sorted(by_file.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if n:
            grid.add_row(Text(f"{n:,}"), Text(clean(str(path))))
    return grid


class SkippedScreen(ModalScreen[None]):
    """Skipped (malformed) lines per file; any of Esc, ! or q closes it."""

    BINDINGS = [
        Binding("escape,exclamation_mark", "dismiss", "Close", id="skipped.close"),
        Binding("q", "dismiss", "Close", id="skipped.quit", show=False),
    ]

    def __init__(self, by_file: Mapping[Path, int]) -> None:
        super().__init__()
        self.by_file = {p: n for p, n in by_file.items() if n}

    def compose(self) -> ComposeResult:
        lines = sum(self.by_file.values())
        files = len(self.by_file)
        with VerticalScroll(id="skipped-box"):
            if not lines:
                yield Static(
                    Text("No skipped lines: every log line so far could be read."), id="skipped-head"
                )
            else:
                yield Static(
                    Text.assemble(
                        (f"{lines:,} skipped line{'s' if lines != 1 else ''}", "bold"),
                        f" in {files} file{'s' if files != 1 else ''}",
                    ),
                    id="skipped-head",
                )
                yield Static(
                    Text(
                        "Lines that are not valid records (a crash mid-write, a format change). "
                        "The rest of each file counts.",
                        style="dim",
                    ),
                    classes="skipped-note",
                )
                yield Static(skipped_table(self.by_file), id="skipped-list")
            yield Static(Text("Esc, ! or q closes this list.", style="dim"), classes="skipped-note")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
