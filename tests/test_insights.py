"""The insights view: its numbers (equal to `tokwatch report --json`, cache savings exact per price
tier, SQL only), its keys, the drill-down into the dashboard and back, and live updates."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from insights_history import claude_line, write_history
from textual.pilot import Pilot

from tokwatch.config import Config
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.ingest.setup import make_pricer
from tokwatch.reports import insights as ins
from tokwatch.reports import report
from tokwatch.reports.tally import Scope
from tokwatch.ui import format as fmt
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.chart import Bar, BarChart, money_tick, nice_ceiling
from tokwatch.ui.detail import Detail
from tokwatch.ui.insights import InsightsScreen, SortTable, project_labels
from tokwatch.ui.insights import turns as ui_turns
from tokwatch.ui.sessions import SessionList

FIXED_NOW = 1774519200.0  # as in conftest.py: 2026-03-26T10:00:00Z
TODAY = date(2026, 3, 26)
SONNET = "claude-sonnet-4-5-20250929"


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def open_insights(pilot: Pilot[Any]) -> InsightsScreen:
    """History loaded, `i` pressed, the first count shown."""
    app = pilot.app
    assert isinstance(app, TokwatchApp)
    await until(pilot, lambda: app.loaded and app.query_one(SessionList).selected is not None)
    await pilot.press("i")
    await until(pilot, lambda: isinstance(app.screen, InsightsScreen) and app.screen.data is not None)
    screen = app.screen
    assert isinstance(screen, InsightsScreen)
    await pilot.pause()
    return screen


async def settled(pilot: Pilot[Any], screen: InsightsScreen) -> ins.Insights:
    """The count for the current range, tab and split is on screen."""
    await until(
        pilot, lambda: screen.data is not None and screen.data.query == screen.spec and not screen._busy
    )
    await pilot.pause()
    assert screen.data is not None
    return screen.data


def cli_report(view: str, root: Path, since: date, until_: date, data_dir: Path) -> dict[str, Any]:
    """`tokwatch report VIEW ROOT --json` as a user runs it (its own ledger, the same logs)."""
    env = {**os.environ, "TOKWATCH_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "tokwatch", "report", view, str(root), "--json", "--tz", "UTC",
         "--since", since.isoformat(), "--until", until_.isoformat()],
        env=env, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


# ---------------------------------------------------------------- the numbers


@pytest.mark.parametrize(("keys", "view"), [((), "daily"), (("r", "r", "b", "b"), "monthly")])
async def test_numbers_shown_equal_report_json(
    make_app: Callable[..., TokwatchApp], ui_root: Path, tmp_path: Path, keys: tuple[str, ...], view: str
) -> None:
    """Every bar (and the readout under it) equals the `report daily|monthly --json` row of its period."""
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_insights(pilot)
        await pilot.press(*keys)
        d = await settled(pilot, screen)
        assert ins.REPORT_VIEW[d.query.bucket] == view
        doc = cli_report(view, ui_root, d.start, d.today, tmp_path / "cli-data")
        rows = {r[report.KEY_NAMES[view]]: r for r in doc["rows"]}
        chart = screen.query_one("#cost-chart", BarChart)
        assert [b.key for b in chart.bars] == [p.key for p in d.periods]
        assert {p.key for p in d.periods if p.tokens.turns} == set(rows)
        assert sum(p.tokens.turns for p in d.periods) == doc["totals"]["turns"] > 100
        read = screen.query_one("#cost-read")
        for i in range(len(chart.bars) - 1, -1, -1):
            chart.cursor = i
            await pilot.pause()
            bar, p = chart.bars[i], d.periods[i]
            row = rows.get(bar.key)
            if row is None:
                assert bar.total == 0 and p.tokens.turns == 0
                continue
            assert bar.total == pytest.approx(row["known_cost_usd"], abs=1e-9)
            assert p.tokens.cost_pico / 1e12 == pytest.approx(row["known_cost_usd"], abs=1e-12)
            assert (p.tokens.turns, p.tokens.input, p.tokens.output) == (
                row["turns"], row["input_tokens"], row["output_tokens"],
            )  # fmt: skip
            assert (p.tokens.cache_read, p.tokens.cache_write, p.tokens.total) == (
                row["cache_read_tokens"], row["cache_write_tokens"], row["total_tokens"],
            )  # fmt: skip
            shown = str(read.render())
            expected = fmt.cost(p.tokens).plain
            if row["cost_usd"] is not None:
                assert expected == fmt.usd(row["cost_usd"])
            assert expected in shown and ui_turns(row["turns"]) in shown
        head = str(screen.query_one("#ins-head").render())
        assert fmt.cost(d.totals).plain in head
        assert d.totals.cost_pico / 1e12 == pytest.approx(doc["totals"]["known_cost_usd"], abs=1e-9)


def _turn(n: int, ts: float, model: str, inp: int, read: int, write: int, write_1h: int, out: int) -> Turn:
    return Turn(
        agent="claude", session_id=f"s{n % 3}", turn_id=f"t{n}", model=model, timestamp=ts, input=inp,
        cache_read=read, cache_write=write, cache_write_1h=write_1h, output=out, project=f"/p/proj{n % 2}",
    )  # fmt: skip


def test_cache_savings_are_exact_per_price_tier() -> None:
    """Net saved = the same turns priced with every prompt token as input, minus as they were
    priced, by the rate card itself, turn by turn; above and below Sonnet's 200k tier."""
    store = Store(make_pricer())
    base = datetime(2026, 3, 20, 12, tzinfo=UTC).timestamp()
    turns = [
        _turn(0, base, SONNET, 10, 150_000, 2_000, 0, 900),  # below the tier
        _turn(1, base + 60, SONNET, 3, 230_000, 5_000, 5_000, 400),  # above: long-context rates
        _turn(2, base + 120, SONNET, 200, 199_000, 999, 500, 50),  # 200,199: just above
        _turn(3, base + 86400, "claude-opus-4-6", 50, 80_000, 9_000, 1_000, 2_000),
        _turn(4, base + 86460, "no-such-model-z", 5, 1_000, 0, 0, 10),
    ]
    store.apply(turns)
    card = store.pricer.card
    expected_net = 0
    for t in turns[:4]:
        c = card("claude", t.model)
        assert c is not None
        uncached = Turn(**{**{f: getattr(t, f) for f in Turn.__slots__}, "input": t.context,  # type: ignore[attr-defined]
                           "cache_read": 0, "cache_write": 0, "cache_write_1h": 0})  # fmt: skip
        expected_net += c.cost_pico(uncached) - c.cost_pico(t)
    assert card("claude", SONNET) is not None and card("claude", SONNET).tiers  # type: ignore[union-attr]
    d = ins.compute(store.ledger, Scope(), ins.Query(7, "day", "model"), date(2026, 3, 22), UTC, card,
                    [("claude", SONNET)])  # fmt: skip
    assert d.saving.net == expected_net
    assert d.saving.unknown_turns == 1 and d.saving.unknown_cache_read == 1_000
    by_model = {m.model: m for m in d.models}
    assert by_model[SONNET].cache_write_1h == 5_500
    assert by_model["no-such-model-z"].saving.read_saved == 0
    assert sum(p.saving.net for p in d.periods) == expected_net
    # the tier split comes from the models seen, even when the hint named none of them
    d2 = ins.compute(store.ledger, Scope(), ins.Query(7, "day", "agent"), date(2026, 3, 22), UTC, card, [])
    assert d2.saving == d.saving


