"""Text from logs and hook input never reaches a terminal as something it acts on (issue 12).

Every surface is rendered for real: the dashboard's screen as Textual writes it to the terminal
(the compositor's full update, and each segment of it), report tables and status text through a
Rich console that believes it is a terminal, `export`, `status --json`, `watch --jsonl` and the
status line through the command line. Each checks that no ESC, OSC, C0/C1 control or bidi
control from the logs survives, and that the text is still there, visibly escaped.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.cells import get_character_cell_size
from rich.console import Console
from test_ui import FIXED_NOW, loaded, order, until

from tokwatch.cli.main import main
from tokwatch.config import Config
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.core.text import clean, json_escape
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import report_render, statusline
from tokwatch.reports.report import build
from tokwatch.reports.status import status_text
from tokwatch.ui.messages import ChangesArrived
from tokwatch.ui.sessions import SessionList
from tokwatch.ui.skipped import SkippedScreen

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x1b\\"  # writes "rm -rf ~" to the clipboard (OSC ended by ST)
TITLE = "\x1b]2;owned\x07"  # sets the window title (OSC ended by BEL)
LINK = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
CSI = "\x1b[2J\x9b2J"  # clear screen, as 7-bit CSI and as the one-character C1 CSI
BIDI = "\u202egpj.exe\u202c\u2066x\u2069\u200f"
MODEL = f"claude-opus-4-6{OSC52}{TITLE}"
PROJECT = f"/home/u/proj{TITLE}{CSI}{BIDI}\ttab\x7f"
SESSION = f"sess{CSI}{BIDI}-0001"
WIDE = "/home/u/中文项目👨\u200d👩\u200d👧❤\ufe0f"

#: What a terminal acts on (or reorders by) and must never receive from log text.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
#: Textual's and Rich's own output: SGR styles and cursor moves. Hostile CSIs above are not of these forms.
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*[mHK]|\x1b\[\?[0-9;]*[hl]")


def assert_inert(raw: str) -> None:
    """No control sequence in `raw` but the renderer's own styling and cursor moves."""
    rest = OWN_SEQUENCES.sub("", raw)
    found = UNSAFE.findall(rest)
    assert not found, f"terminal controls reached the output: {found[:10]!r}"
    assert "\x1b]" not in raw and "\x9b" not in raw


def hostile_turns() -> list[Turn]:
    common: dict[str, Any] = {"timestamp": FIXED_NOW - 5, "input": 10, "output": 5}
    return [
        Turn(agent="claude", session_id=SESSION, turn_id="1", model=MODEL, project=PROJECT, **common),
        Turn(agent="claude", session_id="wide-0002", turn_id="2", model="中文-model", project=WIDE, **common),
    ]


# ---------------------------------------------------------------- the shared function
def test_clean_escapes_visibly_and_keeps_the_rest() -> None:
    assert clean("plain 中文 é") == "plain 中文 é"
    assert clean(OSC52) == "\\x1b]52;c;cm0gLXJmIH4=\\x1b\\"
    assert clean("a\tb\nc\x9bd\u202ee\x7f") == "a\\tb\\nc\\x9bd\\u202ee\\x7f"
    assert clean("👨\u200d👩\u200d👧") == "👨👩👧"  # one width on every terminal
    assert clean("x\udc80") == "x\\udc80"  # an undecodable byte in a file name
    assert clean("\U000e0041") == "\\U000e0041"  # invisible tag characters (hidden text)
    for s in (MODEL, PROJECT, SESSION, LINK):
        assert not UNSAFE.search(clean(s))


