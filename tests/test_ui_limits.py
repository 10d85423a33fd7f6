"""The Limits panel and the road to compaction in the dashboard: Pilot tests and SVG snapshots with
a frozen clock, live moves from a rollout append and from `tokwatch statusline` writing to the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import append_bytes
from textual.pilot import Pilot

from tokwatch.config import Config, LimitsConfig
from tokwatch.core.ledger import Ledger
from tokwatch.core.observations import LimitSample
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import statusline
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.detail import ContextGauge
from tokwatch.ui.limits import LimitsPanel
from tokwatch.ui.road import CompactionRoad
from tokwatch.ui.sessions import SessionList


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


#: 20 minutes after the sample Codex session's first rate limits (19:34-19:36: 5h 7%, 7d 11%).
NOW = ts("2026-02-23T20:00:00+00:00")
CODEX_LOG = Path(
    "codex/sessions/2026/02/23/rollout-2026-02-23T20-34-25-019c8bfe-ec25-79e0-97d7-bda6a9c575ff.jsonl"
)


def claude_samples(used_5h: tuple[tuple[str, float], ...]) -> list[LimitSample]:
    """Claude's plan windows as `tokwatch statusline` records them (5-hour window 16:30-21:30)."""
    five, seven = ts("2026-02-23T21:30:00+00:00"), ts("2026-02-26T00:00:00+00:00")
    out = [
        LimitSample(
            "claude", "anthropic", "statusline", "claude", 300, used, five, ts(f"2026-02-23T{t}+00:00")
        )
        for t, used in used_5h
    ]
    out.append(
        LimitSample(
            "claude", "anthropic", "statusline", "claude", 10080, 40.0, seven, ts("2026-02-23T19:55:00+00:00")
        )
    )
    return out


RISING = (("17:00:00", 10.0), ("18:00:00", 35.0), ("19:00:00", 60.0), ("19:55:00", 82.0))


def panel_text(app: TokwatchApp) -> str:
    return "\n".join(
        t.plain for t in app.query_one(LimitsPanel)._lines(app.query_one(LimitsPanel).content_size.width)
    )


