"""Dashboard behaviour through Textual's Pilot, on a temp copy of tests/fixtures/ui with a real engine."""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.text import Text
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot

from tokwatch.core.models import Session, Tokens, Turn
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import export
from tokwatch.ui import format as fmt
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.detail import ContextGauge, Detail, ModelTable, Totals
from tokwatch.ui.help import HelpScreen
from tokwatch.ui.messages import ChangesArrived
from tokwatch.ui.sessions import COLUMN, SessionList, row_key

FIXED_NOW = 1774519200.0  # as in conftest.py: 2026-03-26T10:00:00Z
MARKUP = ("claude", "c0ffee00-1111-4222-8333-444455556666")
CODEX = ("codex", "019c8bfe-ec25-79e0-97d7-bda6a9c575ff")
SPOTTER = ("claude", "4d5611e5-241a-462a-8d15-5122611a9569")
MARKUP_FILE = Path("claude/projects/-home-dev--red-app-on-blue-") / f"{MARKUP[1]}.jsonl"
SONNET = "claude-sonnet-4-5-20250929"


def claude_line(
    session: str, n: int, ts: str, model: str, inp: int, cache_read: int, cache_write: int, out: int, cwd: str
) -> bytes:
    """One Claude Code assistant line, as the agent appends it."""
    return (
        orjson.dumps(
            {
                "isSidechain": False,
                "type": "assistant",
                "cwd": cwd,
                "sessionId": session,
                "message": {
                    "model": model,
                    "id": f"msg_test_{n:04d}",
                    "role": "assistant",
                    "usage": {
                        "input_tokens": inp,
                        "cache_read_input_tokens": cache_read,
                        "cache_creation_input_tokens": cache_write,
                        "output_tokens": out,
                    },
                },
                "requestId": f"req_test_{n:04d}",
                "timestamp": ts,
            }
        )
        + b"\n"
    )


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Short pauses until `cond` holds (a real watchfiles follow answers in well under a second)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def loaded(pilot: Pilot[Any]) -> TokwatchApp:
    app = pilot.app
    assert isinstance(app, TokwatchApp)
    await until(pilot, lambda: app.loaded and app.query_one(SessionList).selected is not None)
    await pilot.pause()
    return app


def order(app: TokwatchApp) -> list[tuple[str, str]]:
    table = app.query_one(SessionList)
    keys = [table.key_for(r.key) for r in table.ordered_rows]
    return [k for k in keys if k is not None]


def cell(app: TokwatchApp, key: tuple[str, str]) -> str:
    return app.query_one(SessionList).get_cell(row_key(key), COLUMN).plain


# ---------------------------------------------------------------- pure formatting


def test_numbers_and_money() -> None:
    assert fmt.tokens(150_000) == "150k"
    assert fmt.tokens(200_000) == "200k"
    assert fmt.tokens(1_534) == "1.53k"
    assert fmt.tokens(1_000) == "1k"
    assert fmt.tokens(999) == "999"
    assert fmt.tokens(30_828_050) == "30.8M"
    assert fmt.usd(0.004) == "<$0.01"
    assert fmt.usd(1.084) == "$1.08"
    assert fmt.duration(5 * 3600 + 61) == "5h 01m"


def test_cost_is_never_a_silent_zero() -> None:
    assert fmt.cost(Tokens(turns=2, cost_pico=2_500_000_000_000)).plain == "$2.50"
    assert fmt.cost(Tokens(turns=2, unpriced_turns=2)).plain == "unknown"
    assert fmt.cost(Tokens(turns=3, unpriced_turns=1, cost_pico=10**12)).plain == "≥$1.00*"


def test_project_names_are_literal() -> None:
    assert fmt.project_name("/home/me/src/tokwatch") == "tokwatch"
    assert fmt.project_name("C:\\Users\\me\\proj") == "proj"
    assert fmt.project_name("[red]x[/red]") == "[red]x[/red]"
    s = Session(agent="claude", session_id="abc", project="[red]x[/red]", last_seen=FIXED_NOW - 60)
    text = fmt.entry(s, FIXED_NOW, True, 60, one_line=True)
    assert "[red]x[/red]" in text.plain
    assert text.cell_len == 60
    assert all(span.style != "red" for span in text.spans)


