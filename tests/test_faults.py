"""Faults found by the adversarial test of issue 12: each kept by a test that failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tokwatch.core.models import Tokens
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

TESTS = Path(__file__).resolve().parent
GEMINI_DOC = TESTS / "fixtures" / "real" / "gemini" / "yoavf-ai-sessions__gemini-cli-pomodoro-timer.json"
AMP_DOC = TESTS / "fixtures" / "agents" / "amp" / "threads" / "T-019b9d03-62e3-772f-9780-3e637f90eaec.json"
BAD_COUNTS: list[Any] = ["12", 1.0, -1, True, 1e3, 10**13, [1], {"n": 1}]


def backfill(root: Path) -> Engine:
    engine = Engine(Store(make_pricer()), [root])
    engine.backfill()
    return engine


def totals(engine: Engine) -> Tokens:
    return engine.store.totals()


# ---------------------------------------------------------------- one bad message, not the document
def _gemini(root: Path, doc: dict[str, Any]) -> Path:
    p = root / ".gemini" / "tmp" / "proj" / "chats" / "session-2026-01-01T00-00-abc.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_one_bad_gemini_message_skips_only_itself(tmp_path: Path, bad: Any) -> None:
    doc = json.loads(GEMINI_DOC.read_bytes())
    whole = backfill(_gemini(tmp_path / "whole", doc).parents[4])
    billed = [i for i, m in enumerate(doc["messages"]) if m.get("type") == "gemini" and m["tokens"]["total"]]
    victim = billed[len(billed) // 2]
    lost = dict(doc["messages"][victim]["tokens"])
    doc["messages"][victim]["tokens"]["tool"] = bad
    engine = backfill(_gemini(tmp_path / "bad", doc).parents[4])
    w, t = totals(whole), totals(engine)
    assert t.turns == w.turns - 1
    assert t.output == w.output - lost["output"] - lost["thoughts"]
    assert t.input + t.cache_read == w.input + w.cache_read - lost["input"] - lost["tool"]
    assert engine.skips.lines == 1


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_one_bad_amp_message_skips_only_itself(tmp_path: Path, bad: Any) -> None:
    root = tmp_path / "threads"
    root.mkdir()
    doc = json.loads(AMP_DOC.read_bytes())
    doc["messages"][1]["usage"]["outputTokens"] = bad
    (root / AMP_DOC.name).write_text(json.dumps(doc))
    engine = backfill(root)
    t = totals(engine)
    assert (t.turns, t.input, t.cache_read, t.cache_write, t.output) == (1, 5, 14500, 900, 310)
    assert engine.skips.lines == 1


def test_a_fixed_document_clears_its_skipped_count(tmp_path: Path) -> None:
    root = tmp_path / "threads"
    root.mkdir()
    doc = json.loads(AMP_DOC.read_bytes())
    good = json.dumps(doc)
    doc["messages"][3]["usage"]["inputTokens"] = "5"
    path = root / AMP_DOC.name
    path.write_text(json.dumps(doc))
    engine = backfill(root)
    assert (totals(engine).turns, engine.skips.lines) == (1, 1)
    path.write_text(good + " ")  # rewritten whole, now valid
    engine.refresh([path])
    assert engine.skips.lines == 0


# ---------------------------------------------------------------- extreme times
EXTREME = (
    "9999-12-31T23:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
    253402300799000,
)


def claude_log(root: Path, stamps: tuple[object, ...]) -> Path:
    """A Claude session with one normal turn and one turn per (extreme) timestamp."""
    d = root / "projects" / "-home-u-proj"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "s1.jsonl"
    lines = []
    for n, stamp in enumerate(("2026-03-26T09:55:00Z", *stamps)):
        line = {
            "type": "assistant",
            "sessionId": "s1",
            "timestamp": stamp,
            "message": {
                "id": f"m{n}",
                "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        }
        lines.append(json.dumps(line))
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "blocks"],
        ["report", "blocks", "--json", "--token-limit", "max"],
        ["report", "daily", "--tz", "Pacific/Kiritimati"],
        ["report", "daily", "--tz", "Etc/GMT+12", "--json"],
        ["report", "weekly", "--csv"],
        ["report", "monthly"],
        ["report", "session", "--tz", "Pacific/Kiritimati"],
        ["report", "daily", "--since", "2026-01-01"],
        ["export", "--format", "json"],
        ["status", "--json"],
    ],
)
def test_extreme_times_never_crash_a_view(
    isolated: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Out-of-range times are undated (decided once, in `parse_ts`): every turn still counts."""
    from tokwatch.cli.main import main

    root = isolated / "claude"
    claude_log(root, EXTREME)
    at = 2 if argv[0] == "report" else 1
    assert main([*argv[:at], str(root), *argv[at:]]) == 0
    out = capsys.readouterr().out
    if "--json" in argv and argv[0] == "report":
        doc = json.loads(out)
        assert doc["totals"]["turns"] == (1 if "--since" in argv else 1 + len(EXTREME))