async def until(pilot: Pilot[Any], cond: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        await pilot.pause(0.02)


async def settled(pilot: Pilot[Any]) -> None:
    """History in, a session selected, the strip counted and the panel read; no cursor blink."""
    app = pilot.app
    assert isinstance(app, TokwatchApp)
    await until(
        pilot,
        lambda: app.loaded and app.query_one(SessionList).selected is not None and app.usage is not None,
        "history did not load",
    )
    panel = app.query_one(LimitsPanel)
    await until(pilot, lambda: not panel._reading, "the panel was not read")
    road = app.query_one(CompactionRoad)
    await until(pilot, lambda: road.road is not None, "the road was not read")
    await pilot.pause()


@pytest.fixture
def limits_app(make_app: Callable[..., TokwatchApp]) -> Callable[..., TokwatchApp]:
    """The sample dashboard at NOW, with Claude's windows recorded as the status line would."""

    def factory(samples: list[LimitSample] | None = None, **kw: Any) -> TokwatchApp:
        app = make_app(clock=kw.pop("clock", lambda: NOW), **kw)
        app.store.apply([], [], claude_samples(RISING) if samples is None else samples)
        return app

    return factory


# ---------------------------------------------------------------- snapshots
#: Snapshots without alerts: a toast would cover the panel (the alerts have their own test).
QUIET = Config(limits=LimitsConfig(alerts=[]))


def test_limits_panel_wide(snap_compare: Any, limits_app: Callable[..., TokwatchApp]) -> None:
    assert snap_compare(limits_app(config=QUIET), terminal_size=(120, 40), run_before=settled)


def test_limits_panel_narrow(snap_compare: Any, limits_app: Callable[..., TokwatchApp]) -> None:
    assert snap_compare(limits_app(config=QUIET), terminal_size=(60, 30), run_before=settled)


# ---------------------------------------------------------------- Pilot
async def test_no_samples_no_panel(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app()  # the conftest clock: a month after the sample windows ended
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        panel = app.query_one(LimitsPanel)
        assert panel.windows == () and not panel.display


async def test_panel_lines_and_the_road(limits_app: Callable[..., TokwatchApp]) -> None:
    app = limits_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        panel = app.query_one(LimitsPanel)
        assert panel.display and len(panel.windows) == 4
        text = panel_text(app).splitlines()
        assert [line.split()[:2] for line in text] == [
            ["Claude", "5h"],
            ["Claude", "7d"],
            ["Codex", "5h"],
            ["Codex", "7d"],
        ]
        # 82% after 3h25m of a 5-hour window (0.4%/min): 100% at 20:40, 40 min from now, before the 21:30 reset
        assert (
            "82%" in text[0]
            and "↻ 1h 30m" in text[0]
            and "100% in ~40m" in text[0]
            and "seen 5m ago" in text[0]
        )
        assert "7%" in text[2] and "won't reach 100%" in text[2] and "⚠ seen 24m ago" in text[2]
        # the selected Claude session: the gauge marks 167k of 200k, the road says how far
        gauge = app.query_one(ContextGauge)
        assert (gauge.window, gauge.threshold) == (200_000, 167_000)
        road = app.query_one(CompactionRoad)
        assert road.road is not None and road.road.threshold == 167_000 and road.road.count == 0


async def test_a_window_passing_its_reset(limits_app: Callable[..., TokwatchApp]) -> None:
    now = [NOW]
    app = limits_app(clock=lambda: now[0])
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        assert "82%" in panel_text(app).splitlines()[0]
        now[0] = ts("2026-02-23T21:30:00+00:00")  # Claude's 5-hour window resets
        app._tick()
        await pilot.pause()
        first = panel_text(app).splitlines()[0]
        assert "reset" in first and "82%" not in first and "100% in" not in first
        now[0] = ts("2026-02-24T02:30:00+00:00")  # a whole window after its reset: no longer shown
        app._tick()
        panel = app.query_one(LimitsPanel)
        await until(
            pilot, lambda: all(w.agent != "claude" or w.minutes != 300 for w in panel.windows), "not dropped"
        )


async def test_alerts_once_per_crossing_per_window(
    ui_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """80% then 95%, each once; a status-line write in another connection moves the panel live."""
    data = tmp_path / "data"
    config = Config(limits=LimitsConfig(alerts=[80, 95]))
    engine = Engine(Store(make_pricer(config), Ledger.at(data)), [ui_root], debounce_ms=20, step_ms=10)
    app = TokwatchApp(engine, config=config, clock=lambda: NOW, tz=UTC, export_dir=tmp_path / "x")
    bells: list[float] = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(1))
    engine.store.apply([], [], claude_samples(RISING))
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        assert len(bells) == 1
        messages = [n.message for n in app._notifications]
        assert any(m == "Claude 5h window at 82% (resets in 1h30m): past 80%" for m in messages), messages

        def write(used: float, at: str) -> None:
            other = Ledger.at(data)  # as `tokwatch statusline` does, from another process
            hook = {
                "rate_limits": {
                    "five_hour": {"used_percentage": used, "resets_at": ts("2026-02-23T21:30:00+00:00")}
                }
            }
            statusline.record_limits(other, hook, ts(f"2026-02-23T{at}+00:00"))
            other.close()

        write(88.0, "19:57:00")
        await until(pilot, lambda: "88%" in panel_text(app), "the status line's sample did not arrive")
        assert len(bells) == 1  # still above 80: said once
        write(96.0, "19:58:00")
        await until(pilot, lambda: "96%" in panel_text(app), "the second sample did not arrive")
        assert len(bells) == 2 and "past 95%" in list(app._notifications)[-1].message


async def test_a_rollout_appended_live_moves_the_panel(
    ui_root: Path, make_app: Callable[..., TokwatchApp]
) -> None:
    app = make_app(clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        assert "Codex 5h" in panel_text(app) and " 7%" in panel_text(app)
        log = ui_root / CODEX_LOG
        d = orjson.loads(log.read_bytes().splitlines()[11])
        d["timestamp"] = "2026-02-23T19:59:00.000Z"
        d["payload"]["rate_limits"]["primary"]["used_percent"] = 31.0
        append_bytes(log, orjson.dumps(d) + b"\n")
        await until(pilot, lambda: "31%" in panel_text(app), "the appended rate limits did not show")
        assert "seen 1m ago" in panel_text(app)
