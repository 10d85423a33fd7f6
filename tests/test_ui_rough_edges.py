"""Dashboard rough edges seen at 100x30, 60x30, 200x50 (issue 11): keys that move the list,
the filter's selection, the help's size, the palette, the remembered theme, wide layouts, the
token unit, Gemini project names, and windows that are unknown or only assumed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.pilot import Pilot

from tokwatch.config import Config, load_config
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.ui.app import TokwatchApp
from tokwatch.ui.detail import ContextGauge, Detail, ModelTable
from tokwatch.ui.help import HelpScreen
from tokwatch.ui.sessions import SessionList

NOW = 1774519200.0  # 2026-03-26T10:00:00Z
SESSIONS = 25  # two pages of the list at 100 x 30 (the last one, proj-24, is no `alpha`)
ALPHA = sum(1 for i in range(SESSIONS) if i % 5 == 3)  # the sessions whose project matches `alpha`


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def assistant(
    sid: str, n: int, ts: float, cwd: str, usage: dict[str, int], model: str = "claude-opus-4-6"
) -> bytes:
    return (
        orjson.dumps(
            {
                "isSidechain": False,
                "type": "assistant",
                "cwd": cwd,
                "sessionId": sid,
                "message": {"model": model, "id": f"msg_{sid[:8]}_{n}", "role": "assistant", "usage": usage},
                "requestId": f"req_{sid[:8]}_{n}",
                "timestamp": iso(ts),
            }
        )
        + b"\n"
    )


USAGE = {
    "input_tokens": 3,
    "cache_read_input_tokens": 20_000,
    "cache_creation_input_tokens": 500,
    "output_tokens": 90,
}


def sid(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-000000000000"


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """SESSIONS Claude sessions, session i last active i minutes before NOW; projects proj-00,
    proj-01, ..., every fifth one also matching `alpha`."""
    root = tmp_path / "logs" / "claude" / "projects"
    for i in range(SESSIONS):
        name = f"proj-{i:02d}" + ("-alpha" if i % 5 == 3 else "")
        folder = root / f"-home-dev-{name}"
        folder.mkdir(parents=True)
        (folder / f"{sid(i)}.jsonl").write_bytes(
            assistant(sid(i), 0, NOW - 60 * i, f"/home/dev/{name}", USAGE)
        )
    return tmp_path / "logs"


def app_over(root: Path, **kw: Any) -> TokwatchApp:
    config = kw.pop("config", None) or Config()
    engine = Engine(Store(make_pricer(config)), [root], debounce_ms=20, step_ms=10)
    kw.setdefault("clock", lambda: NOW)
    return TokwatchApp(engine, config=config, **kw)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 10.0) -> None:
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


def selected_project(app: TokwatchApp) -> str:
    key = app.query_one(SessionList).selected
    assert key is not None
    return app.store.sessions[key].project.rsplit("/", 1)[-1]


def row_visible(table: SessionList) -> bool:
    """The cursor row lies within the list's visible part."""
    height = 1 if table.one_line else 2
    top = table.cursor_row * height
    return table.scroll_y <= top and top + height <= table.scroll_y + table.scrollable_content_region.height


async def test_home_end_page_keys_move_the_selection(many: Path) -> None:
    async with app_over(many).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        table = app.query_one(SessionList)
        assert selected_project(app) == "proj-00"
        await pilot.press("end")
        await pilot.pause()
        assert selected_project(app) == f"proj-{SESSIONS - 1:02d}" and row_visible(table)
        await pilot.press("home")
        await pilot.pause()
        assert selected_project(app) == "proj-00" and row_visible(table)
        await pilot.press("pagedown")
        await pilot.pause()
        down = table.cursor_row
        assert down > 5 and row_visible(table)
        assert app.query_one(Detail).key == table.selected  # the main pane follows
        await pilot.press("pageup")
        await pilot.pause()
        assert table.cursor_row < down


