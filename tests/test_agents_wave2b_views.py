"""The wave-2 agents (Cline, Roo Code, Kilo Code, Goose, Hermes, Droid) in every view, through
the commands and the dashboard only: no view knows them by name."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from tokwatch.cli import main

FIX = Path(__file__).resolve().parent / "fixtures" / "agents"
AGENTS = {"cline", "roo", "kilo-code", "goose", "hermes", "droid"}


def build_home(root: Path) -> Path:
    """Every wave-2 agent's fixtures in the agent's own layout under `root`."""
    shutil.copytree(
        FIX / "cline" / "saoudrizwan.claude-dev", root / "Code/User/globalStorage/saoudrizwan.claude-dev"
    )
    sdk = root / ".cline" / "data" / "sessions" / "1784094124598_rruoq"
    sdk.mkdir(parents=True)
    shutil.copy(FIX / "cline" / "sdk" / "session.messages.json", sdk / "1784094124598_rruoq.messages.json")
    shutil.copy(FIX / "cline" / "sdk" / "session.json", sdk / "1784094124598_rruoq.json")
    shutil.copytree(
        FIX / "roo" / "rooveterinaryinc.roo-cline",
        root / "Code/User/globalStorage/rooveterinaryinc.roo-cline",
    )
    shutil.copytree(
        FIX / "kilo-code" / "kilocode.kilo-code", root / "Code/User/globalStorage/kilocode.kilo-code"
    )
    goose = root / "goose" / "sessions"
    goose.mkdir(parents=True)
    con = sqlite3.connect(goose / "sessions.db")
    con.executescript((FIX / "goose" / "sessions-schema-v17.sql").read_text())
    con.executescript((FIX / "goose" / "sessions-v17.synthetic-data.sql").read_text())
    con.close()
    hermes = root / ".hermes"
    hermes.mkdir()
    con = sqlite3.connect(hermes / "state.db")
    con.executescript((FIX / "hermes" / "state-schema-v30.sql").read_text())
    con.executescript((FIX / "hermes" / "state.synthetic-data.sql").read_text())
    con.close()
    shutil.copytree(FIX / "droid" / "sessions", root / ".factory" / "sessions")
    return root


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "config.toml"))
    return build_home(tmp_path / "logs")


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_export_report_and_status(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "export", "--format", "json", str(home))
    by_agent: dict[str, int] = {}
    for r in rows:
        by_agent[r["agent"]] = by_agent.get(r["agent"], 0) + r["input_tokens"] + r["output_tokens"]
    assert set(by_agent) == AGENTS and all(by_agent.values())
    for agent in sorted(AGENTS):
        report = run_json(
            capsys,
            "report",
            "daily",
            str(home),
            "--json",
            "--tz",
            "UTC",
            "--since",
            "2000-01-01",
            "--agent",
            agent,
        )
        assert report["rows"], agent
        exported = sum(r["input_tokens"] + r["output_tokens"] for r in rows if r["agent"] == agent)
        totals = report["totals"]
        assert totals["input_tokens"] + totals["output_tokens"] == exported, agent
    doc = run_json(capsys, "status", "--session", "20260101_100000_d4e5f6", "--json", str(home))
    assert doc["session"]["agent"] == "hermes"
    assert doc["usage"]["session"]["input"] == 39000
    doc = run_json(capsys, "status", "--session", "7f9c2b1e-1111", "--json", str(home))
    assert doc["session"]["agent"] == "droid" and doc["session"]["project"] == "/home/me/app"


async def test_dashboard_lists_them_and_labels_observed_steps(home: Path, tmp_path: Path) -> None:
    from tokwatch.config import Config
    from tokwatch.core.store import Store
    from tokwatch.ingest.engine import Engine
    from tokwatch.ingest.setup import make_pricer
    from tokwatch.ui.app import TokwatchApp
    from tokwatch.ui.detail import Detail, LastTurn
    from tokwatch.ui.sessions import SessionList

    config = Config()
    engine = Engine(Store(make_pricer(config)), [home], debounce_ms=20, step_ms=10)
    app = TokwatchApp(engine, config=config, clock=lambda: 1767300000.0, tz=UTC, export_dir=tmp_path / "x")
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 10
        while not (app.loaded and app.query_one(SessionList).selected is not None):
            assert time.monotonic() < deadline, "the dashboard did not load"
            await pilot.pause(0.02)
        table = app.query_one(SessionList)
        keys = [table.key_for(r.key) for r in table.ordered_rows]
        assert {k[0] for k in keys if k} >= AGENTS
        droid = next(k for k in keys if k and k[0] == "droid")
        for key in ("k", "j"):  # up to the top, then down: wherever the droid session is
            for _ in range(len(keys)):
                if app.query_one(Detail).key == droid:
                    break
                await pilot.press(key)
        await pilot.pause()
        assert app.query_one(Detail).key == droid, (keys, app.query_one(Detail).key)
        assert "(observed step)" in app.query_one(LastTurn).render().plain