def test_json_escape_keeps_the_value_and_escapes_the_characters() -> None:
    doc = {"project": PROJECT, "model": MODEL, "s": "\U000e0041 👨\u200d👩\u200d👧"}
    out = json_escape(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    assert json.loads(out) == doc  # valid, and nothing dropped
    assert not UNSAFE.search(out.replace("\n", ""))
    assert "\\u202e" in out and "\\u009b" in out and "\\u007f" in out


# ---------------------------------------------------------------- the dashboard
def screen_output(app: Any) -> str:
    """What Textual writes to the terminal for a full repaint of the current screen, and every
    text segment of it checked on its own (the renderer's styling is not in segment text)."""
    compositor = app.screen._compositor
    for strip in compositor.render_strips():
        for seg in strip:
            if not seg.control:
                assert not UNSAFE.search(seg.text), seg.text
    return compositor.render_full_update().render_segments(app.console)


def naive_width(line: str) -> int:
    """Cells as a terminal that knows no grapheme clusters counts them (tmux, most others)."""
    return sum(get_character_cell_size(c) for c in line)


async def test_dashboard_never_sends_log_text_as_controls(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    export_dir = tmp_path / f"exports{TITLE}"
    app = make_app(export_dir=export_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        app.post_message(ChangesArrived(app.store.apply(hostile_turns())))  # as the engine thread does
        await until(pilot, lambda: ("claude", SESSION) in order(app))
        for _ in range(2):  # each hostile session in turn, in the list, the title and the detail
            await pilot.press("k")
            await pilot.pause()
            raw = screen_output(app)
            assert_inert(raw)
            assert "\\x1b]52;c;cm0gLXJmIH4=" in raw or "中文-model" in raw
        assert app.title.startswith("claude · ")
        assert not UNSAFE.search(app.title)
        await pilot.press("e")  # the export notification names the (hostile) folder
        await until(pilot, lambda: app.last_export is not None)
        await pilot.pause()
        assert_inert(screen_output(app))
        app.engine.skips.by_file[Path(f"/logs/{OSC52}.jsonl")] = 3
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: isinstance(app.screen, SkippedScreen))
        await pilot.pause()
        raw = screen_output(app)
        assert_inert(raw)
        assert "\\x1b]52" in raw


@pytest.mark.parametrize("size", [(120, 40), (70, 30)])
async def test_wide_and_joined_characters_keep_the_list_border(
    make_app: Callable[..., Any], size: tuple[int, int]
) -> None:
    """CJK (2 cells) and a ZWJ family (2 cells joined, 6 apart: terminals disagree) in a project:
    every screen line is as wide for a terminal that counts per character as for Textual."""
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await loaded(pilot)
        app.post_message(ChangesArrived(app.store.apply(hostile_turns())))  # as the engine thread does
        await until(pilot, lambda: ("claude", "wide-0002") in order(app))
        await pilot.pause()
        lines = [
            "".join(seg.text for seg in strip if not seg.control)
            for strip in app.screen._compositor.render_strips()
        ]
        assert any("中文项目" in line for line in lines)
        assert all(naive_width(line) == size[0] for line in lines), [
            (naive_width(x), x) for x in lines if naive_width(x) != size[0]
        ]
        side = app.query_one(SessionList)
        assert side.get_row_index("claude\x1fwide-0002") >= 0


# ---------------------------------------------------------------- reports, status, status line
def hostile_store() -> Store:
    store = Store(make_pricer(Config()))
    store.apply(hostile_turns())
    return store


def terminal_console(width: int = 200) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, color_system="truecolor", width=width), buf


@pytest.mark.parametrize("view", ["session", "daily", "blocks"])
def test_report_tables_are_inert(view: str) -> None:
    rep = build(hostile_store(), view, now=FIXED_NOW)
    console, buf = terminal_console(width=400)  # (wide enough that no cell folds mid-escape)
    report_render.print_table(rep, console, breakdown=True)
    out = buf.getvalue()
    assert_inert(out)
    assert "\\x1b]52;c;cm0gLXJmIH4=" in out  # the model, in the Models column and the breakdown
    if view == "session":
        assert "\\ttab" in out


def test_a_tab_in_a_project_keeps_the_table_aligned() -> None:
    rep = build(hostile_store(), "session", now=FIXED_NOW)
    console, buf = terminal_console(width=400)
    report_render.print_table(rep, console)
    body = [OWN_SEQUENCES.sub("", x) for x in buf.getvalue().splitlines()[1:] if x.strip()]
    widths = {naive_width(x.expandtabs()) for x in body}  # as a terminal lays a tab out
    assert len(widths) == 1, body


def test_report_json_and_csv_keep_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    rep = build(hostile_store(), "session", now=FIXED_NOW)
    out = report_render.to_json(rep, breakdown=True)
    doc = json.loads(out)
    assert {r["project"] for r in doc["rows"]} == {PROJECT, WIDE}
    assert not UNSAFE.search(out.replace("\n", ""))
    assert PROJECT in report_render.to_csv(rep)  # a file keeps the text whole
    shown = report_render.to_csv(rep, terminal=True)
    assert_inert(shown.replace("\n", "\t").replace("\t", " "))
    assert "\\ttab" in shown


def test_status_text_is_inert() -> None:
    doc = {
        "session": {"id": SESSION, "agent": "claude", "project": PROJECT, "model": MODEL},
        "usage": {
            "session": {"turns": 1, "totalTokens": 15, "cost": None},
            "lastTurn": None,
            "context": {"used": 0, "window": None, "percent": None},
        },
    }
    out = status_text(doc)
    assert_inert(out.replace("\n", " "))
    assert "\\x9b2J" in out and "\\u202egpj" in out


def test_statusline_is_inert_on_c1_and_bidi() -> None:
    line = statusline.render_line(statusline.LineData(model=statusline._text(f"Op{CSI}{BIDI}")))
    assert_inert(line)
    assert line.startswith("Op\\x1b[2J\\x9b2J\\u202e")


# ---------------------------------------------------------------- the command line
def claude_log(root: Path) -> Path:
    """A Claude log whose folder, cwd, session id and model are hostile."""
    d = root / "projects" / "-home-u-proj"
    d.mkdir(parents=True)
    p = d / "s1.jsonl"
    p.write_bytes(claude_line(1))
    return p


def claude_line(n: int) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "assistant",
                "cwd": PROJECT,
                "sessionId": SESSION,
                "timestamp": "2026-03-26T09:55:00Z",
                "message": {
                    "id": f"msg_{n}",
                    "model": MODEL,
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                },
                "requestId": f"req_{n}",
            }
        )
        + b"\n"
    )


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path


