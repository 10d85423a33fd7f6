"""SVG snapshots of the dashboard on fixed sample data with a frozen clock (no wall-clock text).

Update with `pytest tests/test_ui_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.sessions import SessionList


async def settle(pilot: Pilot[Any]) -> None:
    """Wait for the history to load, the first session to be selected and the strip to be counted;
    stop cursor blink."""
    app = pilot.app
    assert isinstance(app, TokwatchApp)
    deadline = time.monotonic() + 10
    while not (app.loaded and app.query_one(SessionList).selected is not None and app.usage is not None):
        assert time.monotonic() < deadline, "history did not load"
        await pilot.pause(0.02)
    for box in app.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def test_main_screen_wide(snap_compare: Any, make_app: Callable[..., TokwatchApp]) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=settle)


def test_main_screen_narrow(snap_compare: Any, make_app: Callable[..., TokwatchApp]) -> None:
    assert snap_compare(make_app(), terminal_size=(60, 30), run_before=settle)


def test_second_session_wide(snap_compare: Any, make_app: Callable[..., TokwatchApp]) -> None:
    """`j` twice: the Claude session with a subagent, a compaction (peak) and two models."""
    assert snap_compare(make_app(demo=True), terminal_size=(120, 40), press=["j", "j"], run_before=settle)


def test_filter_narrow(snap_compare: Any, make_app: Callable[..., TokwatchApp]) -> None:
    assert snap_compare(make_app(), terminal_size=(60, 30), press=["slash", *"codex"], run_before=settle)