async def test_filter_selects_the_newest_match_and_shows_it(many: Path) -> None:
    async with app_over(many).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        table = app.query_one(SessionList)
        await pilot.press("end")  # the selection far down the list, out of the filter's matches
        await pilot.pause()
        await pilot.press("slash", *"alpha")
        await pilot.pause()
        assert table.row_count == ALPHA
        assert selected_project(app) == "proj-03-alpha"  # the newest match
        assert table.cursor_row == 0 and row_visible(table)
        assert app.query_one(Detail).key == table.selected


async def test_fast_typing_after_slash_loses_no_letter(many: Path) -> None:
    """A terminal delivers `/alp` as one burst of keys; none may reach the list instead."""
    from textual import events

    async with app_over(many).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        for key, char in (("slash", "/"), ("a", "a"), ("l", "l"), ("p", "p")):
            app.post_message(events.Key(key, char))  # queued together, as the driver does
        await pilot.pause()
        await pilot.pause()
        assert app.query_one("#filter").value == "alp"
        await pilot.press("slash")  # in the box, `/` is a character like any other
        assert app.query_one("#filter").value == "alp/"


async def test_escape_in_the_list_clears_the_filter(many: Path) -> None:
    async with app_over(many).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        table = app.query_one(SessionList)
        await pilot.press("slash", *"alpha", "enter")  # keep the filter, back to the list
        await pilot.pause()
        assert table.has_focus and table.row_count == ALPHA
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == SESSIONS
        assert app.query_one("#filter").value == ""
        assert not app.query_one("#filter").has_class("-visible")


@pytest.mark.parametrize("size", [(100, 30), (60, 30)])
async def test_help_fits_the_screen(many: Path, size: tuple[int, int]) -> None:
    async with app_over(many).run_test(size=size) as pilot:
        app = await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help-box")
        if size == (100, 30):
            assert box.max_scroll_y == 0  # all of it visible
        else:  # narrower: it wraps, and scrolls with the keys
            assert box.show_vertical_scrollbar
            await pilot.press("pagedown")
            await pilot.pause()
            assert box.scroll_y > 0


async def test_the_palette_offers_one_keys_entry(many: Path) -> None:
    async with app_over(many).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert [t for t in titles if "keys" in t.lower()] == ["Keys and legend"]