def test_extreme_times_are_undated_everywhere() -> None:
    from tokwatch.agents.base import MAX_TS, parse_ts

    for stamp in (*EXTREME, "3000-01-01T00:00:00Z", -5, 1e14 - 1, "1969-12-31T23:59:59Z"):
        assert parse_ts(stamp) == 0.0, stamp
    assert parse_ts("2999-12-31T23:59:59Z") == MAX_TS - 1
    assert parse_ts("2026-03-26T09:55:00Z") == 1774518900.0


async def test_dashboard_with_extreme_times(make_app: Any, ui_root: Path) -> None:
    from test_ui import loaded

    from tokwatch.ui.strip import TodayStrip

    claude_log(ui_root / "claude", EXTREME)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.pause()
        assert ("claude", "s1") in app.store.sessions
        assert app.store.sessions[("claude", "s1")].totals.turns == 1 + len(EXTREME)
        for key in app.store.sessions:
            app.query_one("#detail").show(key)
            await pilot.pause()
        app.query_one(TodayStrip).refresh()
        await pilot.pause(0.2)
        assert app.usage is not None  # today and the block were computed
        assert not [n for n in app._notifications if n.severity == "error"]


# ---------------------------------------------------------------- absurd config prices
@pytest.mark.parametrize("price", ["inf", "1e308", "-1", "nan", "1e6"])
@pytest.mark.parametrize("command", [["export"], ["report", "daily"]])
def test_absurd_config_prices_are_rejected_at_load(
    isolated: Path, capsys: pytest.CaptureFixture[str], price: str, command: list[str]
) -> None:
    root = isolated / "claude"
    claude_log(root, ())
    (isolated / "config.toml").write_text(f'[prices."claude-sonnet-4-5"]\ninput = 3.0\noutput = {price}\n')
    from tokwatch.cli.main import main

    assert main([*command, str(root)]) == 2
    err = capsys.readouterr().err
    assert "invalid config" in err and "prices.claude-sonnet-4-5.output" in err