def test_export_json_and_status_json_escape_and_keep(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "claude"
    claude_log(root)
    for argv in (["export", "--format", "json", str(root)], ["status", "--json", str(root)]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert not UNSAFE.search(out.replace("\n", "")), argv
        text = json.dumps(json.loads(out), ensure_ascii=False)
        assert json.dumps(PROJECT, ensure_ascii=False)[1:-1] in text and "\\u202e" in out


def test_export_csv_on_a_terminal_is_inert(
    isolated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = isolated / "claude"
    claude_log(root)
    assert main(["export", str(root)]) == 0
    assert PROJECT in capsys.readouterr().out  # piped: the data as it is
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["export", str(root)]) == 0
    out = capsys.readouterr().out
    assert_inert(out.replace("\n", " "))
    assert "\\x1b]52;c;cm0gLXJmIH4=" in out


def test_watch_jsonl_escapes(isolated: Path) -> None:
    root = isolated / "claude"
    log = claude_log(root)
    env = {
        **os.environ,
        "TOKWATCH_CACHE_DIR": str(isolated / "cache"),
        "TOKWATCH_CONFIG": str(isolated / "c.toml"),
    }
    p = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", "watch", "--jsonl", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert p.stdout is not None
        ready = p.stdout.readline()
        assert json.loads(ready)["event"] == "ready"
        with open(log, "ab") as f:
            f.write(claude_line(2))
        raw = p.stdout.readline()
    finally:
        p.kill()
        p.wait(timeout=30)
    assert raw.endswith(b"\n")
    assert b"\x1b" not in raw and b"\xc2\x9b" not in raw and "\u202e".encode() not in raw
    event = json.loads(raw)
    assert (event["project"], event["model"], event["session_id"]) == (PROJECT, MODEL, SESSION)


def test_folder_names_that_are_not_utf8_are_stored_and_shown(tmp_path: Path) -> None:
    """A project folder whose name is not valid UTF-8 (Python keeps such bytes as lone surrogates,
    which SQLite and JSON refuse) is recorded and shown with visible escapes, never a crash."""
    import subprocess
    import sys

    folder = os.fsencode(tmp_path / "claude" / "projects") + b"/-home-\xff-x"
    os.makedirs(folder)
    line = {
        "type": "assistant", "sessionId": "s1", "timestamp": "2026-01-01T00:00:00Z", "requestId": "r",
        "message": {"id": "m", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 5, "output_tokens": 1}},
    }  # fmt: skip
    with open(folder + b"/s1.jsonl", "wb") as f:
        f.write(orjson.dumps(line) + b"\n")
    root = os.fsdecode(os.fsencode(tmp_path / "claude"))
    for cmd in (
        ["export", root, "--format", "json"],
        ["report", "session", root, "--json"],
        ["export", root],
    ):
        r = subprocess.run([sys.executable, "-m", "tokwatch", *cmd], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert b"-home-\\\\xff-x" in r.stdout or b"-home-\\xff-x" in r.stdout
