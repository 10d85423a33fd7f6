"""SVG snapshots of the insights view on a generated month of history, with a frozen clock.

Update with `pytest tests/test_insights_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from insights_history import write_history
from textual.pilot import Pilot

from tokwatch.config import Config
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.insights import InsightsScreen
from tokwatch.ui.sessions import SessionList

FIXED_NOW = 1774519200.0  # as in conftest.py
BUDGET = Config.model_validate({"budgets": {"daily": {"usd": 20}}})


def opened(*keys: str) -> Callable[[Pilot[Any]], Any]:
    """Wait for the history, open the view, press `keys`, wait for the count they ask for."""

    async def run(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, TokwatchApp)
        deadline = time.monotonic() + 15
        while not (app.loaded and app.query_one(SessionList).selected is not None and app.usage is not None):
            assert time.monotonic() < deadline, "history did not load"
            await pilot.pause(0.02)
        await pilot.press("i", *keys)
        screen = app.screen
        assert isinstance(screen, InsightsScreen)
        while not (
            screen.data is not None
            and screen.data.query == screen.spec
            and not screen._busy
            and screen._filled
        ):
            assert time.monotonic() < deadline, "the view did not count"
            await pilot.pause(0.02)
        await pilot.pause()

    return run


def test_cost_wide(snap_compare: Any, make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    """160 columns: thirty days split by model, the budget line, the side panel; the cursor two
    days back."""
    write_history(ui_root, FIXED_NOW)
    app = make_app(config=BUDGET)
    assert snap_compare(app, terminal_size=(160, 40), run_before=opened("s", "left", "left"))


def test_cost_narrow(snap_compare: Any, make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    """60 columns: fewer bars (the newest ones), short labels, the readout on two lines."""
    write_history(ui_root, FIXED_NOW)
    app = make_app(config=BUDGET)
    assert snap_compare(app, terminal_size=(60, 30), run_before=opened())


def test_cache_wide(snap_compare: Any, make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=opened("4"))


def test_projects_narrow(snap_compare: Any, make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    assert snap_compare(make_app(), terminal_size=(60, 30), run_before=opened("2"))