def test_sane_config_prices_still_load(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = isolated / "claude"
    claude_log(root, ())
    (isolated / "config.toml").write_text('[prices."claude-sonnet-4-5"]\ninput = 3.0\noutput = 15\n')
    from tokwatch.cli.main import main

    assert main(["export", "--format", "json", str(root)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cost_usd"] == pytest.approx((10 * 3.0 + 1 * 15) / 1e6)


# ---------------------------------------------------------------- FIFOs and devices where a file belongs
def run_cli(*args: str, env: dict[str, str], stdin: bytes = b"", timeout: float = 60) -> Any:
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tokwatch", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,  # a hang fails the test here
        env={**os.environ, **env},
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "HOME": str(home),
        "TOKWATCH_CACHE_DIR": str(tmp_path / "cache"),
        "TOKWATCH_CONFIG": str(tmp_path / "config.toml"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }


def test_statusline_does_not_block_on_a_fifo_transcript(tmp_path: Path, cli_env: dict[str, str]) -> None:
    import os

    root = tmp_path / "claude"
    claude_log(root, ())
    fifo = root / "projects" / "-home-u-proj" / "s2.jsonl"
    os.mkfifo(fifo)
    hook = json.dumps({"session_id": "s2", "transcript_path": str(fifo), "model": {"display_name": "Opus"}})
    p = run_cli("statusline", str(root / "projects"), env=cli_env, stdin=hook.encode())
    assert p.returncode == 0 and p.stdout.decode().startswith("Opus"), p.stderr


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_config_that_is_not_a_regular_file(tmp_path: Path, cli_env: dict[str, str], kind: str) -> None:
    import os

    config = {"fifo": tmp_path / "config.fifo", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(config)
    logs = tmp_path / "logs"
    logs.mkdir()
    p = run_cli("export", "--config", str(config), str(logs), env=cli_env)
    assert p.returncode == 2
    assert b"not a regular file" in p.stderr or b"Is a directory" in p.stderr, p.stderr


def test_gemini_projects_fifo_does_not_block(tmp_path: Path, cli_env: dict[str, str]) -> None:
    import os

    gemini_home = tmp_path / "ghome"
    (gemini_home / ".gemini" / "tmp").mkdir(parents=True)
    os.mkfifo(gemini_home / ".gemini" / "projects.json")
    p = run_cli("export", env={**cli_env, "GEMINI_CLI_HOME": str(gemini_home)})
    assert p.returncode == 0, p.stderr


def test_status_reads_no_fifo_for_the_cwd(tmp_path: Path) -> None:
    import os
    import threading

    from tokwatch.reports.status import _logged_cwd

    fifo = tmp_path / "s.jsonl"
    os.mkfifo(fifo)
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(_logged_cwd(fifo)), daemon=True)
    t.start()
    t.join(10)
    blocked = t.is_alive()
    if blocked:  # release it: open the writing end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert not blocked and out == [""]


# ---------------------------------------------------------------- watch --jsonl | head -2
def _claude_turn_line(n: int) -> bytes:
    line = {
        "type": "assistant",
        "sessionId": "s1",
        "timestamp": "2026-03-26T09:56:00Z",
        "message": {
            "id": f"new{n}",
            "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    }
    return json.dumps(line).encode() + b"\n"


def test_watch_ends_at_once_when_its_reader_is_gone(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`watch --jsonl | head -2`: the write after the reader left ends watch, quietly, with 141
    (128 + SIGPIPE, as a shell reports a process killed by it); not 'polling instead'."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "claude"
    log = claude_log(root, ())
    p = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", "watch", "--jsonl", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **cli_env},
    )
    assert p.stdout is not None and p.stderr is not None
    try:
        assert json.loads(p.stdout.readline())["event"] == "ready"
        with open(log, "ab") as f:
            f.write(_claude_turn_line(1))
        assert json.loads(p.stdout.readline())["event"] == "turn"
        p.stdout.close()  # `head -2` exits
        deadline = time.monotonic() + 30
        n = 2
        while p.poll() is None and time.monotonic() < deadline:
            with open(log, "ab") as f:  # the next turn's write meets the closed pipe
                f.write(_claude_turn_line(n))
            n += 1
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=0.5)
        assert p.returncode == 128 + signal.SIGPIPE, p.stderr.read()
        err = p.stderr.read().decode()
        assert "polling" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        p.stderr.close()


# ---------------------------------------------------------------- SIGTERM / SIGHUP: a clean quit
def _turns_after_deleting(log: Path, env: dict[str, str]) -> int:
    """The next start, once the log is gone: only what the last run saved can count."""
    log.unlink()
    p = run_cli("export", "--format", "json", str(log.parents[2]), env=env)
    assert p.returncode == 0, p.stderr
    return sum(row["turns"] for row in json.loads(p.stdout))


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_watch_saves_on_sigterm_and_sighup(tmp_path: Path, cli_env: dict[str, str], sig: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    root = tmp_path / "claude"
    log = claude_log(root, ())
    p = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", "watch", "--jsonl", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **cli_env},
    )
    assert p.stdout is not None
    try:
        assert json.loads(p.stdout.readline())["event"] == "ready"
        with open(log, "ab") as f:
            f.write(_claude_turn_line(1))
        assert json.loads(p.stdout.readline())["event"] == "turn"  # read and applied
        p.send_signal(getattr(signal, sig))
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        p.stdout.close()
        assert p.stderr is not None
        p.stderr.close()
    assert _turns_after_deleting(log, cli_env) == 2


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_dashboard_saves_on_sigterm_and_sighup(tmp_path: Path, cli_env: dict[str, str], sig: str) -> None:
    """The dashboard in a real pseudo-terminal: a turn shown on screen survives a kill of the
    process and the deletion of its log."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "claude"
    log = claude_log(root, ())
    leader, follower = pty.openpty()
    env = {**os.environ, **cli_env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    p = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", str(root)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""

    def until_shown(text: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text not in seen:
            assert time.monotonic() < deadline, f"{text!r} never shown"
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break

    try:
        until_shown(b"claude-sonnet-4-5")  # history is in, the session is shown
        with open(log, "ab") as f:
            f.write(_claude_turn_line(1).replace(b"claude-sonnet-4-5", b"zz-marker-model"))
        until_shown(b"zz-marker-model")  # the new turn is on screen
        p.send_signal(getattr(signal, sig))
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    os.read(leader, 65536)  # keep the terminal drained while it quits
                except OSError:
                    break
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        os.close(leader)
    assert _turns_after_deleting(log, cli_env) == 2


# ---------------------------------------------------------------- memory of one huge line
def test_one_huge_valid_line_costs_little_memory(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """A valid 30 MB assistant line of `[{},{},…]` (10 million empty objects): its turn counts,
    and the export's peak RSS stays far below what building the array costs (~1 GB)."""
    import os
    import subprocess
    import sys

    root = tmp_path / "claude"
    log = claude_log(root, ())
    head = json.loads(log.read_text().splitlines()[0])
    head["message"]["id"] = "huge"
    head["message"]["content"] = []
    line = json.dumps(head).encode().replace(b'"content": []', b'"content": [' + b"{}," * 9_999_999 + b"{}]")
    with open(log, "ab") as f:
        f.write(line + b"\n")
    assert len(line) > 30_000_000
    out = tmp_path / "out.json"
    p = subprocess.Popen(
        [sys.executable, "-m", "tokwatch", "export", "--format", "json", "-o", str(out), str(root)],
        env={**os.environ, **cli_env},
    )
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sum(r["turns"] for r in json.loads(out.read_bytes())) == 2
    peak_mb = usage.ru_maxrss / 1024
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"


def test_record_reads_fields_exactly_as_orjson() -> None:
    import orjson

    from tokwatch.agents.base import MAX_FIELD, BadLine, Record

    rec = Record({"a": None, "n": {"x": None, "y": None}})
    samples = [
        b'{"a": 1, "n": {"x": [1, {"k": "v"}], "z": [{}, {}]}, "skip": [1, 2, {"q": 3}]}',
        b'{"a": "\\u00e9\\t", "n": "a string", "b": 2}',
        b'{"a": null, "n": [1, 2]}',
        b'{"n": {"y": 1.5, "x": -3}, "a": {"deep": {"er": [true, false]}}}',
    ]
    for s in samples:
        want = orjson.loads(s)
        got = rec.load(s)
        assert set(got) == set(want) & {"a", "n"}
        assert got["a" if "a" in got else "n"] is not None or want.get("a") is None
        if isinstance(want.get("n"), dict):
            assert got["n"] == {k: v for k, v in want["n"].items() if k in ("x", "y")}
        else:
            assert got.get("n") == want.get("n")
        assert got.get("a") == want.get("a")
        big = s[:-1] + b', "pad": "' + b"p" * MAX_FIELD + b'"}'  # the two-pass path of long lines
        assert rec.load(big) == got
    for bad in (
        b"[1]",
        b'{"a": NaN}',
        b'{"a": 1',
        b'{"skip": "\xff"}',
        b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ):
        with pytest.raises(BadLine):
            rec.load(bad)
    with pytest.raises(BadLine):  # a field read may not be longer than MAX_FIELD
        rec.load(b'{"a": "' + b"x" * (MAX_FIELD + 1) + b'"}')


# ---------------------------------------------------------------- export -o keeps the file's mode
@pytest.mark.parametrize("existing", [0o644, 0o640, 0o600, None])
def test_export_output_keeps_the_mode(
    isolated: Path, capsys: pytest.CaptureFixture[str], existing: int | None
) -> None:
    import os

    from tokwatch.cli.main import main

    root = isolated / "claude"
    claude_log(root, ())
    out = isolated / "usage.csv"
    if existing is not None:
        out.write_text("old\n")
        out.chmod(existing)
    old = os.umask(0o027)
    try:
        assert main(["export", "-o", str(out), str(root)]) == 0
    finally:
        os.umask(old)
    want = existing if existing is not None else 0o644 & ~0o027
    assert out.stat().st_mode & 0o7777 == want
    assert out.read_text().startswith("agent,")
