"""Dashboard additions: the Today / block strip, budget alarms, skipped lines, archived sessions, tiny terminals.

Pilot tests against a real engine on temp folders, like tests/test_ui.py (whose helpers they reuse).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from test_ui import CODEX, FIXED_NOW, MARKUP, SONNET, append, cell, claude_line, loaded, until
from textual.geometry import Region
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import Static

from tokwatch.config import Config
from tokwatch.core import blocks as blk
from tokwatch.core.models import Session, Tokens, Turn, iso
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.reports.budgets import Budget, BudgetsConfig, BudgetState, Usage
from tokwatch.ui import format as fmt
from tokwatch.ui import strip
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.detail import Detail
from tokwatch.ui.help import LEGEND, HelpScreen
from tokwatch.ui.sessions import SessionList
from tokwatch.ui.skipped import SkippedScreen, skipped_table
from tokwatch.ui.strip import TodayStrip

SESSION = "5e55a000-0000-4000-8000-000000000001"
OTHER = "5e55a000-0000-4000-8000-000000000002"
HOUR = 3600.0


def turn_line(n: int, ts: float, tokens: int, session: str = SESSION, model: str = SONNET) -> bytes:
    """A Claude turn of exactly `tokens` tokens (half input, half output)."""
    return claude_line(
        session, n, iso(ts), model, tokens // 2, 0, 0, tokens - tokens // 2, "/home/dev/budget"
    )


def claude_file(root: Path, session: str = SESSION, folder: str = "-home-dev-budget") -> Path:
    path = root / "claude" / "projects" / folder / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def build_app(root: Path, tmp_path: Path, config: Config | None = None, **kw: Any) -> TokwatchApp:
    config = config or Config()
    engine = Engine(Store(make_pricer(config)), [root], debounce_ms=20, step_ms=10)
    kw.setdefault("clock", lambda: FIXED_NOW)
    kw.setdefault("tz", UTC)
    return TokwatchApp(engine, config=config, export_dir=tmp_path / "exports", **kw)


def screen_text(app: TokwatchApp) -> str:
    """What the terminal shows, as plain text (from the SVG screenshot: one <text> run per style)."""
    svg = app.export_screenshot()
    return html.unescape(svg).replace("\xa0", " ")


def strip_text(app: TokwatchApp) -> str:
    return app.query_one(TodayStrip).render().plain


class Recorder:
    """Notifications (via the message hook) and bells (by replacing `App.bell` on the instance)."""

    def __init__(self) -> None:
        self.notes: list[Notify] = []
        self.bells = 0

    def hook(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.notes.append(message)

    def attach(self, app: TokwatchApp) -> None:
        def bell() -> None:
            self.bells += 1

        app.bell = bell  # type: ignore[method-assign]

    def budget(self) -> list[str]:
        return [n.notification.message for n in self.notes if n.notification.title.startswith("Budget")]


# ---------------------------------------------------------------- the strip, pure


def _usage(today: Tokens, block: blk.Block | None) -> Usage:
    return Usage(now=FIXED_NOW, day="2026-03-26", today=today, block=block)


def test_strip_is_one_line_wide_and_two_when_narrow() -> None:
    t = Tokens(turns=42, input=1_000_000, output=560_000, cost_pico=1_930_000_000_000)
    b = blk.Block(start=FIXED_NOW - HOUR, first=FIXED_NOW - 50 * 60, last=FIXED_NOW - 10, tokens=t)
    u = _usage(t, b)
    states = {
        "daily": BudgetState("daily", "usd", 1.93, 5.0, False),
        "block": BudgetState("block", "tokens", 1_560_000, 2_000_000, False),
    }
    wide = strip.lines(u, states, (), FIXED_NOW, 118)
    assert len(wide) == 1
    text = wide[0].plain
    for part in ("Today", "$1.93", "1.56M", "42 turns", "daily", "39%", "Block", "4h 00m left", "block 78%"):
        assert part in text
    assert "$2.32/h → $11.19" in text  # $1.93 over 50 minutes, 4 more hours at that pace
    narrow = strip.lines(u, states, ("claude",), FIXED_NOW, 58)
    assert len(narrow) == 2 and all(line.cell_len == 58 for line in narrow)
    assert narrow[0].plain.startswith("Today (claude)") and "daily 39%" in narrow[0].plain
    assert narrow[1].plain.startswith("Block") and "left" in narrow[1].plain
    for width in (1, 5, 20, 30):  # never wider than the room, never an error
        assert all(line.cell_len <= width for line in strip.lines(u, states, (), FIXED_NOW, width))


def test_strip_costs_are_never_a_silent_zero() -> None:
    unpriced = Tokens(turns=3, input=300, output=300, unpriced_turns=3)
    b = blk.Block(start=FIXED_NOW - HOUR, first=FIXED_NOW - 30 * 60, last=FIXED_NOW, tokens=unpriced)
    text = strip.lines(_usage(unpriced, b), {}, (), FIXED_NOW, 200)[0].plain
    assert "$0" not in text
    assert "unknown" in text and "tok/min" in text  # the pace in tokens when nothing is priced
    some = Tokens(turns=3, input=300, output=300, unpriced_turns=1, cost_pico=10**12)
    b = blk.Block(start=FIXED_NOW - HOUR, first=FIXED_NOW - 30 * 60, last=FIXED_NOW, tokens=some)
    daily = BudgetState("daily", "usd", 1.0, 2.0, True)
    text = strip.lines(_usage(some, b), {"daily": daily}, (), FIXED_NOW, 200)[0].plain
    assert "≥$1.00*" in text and "≥$2.00*/h" in text and "≥50%" in text


def test_strip_without_a_block_or_history() -> None:
    u = _usage(Tokens(), None)
    text = strip.lines(u, {}, (), FIXED_NOW, 118)[0].plain
    assert "no turns yet" in text and "No active block" in text
    assert "reading history" in strip.lines(None, {}, (), FIXED_NOW, 118)[0].plain
    ended = blk.Block(start=FIXED_NOW - 6 * HOUR, first=FIXED_NOW - 6 * HOUR, tokens=Tokens(turns=1))
    assert "No active block" in strip.lines(_usage(Tokens(), ended), {}, (), FIXED_NOW, 118)[0].plain


# ---------------------------------------------------------------- the strip, live


async def test_strip_follows_batches(make_app: Callable[..., TokwatchApp], ui_root: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await until(pilot, lambda: app.usage is not None)
        assert app.usage is not None
        turns = app.usage.today.turns
        shown = strip_text(app)
        assert shown.startswith("Today") and f"{turns} turns" in shown and "4h 00m left" in shown
        assert "≥$" in shown  # a model without a price: a lower bound, never $0
        assert app.query_one(TodayStrip).region.y == 1  # right under the header, one line
        assert app.query_one(TodayStrip).region.height == 1
        first = app.usage

        await pilot.pause(0.3)  # let the watcher start
        line = claude_line(MARKUP[1], 9, "2026-03-26T09:58:00.000Z", SONNET, 20, 150_000, 10_000, 500, "/x")
        append(ui_root / "claude/projects/-home-dev--red-app-on-blue-" / f"{MARKUP[1]}.jsonl", line)
        await until(pilot, lambda: app.usage is not None and app.usage.today.turns == turns + 1)
        assert app.usage is not first
        assert f"{turns + 1} turns" in strip_text(app)

        await pilot.resize_terminal(60, 30)
        await until(pilot, lambda: app.query_one(TodayStrip).region.height == 2)
        assert "Block" in strip_text(app).split("\n")[1]


async def test_strip_countdown_follows_the_clock(make_app: Callable[..., TokwatchApp]) -> None:
    now = [FIXED_NOW]
    app = make_app(clock=lambda: now[0], tick_seconds=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await until(pilot, lambda: app.usage is not None)
        assert "4h 00m left" in strip_text(app)
        now[0] += 3 * HOUR + 30 * 60
        await until(pilot, lambda: "30m left" in strip_text(app))
        now[0] += HOUR  # the block is over: the clock asks for fresh usage, which has none running
        await until(pilot, lambda: app.usage is not None and app.usage.block is None)
        assert "No active block" in strip_text(app)


# ---------------------------------------------------------------- budget alarms


async def test_daily_budget_alarm_rings_once_per_threshold(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    log = claude_file(root)
    log.write_bytes(turn_line(1, FIXED_NOW - 10 * 60, 100))
    config = Config(budgets=BudgetsConfig(daily=Budget(tokens=1000)))
    app = build_app(root, tmp_path, config)
    rec = Recorder()
    rec.attach(app)
    async with app.run_test(size=(120, 40), message_hook=rec.hook) as pilot:
        await loaded(pilot)
        await until(pilot, lambda: app.usage is not None)
        assert "daily" in strip_text(app) and "10%" in strip_text(app)
        assert rec.budget() == [] and rec.bells == 0
        await pilot.pause(0.3)

        def today() -> int:
            return app.usage.today.total if app.usage else 0

        for n, (tokens, total) in enumerate(((750, 850), (200, 1050), (10, 1060), (5, 1065)), start=2):
            append(log, turn_line(n, FIXED_NOW - 60 + n, tokens))
            await until(pilot, lambda total=total: today() == total)
            await pilot.pause(0.05)

        messages = rec.budget()
        assert [m for m in messages if "at 80%" in m] == ["Daily budget at 80%: 85% (850 of 1,000 tokens)"]
        assert [m for m in messages if "exceeded" in m] == [
            "Daily budget exceeded: 105% (1,050 of 1,000 tokens)"
        ]
        assert len(messages) == 2 and rec.bells == 2
        assert all(n.notification.markup is False for n in rec.notes)
        assert "106%" in strip_text(app)


async def test_session_budget_alarm_any_session(tmp_path: Path) -> None:
    """A session crossing its budget is announced, whichever is selected; an old one never is."""
    root = tmp_path / "logs"
    old = claude_file(root, OTHER, "-home-dev-old")
    old.write_bytes(turn_line(1, FIXED_NOW - 10 * 86400, 5000, OTHER))  # over budget, long ago
    log = claude_file(root)
    log.write_bytes(turn_line(1, FIXED_NOW - 10 * 60, 100))
    config = Config(budgets=BudgetsConfig(session=Budget(tokens=1000), block=Budget(tokens=100_000)))
    app = build_app(root, tmp_path, config)
    rec = Recorder()
    rec.attach(app)
    async with app.run_test(size=(120, 40), message_hook=rec.hook) as pilot:
        await loaded(pilot)
        await until(pilot, lambda: app.usage is not None)
        await pilot.press("j")  # select the old session: alarms are not about the selection
        assert app.query_one(Detail).key == ("claude", OTHER)
        await pilot.pause(0.3)
        append(log, turn_line(2, FIXED_NOW - 30, 2000))
        await until(pilot, lambda: len(rec.budget()) == 1)
        await pilot.pause(0.1)
        assert rec.budget() == ["Session budget exceeded: 210% (2,100 of 1,000 tokens)"]
        note = next(n.notification for n in rec.notes if n.notification.title.startswith("Budget"))
        assert note.title == "Budget · claude · budget" and note.severity == "error"
        assert rec.bells == 1
        assert "block 2%" in strip_text(app)


# ---------------------------------------------------------------- skipped lines


async def test_skipped_lines_marker_and_list(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    log = claude_file(root, folder="-tmp-[red]x")
    log.write_bytes(b"garbage\n" + turn_line(1, FIXED_NOW - 60, 100) + b"<<<>>>\n]]]\n")
    app = build_app(root, tmp_path, tick_seconds=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert app.engine.skips.lines == 3
        assert app.sub_title == "⚠ 3 skipped"
        assert app.format_title(app.title, app.sub_title).plain.endswith("⚠ 3 skipped")
        assert "⚠ 3 skipped" in screen_text(app)
        keys = dict(app.help_keys())
        assert "!" in keys and "skipped" in app._bound()

        await pilot.pause(0.3)
        append(log, b"not json\nnor this\n")  # garbage only: no batch, the clock notices
        await until(pilot, lambda: app.sub_title == "⚠ 5 skipped")

        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert isinstance(app.screen, SkippedScreen)
        assert app.screen.by_file == {log: 5}
        head = app.screen.query_one("#skipped-head", Static)
        assert "5 skipped lines in 1 file" in str(head.render())
        listing = app.screen.query_one("#skipped-list", Static)
        rendered = listing.render_lines(Region(0, 0, *listing.size))
        # the whole path, `[red]` folder and all, as written (a long path folds onto more lines)
        assert "".join(line.text.strip() for line in rendered) == f"5  {log}"
        await pilot.press("exclamation_mark")
        assert not isinstance(app.screen, SkippedScreen)


def test_skipped_table_paths_are_literal() -> None:
    path = Path("/logs/[bold]b[/bold]/x.jsonl")
    table = skipped_table({path: 2, Path("/a.jsonl"): 7, Path("/none.jsonl"): 0})
    counts, paths = (list(c.cells) for c in table.columns)
    assert [t.plain for t in paths] == ["/a.jsonl", str(path)]  # most first; zero counts left out
    assert [t.plain for t in counts] == ["7", "2"]
    assert all(isinstance(t, Text) and not t.spans for t in paths)


async def test_skipped_screen_without_skips(make_app: Callable[..., TokwatchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(60, 30)) as pilot:
        await loaded(pilot)
        assert app.sub_title == ""
        await pilot.press("exclamation_mark")
        assert isinstance(app.screen, SkippedScreen)
        assert "No skipped lines" in str(app.screen.query_one("#skipped-head", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SkippedScreen)


# ---------------------------------------------------------------- archived sessions


def test_archived_entry_mark() -> None:
    s = Session(agent="codex", session_id="x", project="/a/proj", last_seen=FIXED_NOW - 3600, archived=True)
    two = fmt.entry(s, FIXED_NOW, False, 40, one_line=False)
    assert "an hour ago · archived" in two.plain.split("\n")[1]
    one = fmt.entry(s, FIXED_NOW, False, 58, one_line=True)
    assert "proj archived" in one.plain and one.cell_len == 58
    assert any(span.style == "dim" for span in one.spans)
    s.archived = False
    assert "archived" not in fmt.entry(s, FIXED_NOW, False, 58, one_line=True).plain


async def test_archived_session_in_the_list(ui_root: Path, tmp_path: Path) -> None:
    store = Store(make_pricer())
    gone = Turn(
        agent="claude",
        session_id="a4c41ed0-0000-4000-8000-000000000001",
        turn_id="t1",
        model=SONNET,
        timestamp=FIXED_NOW - 3 * 86400,
        input=10,
        output=10,
        project="/home/dev/deleted-project",
    )
    store.apply([gone])
    key = ("claude", gone.session_id)
    store.sessions[key].archived = True
    engine = Engine(store, [ui_root], debounce_ms=20, step_ms=10)
    app = TokwatchApp(engine, clock=lambda: FIXED_NOW, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert "3 days ago · archived" in cell(app, key)
        assert "archived" not in cell(app, MARKUP)
        assert any("archived" in mark.split() for mark, _ in LEGEND)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "the session's log files were deleted" in screen_text(app)
        await pilot.press("escape")
        await pilot.resize_terminal(60, 30)
        await until(pilot, lambda: app.query_one(SessionList).one_line)
        await pilot.pause()
        assert "archived  3 days ago" in cell(app, key)  # the name gives up its room first
        assert Text(cell(app, key)).cell_len == app.query_one(SessionList).entry_width


# ---------------------------------------------------------------- small terminals, literal text


@pytest.mark.parametrize("start", [(120, 40), (20, 5)])
async def test_tiny_terminals_do_not_crash(
    make_app: Callable[..., TokwatchApp], start: tuple[int, int]
) -> None:
    app = make_app(tick_seconds=0.05)
    async with app.run_test(size=start) as pilot:
        await loaded(pilot)
        for size in ((30, 8), (20, 5), (10, 3), (30, 8)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.15)  # a few clock ticks at this size
            assert app.is_running
        await pilot.press("question_mark")  # a modal at 30 x 8
        await pilot.pause()
        await pilot.press("escape")
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: not app.query_one(SessionList).one_line)
        await pilot.pause()
        await pilot.press("j")
        assert app.query_one(Detail).key == CODEX  # still answering keys
        assert app.is_running
        await pilot.press("q")
    assert app.return_code == 0


async def test_markup_in_a_project_name_renders_literally(make_app: Callable[..., TokwatchApp]) -> None:
    """The fixture's project folder is `[red]app[on blue]`: the screen shows the brackets."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        text = screen_text(app)
        assert "claude · [red]app[on blue] · c0ffee00" in text  # the header
        assert text.count("[red]app[on blue]") >= 2  # and the session list
