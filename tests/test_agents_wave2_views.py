"""pi, OpenClaw, Kimi CLI, Kimi Code and Kilo reach every view (export, report, status, the
dashboard) through the plug-in interface alone: nothing outside `tokwatch/agents/` names them."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC
from pathlib import Path

import pytest

from tokwatch.cli import main
from tokwatch.config import Config
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.sessions import SessionList

FIX = Path(__file__).resolve().parent / "fixtures" / "agents"
NEW = {"pi": "pi", "openclaw": "openclaw", "kimi": "kimi-cli", "kimi-code": "kimi-code", "kilo": "kilo"}
KIMI_SESSION = "6a1f2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "config.toml"))
    root = tmp_path / "logs"
    for folder in NEW.values():
        shutil.copytree(FIX / folder, root / folder)
    return root


def test_export_report_and_status(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--no-cache", "--format", "json", str(logs)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["agent"] for r in rows} == set(NEW)
    assert main(["report", "daily", str(logs), "--no-cache", "--json", "--tz", "UTC"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["turns"] == sum(r["turns"] for r in rows)
    assert report["totals"]["output_tokens"] == sum(r["output_tokens"] for r in rows)
    assert main(["status", str(logs), "--no-cache", "--session", KIMI_SESSION, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["session"]["agent"] == "kimi"
    # Kimi's own context figure after `/compact` (a context-only StatusUpdate) moves the gauge
    assert status["usage"]["context"] == {
        "used": 1800,
        "window": 262144,
        "percent": 0.7,
        "windowAssumed": False,
    }
    assert status["usage"]["session"]["cost"] is None  # the model is not logged: unknown, not $0


async def test_dashboard_lists_every_new_agent(logs: Path, tmp_path: Path) -> None:
    config = Config()
    engine = Engine(Store(make_pricer(config)), [logs], debounce_ms=20, step_ms=10)
    app = TokwatchApp(
        engine, config=config, clock=lambda: 1790000000.0, tz=UTC, export_dir=tmp_path / "exports"
    )
    async with app.run_test(size=(140, 40)) as pilot:
        deadline = time.monotonic() + 20
        table = app.query_one(SessionList)
        while not (app.loaded and table.selected is not None):
            assert time.monotonic() < deadline, "dashboard never loaded"
            await pilot.pause(0.05)
        await pilot.pause()
        keys = [table.key_for(r.key) for r in table.ordered_rows]
        assert {k[0] for k in keys if k is not None} >= set(NEW)