async def test_the_theme_is_remembered_in_the_config(many: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\nactive_minutes = 30\n\n[budgets]\ndaily = { usd = 5 }\n")
    config = load_config(path)
    async with app_over(many, config=config, config_path=path).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        app.theme = "nord"
        await pilot.pause()
    saved = load_config(path)
    assert saved.theme == "nord" and saved.budgets.daily is not None  # the rest is kept
    assert path.read_text().startswith("# mine\n")
    async with app_over(many, config=saved, config_path=path).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        assert app.theme == "nord"


async def test_a_wide_screen_is_used(many: Path) -> None:
    async with app_over(many).run_test(size=(200, 50)) as pilot:
        app = await loaded(pilot)
        side = app.query_one("#side")
        assert side.size.width > 42  # the list grows: names are cut less than at 100 columns
        table = app.query_one(ModelTable)
        model = table.columns[next(k for k in table.columns if k.value == "model")]
        # the numbers stay next to the names: the model column does not take the extra width
        assert table.size.width > 130 and model.width <= 40


async def test_one_token_unit_across_the_screen(many: Path) -> None:
    async with app_over(many).run_test(size=(200, 50)) as pilot:
        app = await loaded(pilot)
        await until(pilot, lambda: app.usage is not None)
        await pilot.pause()
        text = "\n".join(str(w.render()) for w in app.query("TodayStrip, Totals"))
        assert " tok" in text and "tokens" not in text


def test_all_zero_usage_is_not_a_turn_and_never_moves_the_gauge(tmp_path: Path) -> None:
    root = tmp_path / "logs" / "claude" / "projects" / "-p"
    root.mkdir(parents=True)
    zero = {
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens": 0,
    }
    lines = [
        assistant(sid(1), 0, NOW - 60, "/p", USAGE),
        assistant(sid(1), 1, NOW - 30, "/p", zero),
        assistant(sid(1), 2, NOW - 10, "/p", {}),
    ]
    (root / f"{sid(1)}.jsonl").write_bytes(b"".join(lines))
    engine = Engine(Store(make_pricer()), [tmp_path / "logs"])
    engine.backfill()
    s = engine.store.sessions[("claude", sid(1))]
    assert s.totals.turns == 1
    assert s.context_used == 20_503


def test_gemini_projects_are_named_from_gemini_cli_records(tmp_path: Path) -> None:
    """`.project_root` in a slug folder (v0.29+), projects.json for a hash folder whose path it
    lists, else a short `gemini:<hash>` in the views."""
    import hashlib

    from tokwatch.core.text import project_name

    home = tmp_path / ".gemini"
    doc = {"sessionId": "s", "projectHash": "x", "messages": [{"id": "m1", "type": "gemini", "model": "gemini-2.5-pro",
           "timestamp": iso(NOW), "tokens": {"input": 100, "output": 10, "cached": 0, "thoughts": 0, "tool": 0}}]}  # fmt: skip
    known = "/home/dev/known-by-hash"
    unknown = "/home/dev/not-listed"
    folders = {
        "docs-site": "/home/dev/docs-site",
        hashlib.sha256(known.encode()).hexdigest(): known,
        hashlib.sha256(unknown.encode()).hexdigest(): None,
    }
    for i, (name, _) in enumerate(folders.items()):
        chats = home / "tmp" / name / "chats"
        chats.mkdir(parents=True)
        d = dict(doc, sessionId=f"s{i}")
        (chats / f"session-2026-03-26T10-00-s{i}.json").write_bytes(orjson.dumps(d))
    (home / "tmp" / "docs-site" / ".project_root").write_text("/home/dev/docs-site")
    (home / "projects.json").write_text(orjson.dumps({"projects": {known: "known-slug"}}).decode())
    from tokwatch.agents.gemini import Gemini

    agent = Gemini()
    agent._slugs = {"known-slug": known}  # (what roots() reads from ~/.gemini/projects.json)
    got = {name: agent.project_of(home / "tmp" / name) for name in folders}
    h_unknown = hashlib.sha256(unknown.encode()).hexdigest()
    assert got == {
        "docs-site": "/home/dev/docs-site",
        next(iter(list(folders)[1:2])): known,
        h_unknown: h_unknown,
    }
    assert project_name(got["docs-site"]) == "docs-site"
    assert project_name(h_unknown) == f"gemini:{h_unknown[:8]}"


async def test_unknown_and_assumed_windows_on_screen(tmp_path: Path) -> None:
    """Codex without `model_context_window`: the default window is assumed (`~272k`); a model
    whose window nobody knows shows `?`, never 0."""
    root = tmp_path / "logs"
    rollout = (
        root
        / "codex"
        / "sessions"
        / "2026"
        / "03"
        / "26"
        / "rollout-2026-03-26T09-00-00-019c0000-0000-7000-8000-000000000001.jsonl"
    )
    rollout.parent.mkdir(parents=True)
    records = [
        {"timestamp": iso(NOW - 120), "type": "session_meta", "payload": {"id": "019c0000-0000-7000-8000-000000000001", "cwd": "/home/dev/cx"}},
        {"timestamp": iso(NOW - 110), "type": "turn_context", "payload": {"model": "gpt-5.1-codex-max"}},
        {"timestamp": iso(NOW - 100), "type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {"input_tokens": 68000, "cached_input_tokens": 60000, "output_tokens": 500, "reasoning_output_tokens": 100, "total_tokens": 68500},
            "last_token_usage": {"input_tokens": 68000, "cached_input_tokens": 60000, "output_tokens": 500, "reasoning_output_tokens": 100, "total_tokens": 68500},
            "model_context_window": None}}},
    ]  # fmt: skip
    rollout.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    async with app_over(root).run_test(size=(100, 30)) as pilot:
        app = await loaded(pilot)
        gauge = app.query_one(ContextGauge)
        text = gauge.render().plain
        assert "68k / ~272k" in text and "~25%" in text
        assert "ctx ~25%" in app.query_one(SessionList).get_row_at(0)[0].plain
        s = next(iter(app.store.sessions.values()))
        s.context_window, s.context_window_assumed = 0, False
        gauge.set(s.context_used, 0, s.max_context)
        assert "68k / ?  ?" in gauge.render().plain
