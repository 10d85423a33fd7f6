"""Shared fixtures for the dashboard tests: a private copy of the sample logs and an app factory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

UI_FIXTURES = Path(__file__).parent / "fixtures" / "ui"
#: "now" in every UI test and snapshot: 2026-03-26T10:00:00Z, 5 minutes after the newest sample turn.
FIXED_NOW = 1774519200.0


@pytest.fixture(autouse=True)
def _private_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own ledger, cache and config folders: none ever reads or writes the
    user's (or another test's) record of usage. Subprocesses inherit the environment."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("TOKWATCH_DATA_DIR", str(state / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(state / "xdg-data"))
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(state / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(state / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(state / "xdg-config"))


@pytest.fixture
def ui_root(tmp_path: Path) -> Path:
    """A writable copy of tests/fixtures/ui, so tests can append turns to watched files."""
    root = tmp_path / "logs"
    shutil.copytree(UI_FIXTURES, root)
    return root


@pytest.fixture
def make_app(ui_root: Path, tmp_path: Path) -> Callable[..., Any]:
    """Build a `TokwatchApp` over `ui_root` with a frozen clock and UTC days (tests may pass their own)."""
    from tokwatch.config import Config
    from tokwatch.core.store import Store
    from tokwatch.ingest.engine import Engine
    from tokwatch.ingest.setup import make_pricer
    from tokwatch.ui.app import TokwatchApp

    def factory(**kw: Any) -> TokwatchApp:
        config = kw.pop("config", None) or Config()
        engine = Engine(Store(make_pricer(config)), [ui_root], debounce_ms=20, step_ms=10)
        kw.setdefault("clock", lambda: FIXED_NOW)
        kw.setdefault("tz", UTC)  # "today" in the strip must not depend on the machine's zone
        kw.setdefault("export_dir", tmp_path / "exports")
        return TokwatchApp(engine, config=config, **kw)

    return factory