def test_counting_is_sql_and_live_counts_query_today_only() -> None:
    """Two grouped SELECTs for the days before today and two for today, whatever the history
    holds; a live count after a batch queries today alone, until an older turn is read."""
    store = Store(make_pricer())
    base = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    store.apply(_turn(n, base + n * 3600, SONNET, 10, 1000 * n, 100, 0, 50) for n in range(300))
    statements: list[str] = []
    reading = store.ledger.reading

    @contextlib.contextmanager
    def traced() -> Iterator[sqlite3.Connection]:
        with reading() as db:  # (a read connection of the ledger's own)
            db.set_trace_callback(statements.append)
            try:
                yield db
            finally:
                db.set_trace_callback(None)

    store.ledger.reading = traced  # type: ignore[method-assign]
    counter = ins.Counter()

    def count() -> tuple[ins.Insights, list[str]]:
        statements.clear()
        d = counter.count(store.ledger, Scope(), ins.Query(30, "week", "model"), date(2026, 3, 13), UTC,
                          store.pricer.card, [("claude", SONNET)])  # fmt: skip
        return d, [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    d, selects = count()
    assert len(selects) == 4 and all("GROUP BY" in s for s in selects), selects
    assert sum(p.tokens.turns for p in d.periods) == 300  # every turn, Mar 1 to 13
    store.apply([_turn(1000, base + 12 * 86400 + 7200, SONNET, 5, 0, 0, 0, 5)])  # today
    d2, selects = count()
    assert len(selects) == 2 and counter.past_queries == 1
    assert d2.totals.turns == 301
    store.apply([_turn(1001, base + 86400, SONNET, 5, 0, 0, 0, 5)])  # a turn of an older day
    counter.invalidate()
    d3, selects = count()
    assert len(selects) == 4 and d3.totals.turns == 302
    fresh = ins.compute(store.ledger, Scope(), ins.Query(30, "week", "model"), date(2026, 3, 13), UTC,
                        store.pricer.card)  # fmt: skip
    assert fresh.periods == d3.periods and fresh.models == d3.models and fresh.sessions == d3.sessions


def test_ranges_snap_to_whole_periods() -> None:
    assert ins.range_start(TODAY, 30, "day") == date(2026, 2, 25)
    assert ins.range_start(TODAY, 30, "week") == date(2026, 2, 23)  # a Monday
    assert ins.range_start(TODAY, 90, "month") == date(2025, 12, 1)
    assert ins.next_period(date(2026, 12, 1), "month") == date(2027, 1, 1)
    assert ins.period_key(date(2027, 1, 1), "week") == "2026-W53"


def test_chart_helpers_and_labels() -> None:
    assert [nice_ceiling(v) for v in (0.3, 7, 12, 20, 26, 0)] == [0.5, 10, 20, 20, 50, 1.0]
    assert [money_tick(v) for v in (0, 0.25, 2.5, 15, 1500)] == ["$0", "$0.25", "$2.5", "$15", "$1.5k"]
    labels = project_labels(["/a/x/app", "/b/y/app", "/c/tool", "[red]x"])
    assert labels == {"/a/x/app": "x/app", "/b/y/app": "y/app", "/c/tool": "tool", "[red]x": "[red]x"}


# ---------------------------------------------------------------- the view


async def test_keys(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    app = make_app(config=Config.model_validate({"budgets": {"daily": {"usd": 20}}}))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_insights(pilot)
        d = await settled(pilot, screen)
        assert (d.query.days, d.query.bucket, d.query.split) == (30, "day", "agent")
        chart = screen.query_one("#cost-chart", BarChart)
        assert app.focused is chart and len(chart.bars) == 30
        assert chart.limit == 20.0  # the daily budget's line
        assert chart.selected is not None and chart.selected.key == "2026-03-26"  # today
        await pilot.press("left", "left")
        assert chart.selected.key == "2026-03-24"
        assert "Tue Mar 24, 2026" in str(screen.query_one("#cost-read").render())
        await pilot.press("home")
        assert chart.cursor == 0
        await pilot.press("end")
        assert chart.cursor == 29

        await pilot.press("r")  # 90 days
        d = await settled(pilot, screen)
        assert d.query.days == 90 and len(chart.bars) == 90
        await pilot.press("b")  # weeks
        d = await settled(pilot, screen)
        assert d.query.bucket == "week" and all("-W" in b.key for b in chart.bars)
        assert chart.limit == 140.0  # 7 x the daily budget
        await pilot.press("b")  # months: no single line fits months of different lengths
        d = await settled(pilot, screen)
        assert d.query.bucket == "month" and chart.limit is None
        await pilot.press("s")
        d = await settled(pilot, screen)
        assert d.query.split == "model" and set(d.series) >= {SONNET, "claude-opus-4-6"}
        await pilot.press("s")
        d = await settled(pilot, screen)
        assert d.series == ("all",)

        await pilot.press("2")
        projects = screen.query_one("#projects-table", SortTable)
        assert app.focused is projects and projects.sort_key == "cost" and projects.descending
        costs = [r.tokens.cost_pico for r in projects._shown]
        assert costs == sorted(costs, reverse=True)
        await pilot.press("right")  # sort by the next column: last activity
        assert projects.sort_key == "last"
        await pilot.press("o")
        assert not projects.descending
        lasts = [r.last for r in projects._shown]
        assert lasts == sorted(lasts)
        await pilot.press("left", "left", "left", "left", "left")
        assert projects.sort_key == "project" and not projects.descending  # names A to Z
        await pilot.press("tab")
        assert screen.query_one("TabbedContent").active == "models"  # type: ignore[attr-defined]
        await pilot.press("shift+tab", "shift+tab")
        assert screen.query_one("TabbedContent").active == "cost"  # type: ignore[attr-defined]
        await pilot.press("5")
        assert app.focused is screen.query_one("#sessions-table")
        await pilot.press("a", "j")  # dashboard keys do nothing here
        assert isinstance(app.screen, InsightsScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, InsightsScreen)
        await pilot.press("i")  # the same view again, as it was left
        await until(pilot, lambda: app.screen is screen)
        assert screen.query_one("TabbedContent").active == "sessions"  # type: ignore[attr-defined]
        assert screen.spec.days == 90
        await pilot.press("i")
        assert app.screen is not screen


async def test_drill_into_a_project_and_back(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_insights(pilot)
        await settled(pilot, screen)
        sessions = app.query_one(SessionList)
        everyone = sessions.row_count
        await pilot.press("2")
        table = screen.query_one("#projects-table", SortTable)
        target = next(i for i, r in enumerate(table._shown) if r.project.endswith("/tokwatch"))
        table.move_cursor(row=target)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is app._main)
        project = "/home/dev/oss/tokwatch"
        assert sessions.project == project
        keys = [sessions.key_for(r.key) for r in sessions.ordered_rows]
        assert 0 < len(keys) < everyone
        assert all(app.store.sessions[k].project == project for k in keys if k)  # type: ignore[index]
        assert app.store.sessions[app.query_one(Detail).key].project == project  # type: ignore[index]
        assert "tokwatch" in str(app.query_one("#side").border_title)
        assert app.focused is sessions
        await pilot.press("j")  # the list works as usual meanwhile
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert screen.query_one("TabbedContent").active == "projects"  # type: ignore[attr-defined]
        assert sessions.project is None and sessions.row_count == everyone
        await pilot.press("escape")
        assert app.screen is app._main
        await pilot.press("escape")  # no drill-down now: Esc does not reopen the view
        assert app.screen is app._main


async def test_jump_to_a_top_session(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    async with app.run_test(size=(60, 30)) as pilot:
        screen = await open_insights(pilot)
        d = await settled(pilot, screen)
        await pilot.press("a")  # (hidden on this screen: the list keeps all sessions)
        await pilot.press("5", "down", "enter")
        await until(pilot, lambda: app.screen is app._main)
        chosen = sorted(d.sessions, key=lambda r: (r.tokens.cost_pico, r.tokens.total), reverse=True)[1]
        assert app.query_one(Detail).key == chosen.key
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)


async def test_first_open_shows_numbers_at_once(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    """The view is counted ahead once history is read; the first `i` draws those numbers (never
    "counting…"), styles only the first tab (the rest fill in after) and builds its footer once."""
    from tokwatch.ui.footer import KeyFooter

    write_history(ui_root, FIXED_NOW)
    app = make_app()
    builds: list[int] = []
    original = KeyFooter.recompose

    async def counting(self: KeyFooter) -> None:
        builds.append(id(self))
        await original(self)

    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: app.loaded and app._insights is not None and app._insights.data is not None
        )
        ahead = app._insights
        assert ahead is not None and not ahead.is_attached and ahead.data is not None
        assert ahead.data.today == TODAY and ahead.data.totals.turns > 0
        KeyFooter.recompose = counting  # type: ignore[method-assign]
        try:
            await pilot.press("i")
            screen = app.screen
            assert screen is ahead
            head = str(screen.query_one("#ins-head").render())
            assert "counting" not in head and "Mar 26, 2026" in head  # the first frame has numbers
            await settled(pilot, screen)
            await until(pilot, lambda: screen._filled)
            await pilot.pause()
        finally:
            KeyFooter.recompose = original  # type: ignore[method-assign]
        assert builds.count(id(screen.query_one(KeyFooter))) <= 2  # (Textual's own: one per focus change)
        await pilot.press("2")
        table = screen.query_one("#projects-table", SortTable)
        await until(pilot, lambda: table.row_count == len(screen.data.projects) > 0)  # type: ignore[union-attr]


async def test_a_tab_chosen_at_once_is_filled_at_once(
    make_app: Callable[..., TokwatchApp], ui_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tabs after the first are mounted a moment after the first paint; choosing one sooner
    mounts them then, and the chosen table shows its rows."""
    import tokwatch.ui.insights as ui_insights

    monkeypatch.setattr(ui_insights, "FILL_AFTER", 3600.0)  # (the moment after never comes here)
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: app.loaded and app._insights is not None and app._insights.data is not None
        )
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, InsightsScreen) and not screen._filled  # (only the first tab yet)
        await pilot.press("2")
        await until(pilot, lambda: screen._filled)
        table = screen.query_one("#projects-table", SortTable)
        await until(pilot, lambda: table.row_count == len(screen.data.projects) > 0)  # type: ignore[union-attr]
        assert app.focused is table


async def test_a_theme_changed_while_the_view_is_closed_restyles_it(
    make_app: Callable[..., TokwatchApp], ui_root: Path
) -> None:
    """Reopening skips Textual's full restyle unless the app's CSS changed meanwhile (a theme)."""
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.theme = "textual-dark"
        screen = await open_insights(pilot)
        await settled(pilot, screen)
        dark = screen.query_one("#ins-head").styles.background
        await pilot.press("escape")
        await pilot.pause()
        app.theme = "textual-light"
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        assert app.screen is screen
        light = screen.query_one("#ins-head").styles.background
        assert light != dark
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("i")  # the same theme again: nothing to restyle, the same styles
        await pilot.pause()
        assert screen.query_one("#ins-head").styles.background == light


async def test_todays_bar_grows_live(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    write_history(ui_root, FIXED_NOW)
    app = make_app()
    threads: list[str] = []
    original = ins.Counter.count

    def spy(self: ins.Counter, *a: Any, **kw: Any) -> ins.Insights:
        threads.append(threading.current_thread().name)
        return original(self, *a, **kw)

    async with app.run_test(size=(120, 40)) as pilot:
        ins.Counter.count = spy  # type: ignore[method-assign]
        try:
            screen = await open_insights(pilot)
            d = await settled(pilot, screen)
            chart = screen.query_one("#cost-chart", BarChart)
            before = chart.bars[-1].total
            past = screen.counter.past_queries
            turns = d.periods[-1].tokens.turns
            path = ui_root / "claude" / "projects" / "-home-dev-live" / "live-session.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                f.write(claude_line("live-session", "live_1", FIXED_NOW - 30, "claude-opus-4-6", "/home/dev/live",
                                    inp=1000, cache_read=50_000, cache_write=2_000, out=3_000))  # fmt: skip
            await until(
                pilot, lambda: screen.data is not None and screen.data.periods[-1].tokens.turns == turns + 1
            )
            await pilot.pause()
            assert chart.bars[-1].total > before + 0.05  # an Opus turn of 3k output: cents
            assert chart.selected is not None and chart.selected.key == "2026-03-26"
            assert ui_turns(turns + 1) in str(screen.query_one("#cost-read").render())
            assert screen.counter.past_queries == past  # a turn of today: only today was counted
        finally:
            ins.Counter.count = original  # type: ignore[method-assign]
    assert threads and all(t != threading.main_thread().name for t in threads)


def test_bar_chart_draws_every_width() -> None:
    """Fewer bars when narrow, each at least two columns with a gap; the cursor's always shown."""
    from textual.app import App

    class One(App[None]):
        def compose(self) -> Any:
            yield BarChart(id="c")

    async def run(width: int, min_slot: int) -> BarChart:
        app = One()
        async with app.run_test(size=(width, 12)) as pilot:
            c = app.query_one(BarChart)
            c.min_slot = min_slot
            c.set_data([Bar(str(i), f"Mar {i + 1}", str(i + 1), (i * 0.5, 1.0)) for i in range(30)], limit=12)
            await pilot.pause()
            lines = [c.render_line(y).text for y in range(12)]
            assert all(len(line) == width for line in lines)
            assert "Mar 30" in lines[-1]  # the cursor's label, on the newest bar
            assert "╌" in "".join(lines)  # the limit line
            return c

    import asyncio

    narrow = asyncio.run(run(60, 3))
    assert narrow.window < 30 and narrow.first == 30 - narrow.window
    wide = asyncio.run(run(200, 2))
    assert wide.window == 30 and wide.first == 0