def test_gauge_bands() -> None:
    assert [fmt.level(p) for p in (None, 10, 49.9, 50, 79, 80, 120)] == [
        "ok",
        "ok",
        "ok",
        "warn",
        "warn",
        "high",
        "high",
    ]


# ---------------------------------------------------------------- the app


async def test_selection_and_keys(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert order(app)[:3] == [MARKUP, CODEX, SPOTTER]  # most recently active first
        assert app.query_one(Detail).key == MARKUP
        assert app.title == "claude · [red]app[on blue] · c0ffee00"
        for key, expected in (("j", CODEX), ("j", SPOTTER), ("k", CODEX), ("down", SPOTTER), ("up", CODEX)):
            await pilot.press(key)
            assert app.query_one(Detail).key == expected  # the main pane follows at once
        assert app.title == "codex · ea96e59ed9 · 019c8bfe"

        await pilot.press("a")  # active only: the one session of the last 30 minutes
        assert order(app) == [MARKUP]
        assert app.query_one(Detail).key == MARKUP
        await pilot.press("a")
        assert len(order(app)) == 5

        await pilot.press("slash", *"opus")  # filter by model
        assert order(app) == [SPOTTER]
        assert app.query_one(Detail).key == SPOTTER
        await pilot.press("escape")
        assert len(order(app)) == 5
        assert app.focused is app.query_one(SessionList)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("q")
        await pilot.pause()
        assert app._stop.is_set()
    assert app.return_code == 0


async def test_appended_turn_updates_gauge_and_totals(
    make_app: Callable[..., TokwatchApp], ui_root: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        models = app.query_one(ModelTable)
        sessions = app.query_one(SessionList)
        rebuilds: list[str] = []
        for table in (models, sessions):
            original = table.clear

            def spy(*a: Any, _orig: Any = original, _name: str = table.id or "", **kw: Any) -> Any:
                rebuilds.append(_name)
                return _orig(*a, **kw)

            table.clear = spy  # type: ignore[method-assign]
        gauge = app.query_one(ContextGauge)
        assert (gauge.used, gauge.window) == (121_012, 200_000)
        await pilot.pause(0.3)  # let the watcher start

        started = time.monotonic()
        line = claude_line(MARKUP[1], 9, "2026-03-26T09:58:00.000Z", SONNET, 20, 150_000, 10_000, 500, "/x")
        append(ui_root / MARKUP_FILE, line)
        await until(pilot, lambda: gauge.used == 160_020)
        assert time.monotonic() - started < 1.0
        await pilot.pause()

        assert round(gauge.percent or 0) == 80
        figures = {f.label: f.value.plain for f in app.query_one(Totals).figures}
        assert figures["Turns"] == "5"
        assert figures["Cache read"] == fmt.tokens(194_000 + 150_000)
        assert models.get_cell(SONNET, "turns").plain.strip() == "4"
        assert "ctx 80%" in cell(app, MARKUP)
        assert "2 minutes ago" in cell(app, MARKUP)  # the frozen clock: 10:00 - 09:58
        assert rebuilds == []  # cells were updated in place


async def test_new_session_appears_and_selection_stays(
    make_app: Callable[..., TokwatchApp], ui_root: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("j", "j")
        assert app.query_one(Detail).key == SPOTTER
        await pilot.pause(0.3)

        new_id = "feedbeef-0000-4000-8000-000000000001"
        folder = ui_root / "claude" / "projects" / "-home-dev-brand-new"
        folder.mkdir()
        line = claude_line(
            new_id, 1, "2026-03-26T09:59:00.000Z", SONNET, 10, 0, 5_000, 100, "/home/dev/brand-new"
        )
        append(folder / f"{new_id}.jsonl", line)
        await until(pilot, lambda: ("claude", new_id) in order(app))

        assert order(app)[0] == ("claude", new_id)  # newest on top
        table = app.query_one(SessionList)
        assert table.selected == SPOTTER  # the list re-sorted, the selection did not move
        assert table.cursor_row == order(app).index(SPOTTER)
        assert app.query_one(Detail).key == SPOTTER
        assert "brand-new" in cell(app, ("claude", new_id))


async def test_export_key_writes_the_export_csv(make_app: Callable[..., TokwatchApp], tmp_path: Path) -> None:
    app = make_app()
    notes: list[Notify] = []

    def hook(message: Message) -> None:
        if isinstance(message, Notify):
            notes.append(message)

    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await loaded(pilot)
        await pilot.press("e")
        await pilot.pause()
        stamp = datetime.fromtimestamp(FIXED_NOW).strftime("%Y%m%d-%H%M%S")
        path = tmp_path / "exports" / f"tokwatch-{stamp}.csv"
        assert app.last_export == path
        text = path.read_text(encoding="utf-8")
        assert text == export.to_csv(export.rows(app.store))
        table = list(csv.reader(io.StringIO(text)))
        assert table[0] == export.COLUMNS
        assert len(table) == 1 + 7  # one row per (session, model)
        assert any(str(path) in n.notification.message for n in notes)

        await pilot.press("e")  # same second: a second file, the first one kept
        await pilot.pause()
        assert app.last_export == path.with_name(f"tokwatch-{stamp}-2.csv")
        assert path.exists()


async def test_narrow_layout(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(60, 30)) as pilot:
        await loaded(pilot)
        side, detail = app.query_one("#side"), app.query_one(Detail)
        assert app.screen.has_class("-narrow")
        assert side.region.width == 60 and side.region.bottom <= detail.region.y  # list on top
        assert side.region.height <= 10
        table = app.query_one(SessionList)
        assert table.one_line and all(r.height == 1 for r in table.ordered_rows)
        assert [c.key.value for c in app.query_one(ModelTable).ordered_columns] == [
            "model",
            "turns",
            "total",
            "cost",
        ]
        assert "in" in [f.short for f in app.query_one(Totals).figures]

        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: not table.one_line)
        await pilot.pause()
        assert not app.screen.has_class("-narrow")
        assert side.region.right <= detail.region.x  # side by side again
        assert all(r.height == 2 for r in table.ordered_rows)
        assert len(app.query_one(ModelTable).ordered_columns) == 8
        assert table.selected == MARKUP


async def test_log_text_is_shown_literally(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        turn = Turn(
            agent="gemini",
            session_id="[b]sid[/b]-0001",
            turn_id="1",
            model="[blink]m[/blink]",
            timestamp=FIXED_NOW - 10,
            input=5,
            output=5,
            project="[red]x[/red]",
        )
        app.post_message(ChangesArrived(app.store.apply([turn])))  # as the engine thread does
        await until(pilot, lambda: ("gemini", turn.session_id) in order(app))
        assert "[red]x[/red]" in cell(app, ("gemini", turn.session_id))
        await pilot.press("k")  # it is the newest: on top, above the selection
        assert app.title == "gemini · [red]x[/red] · [b]sid[/"
        assert app.format_title(app.title, "").plain == app.title
        assert (
            app.query_one(ModelTable).get_cell("[blink]m[/blink]", "model").plain.strip()
            == "[blink]m[/blink]"
        )
        assert app.query_one(ModelTable).get_cell("[blink]m[/blink]", "cost").plain.strip() == "unknown"


async def test_demo_marker(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app(demo=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert app.sub_title == "demo"
        assert app.format_title(app.title, app.sub_title).plain.endswith("demo")
        for theme in ("textual-light", "nord"):  # the gauge colours come from the theme
            app.theme = theme
            await pilot.pause()
            assert app.query_one(ContextGauge).render().plain.startswith("Context")


async def test_clock_refreshes_ago_and_active(make_app: Callable[..., TokwatchApp]) -> None:
    now = [FIXED_NOW]
    app = make_app(clock=lambda: now[0], tick_seconds=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert "5 minutes ago" in cell(app, MARKUP)
        await pilot.press("a")
        assert order(app) == [MARKUP]
        now[0] += 26 * 60  # 31 minutes after its last turn: no longer active
        await until(pilot, lambda: order(app) == [])
        await until(pilot, lambda: app.query_one(Detail).key is None)  # the empty state
        await pilot.press("a")
        assert "31 minutes ago" in cell(app, MARKUP)


@pytest.mark.parametrize("size", [(120, 40), (60, 30)])
async def test_help_lists_every_key(make_app: Callable[..., TokwatchApp], size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await loaded(pilot)
        keys = dict(app.help_keys())
        assert {"a", "/", "e", "?", "q", "ctrl+p"} <= set(keys)
        assert any(k.startswith("j/k") for k in keys)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)


def test_entry_width_is_exact() -> None:
    s = Session(agent="codex", session_id="x", project="/a/" + "long" * 30, last_seen=FIXED_NOW - 3600)
    for width in (30, 40, 58):
        two = fmt.entry(s, FIXED_NOW, False, width, one_line=False)
        assert [Text(line).cell_len for line in two.plain.split("\n")] == [width, width]


def test_burn_rate_uses_the_latest_run_of_turns() -> None:
    s = Session(agent="claude", session_id="x")
    s.recent, s.recent_ts, s.recent_cost = [100, 200, 300, 400], [0, 10_000, 10_060, 10_120], [1, 2, 3, None]
    b = fmt.burn(s)  # the week-old first turn is not part of the run
    assert (b.turns, b.tokens_per_min) == (3, 350.0)
    assert b.cost_per_hour is not None and b.cost_per_hour.plain.startswith("≥")
    s.recent_ts = [0, 10, 20, 10_000]
    assert fmt.burn(s).tokens_per_min is None  # the newest turn follows a long pause
    s.recent_ts = [0, 1, 2, 3]
    assert fmt.burn(s).tokens_per_min == 900.0  # a burst counts as one minute, not 3 seconds


async def test_usable_while_history_loads(ui_root: Path) -> None:
    from tokwatch.core.store import Changes, Store
    from tokwatch.ingest.engine import Engine, Progress

    release = threading.Event()

    class SlowEngine(Engine):
        def backfill(self, progress: Callable[[Progress], None] | None = None) -> Changes:
            if progress:
                progress(Progress(files_done=0, files_total=7, bytes_done=0, bytes_total=100))
            release.wait(10)
            return super().backfill(progress)

    app = TokwatchApp(SlowEngine(Store(make_pricer()), [ui_root]), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "0/7 files" in str(app.query_one("#loading-label").render()))
        assert app.query_one("#loading").display and not app.loaded
        await pilot.press("question_mark")  # the UI answers while the worker reads
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        release.set()
        await loaded(pilot)
        assert not app.query_one("#loading").display
        assert app.query_one(Detail).key == MARKUP


async def test_narrow_header_keeps_the_whole_short_id(make_app: Callable[..., TokwatchApp]) -> None:
    """At 60 columns a long project name gives way; agent and the 8-character id stay whole."""
    app = make_app()
    async with app.run_test(size=(60, 30)) as pilot:
        await loaded(pilot)
        with app.store.lock:
            gemini = next(s for s in app.store.sessions.values() if len(s.project) > 40)
        app.query_one(Detail).show(gemini.key)
        app._update_title()
        await pilot.pause()
        assert app.title.startswith(f"{gemini.agent} · ")
        assert app.title.endswith(f" · {gemini.session_id[:8]}")
        assert len(app.title) <= 60 - 28


def test_ago_changes_at_never_skips_a_change() -> None:
    """The clock skips a row until `ago_changes_at`: 'x ago' must read the same until then, at any
    age (seconds, rounded minutes and hours with their round-half-to-even, days, months)."""
    ts = 1_700_000_000.25
    ages = [0, 0.5, 59.5, 60, 89, 90, 149.9, 150, 150.5, 151, 3599, 3600, 5399, 5400, 9000, 86399, 86400]
    ages += [86400 * d + 3 for d in (1, 15, 45, 200, 400, 800)]
    for age in ages:
        now = ts + age
        due = fmt.ago_changes_at(ts, now)
        assert due > now
        span = due - now
        steps = [span * i / 400 for i in range(400)] + [float(i) for i in range(int(span))]
        shown = fmt.ago(ts, now)
        assert all(fmt.ago(ts, now + x) == shown for x in steps if now + x < due), age
    assert fmt.ago_changes_at(0, ts) == math.inf
    # six hours of a 1 s clock: every tick either skips a row whose text cannot have changed or
    # looks again; the look-agains are a few hundred, not 21,600
    shown, due, looks = "", 0.0, 0
    for tick in range(6 * 3600):
        now = ts + 0.4 + tick
        if now >= due:
            shown, due, looks = fmt.ago(ts, now), fmt.ago_changes_at(ts, now), looks + 1
        else:
            assert fmt.ago(ts, now) == shown, tick
    assert looks < 500
