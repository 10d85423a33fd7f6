"""The installed `tokwatch` as a user meets it: the README's install, the first launch with no logs
(the demo), a cold launch on a history big enough for the parallel backfill, a warm one, and the
careless command lines people type.

These run the real command in a real terminal (tmux at 100 x 30); the waits are for what must
appear on screen, with generous timeouts (the machine may be busy): nothing here measures speed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import orjson
import pytest
from e2e_support import Installed, copy_corpus, loglines, readme_user_install
from terminal import Tmux  # (bench/, on the path once e2e_support is imported)

#: The generous bound on anything appearing on screen (a busy 2-core machine, a cold 55 MB read).
SLOW = 240.0
SESSIONS_TOTAL = re.compile(r"─ (\d+) ─╯")


def listed_total(screen: str) -> int | None:
    """The session count the list's frame shows (bottom right), once history is read."""
    if "Reading history" in screen:
        return None
    m = SESSIONS_TOTAL.search(screen)
    return int(m.group(1)) if m else None


def roots(corpus: Path) -> list[str]:
    return [str(corpus / a) for a in ("claude", "codex", "gemini")]


def test_readme_user_install_from_a_clone(installed: Installed, tmp_path: Path) -> None:
    """The README's one command for users (`pipx install .`, run from this clone by the
    `installed` fixture) leaves a working tokwatch whose demo sessions come from the package."""
    assert readme_user_install() == ["pipx", "install", "."]
    version = subprocess.run([str(installed.exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("tokwatch ")
    python = next(installed.pipx_home.glob("venvs/tokwatch/bin/python"))
    where = subprocess.run(
        [str(python), "-c", "from tokwatch.demo import default_source; print(default_source())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # (not the checkout: `-c` puts the current folder first on the path)
    ).stdout.strip()
    assert where.startswith(str(installed.pipx_home)) and where.endswith("tokwatch/sample_logs")


def test_the_wheel_carries_the_samples(wheel: Path) -> None:
    """What `pipx install tokwatch-*.whl` gets: the sample sessions as package data, Gemini's
    project records included, and not the script that makes them."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    samples = {n for n in names if n.startswith("tokwatch/sample_logs/")}
    for agent in ("claude", "codex", "gemini"):
        assert any(n.startswith(f"tokwatch/sample_logs/{agent}/") for n in samples), agent
    assert "tokwatch/sample_logs/gemini/tmp/docs-site/.project_root" in samples
    assert not any(n.endswith(("make_samples.py", "README.md")) for n in samples)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_first_launch_with_no_logs_opens_the_demo(installed: Installed, home: Path, tmux: Tmux) -> None:
    tmux.start([str(installed.exe)], installed.env(home), cwd=home)
    screen, _ = tmux.wait_for(lambda s: "webshop" in s and "api-gateway" in s, SLOW, "demo sessions")
    assert "demo" in screen.splitlines()[0]  # the header says it is the demo
    assert "No agent sessions yet" not in screen
    # it is live: the replay keeps writing, the list keeps the sessions, and q quits cleanly
    tmux.wait_for(lambda s: (listed_total(s) or 0) >= 4, SLOW, "four demo sessions")
    tmux.send("q")
    assert tmux.wait_exit() == 0


def test_demo_command_shows_only_the_samples(
    installed: Installed, home: Path, tmux: Tmux, tmp_path: Path
) -> None:
    """With real logs in the home folder, `tokwatch demo` still shows only the sample sessions."""
    real = home / ".claude" / "projects" / "-home-me-secret-project"
    real.mkdir(parents=True)
    line = loglines.claude_assistant(
        loglines.claude_header(
            session_id="11111111-2222-4333-8444-555555555555", cwd="/home/me/secret-project"
        ),
        message_id="msg_01RealUserSession000000",
        request_id="req_011CRealUserRequest00000",
        uuid="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        model="claude-opus-4-6",
        usage=loglines.claude_usage(3, 1000, 200, 50),
    )
    (real / "11111111-2222-4333-8444-555555555555.jsonl").write_bytes(loglines.jsonl(line))
    tmux.start([str(installed.exe), "demo"], installed.env(home), cwd=home)
    screen, _ = tmux.wait_for(lambda s: "webshop" in s and "api-gateway" in s, SLOW, "demo sessions")
    assert "secret-project" not in screen
    tmux.send("q")
    assert tmux.wait_exit() == 0


def expected_sessions(installed: Installed, home: Path, corpus: Path) -> int:
    """How many sessions the history holds, as `tokwatch export` finds them (no cache)."""
    done = subprocess.run(
        [str(installed.exe), "export", "--no-cache", "--format", "json", *roots(corpus)],
        capture_output=True,
        env=installed.env(home, XDG_CACHE_HOME=str(home / "export-cache")),
        check=True,
    )
    return len({(r["agent"], r["session_id"]) for r in orjson.loads(done.stdout)})


def append_turn(corpus: Path, marker: str) -> None:
    """Append one assistant line to an existing Claude session, now, in a project named `marker`."""
    log = sorted((corpus / "claude" / "projects").glob("*/*.jsonl"))[0]
    sid = next(json.loads(raw)["sessionId"] for raw in log.read_bytes().splitlines() if b'"sessionId"' in raw)
    line = loglines.claude_assistant(
        loglines.claude_header(session_id=sid, cwd=f"/home/dev/{marker}"),
        message_id="msg_01EndToEndAppended00000",
        request_id="req_011CEndToEndAppended000",
        uuid="e2e00000-0000-4000-8000-000000000001",
        model="claude-opus-4-6",
        usage=loglines.claude_usage(5, 40_000, 1_200, 321),
        stop_reason="end_turn",
    )
    with open(log, "ab") as f:
        f.write(loglines.jsonl(line))


def test_cold_then_warm_on_a_history_above_the_parallel_threshold(
    installed: Installed, home: Path, tmux: Tmux, corpus: Path, tmp_path: Path
) -> None:
    """Used to paint "No agent sessions yet" forever: the workers could not start under Textual."""
    history = copy_corpus(corpus, tmp_path / "history")
    want = expected_sessions(installed, home, history)
    ledger = home / ".local" / "share" / "tokwatch" / "ledger.db"
    assert not ledger.exists()
    cmd = [str(installed.exe), *roots(history)]
    env = installed.env(home)

    # cold: every session listed, no problem reported, then an appended turn shows up
    tmux.start(cmd, env, cwd=home)
    screen, _ = tmux.wait_for(lambda s: listed_total(s) == want, SLOW, f"all {want} sessions listed")
    assert "Problem" not in screen and "failed" not in screen
    append_turn(history, "e2e-live-turn")
    tmux.wait_for("e2e-live-turn", 30, "the appended turn")
    tmux.send("q")
    assert tmux.wait_exit() == 0
    assert ledger.is_file()

    # warm: the same, from the ledger, the appended turn included
    tmux.start(cmd, env, cwd=home)
    screen, _ = tmux.wait_for(
        lambda s: listed_total(s) == want and "e2e-live-turn" in s, SLOW, "all sessions, warm"
    )
    assert "Problem" not in screen
    tmux.send("q")
    assert tmux.wait_exit() == 0
    log = home / ".local" / "state" / "tokwatch" / "tokwatch.log"
    assert not log.exists() or log.read_text() == "", log.read_text()


CARELESS = [
    (["reprot", "daily"], 2, "tokwatch: unknown command 'reprot' (did you mean 'report'?)"),
    (["frobnicate"], 2, "'frobnicate' is neither a command nor an existing file or folder"),
    (["/no/such/path"], 2, "tokwatch: no such file or folder: /no/such/path"),
    (["export", "/no/such/path"], 2, "tokwatch: no such file or folder: /no/such/path"),
    (["export", "--config", "/missing.toml"], 2, "tokwatch: config file not found: /missing.toml"),
    ([], 2, "the dashboard needs a terminal"),
    (["demo"], 2, "the dashboard needs a terminal"),
]


@pytest.mark.parametrize(
    ("argv", "code", "message"), CARELESS, ids=[" ".join(c[0]) or "(none)" for c in CARELESS]
)
def test_careless_command_lines(
    installed: Installed, home: Path, argv: list[str], code: int, message: str
) -> None:
    """No terminal here (stdin /dev/null, stdout a pipe): errors are immediate, one line, exit 2."""
    done = subprocess.run(
        [str(installed.exe), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=installed.env(home),
        cwd=home,
        timeout=60,  # the dashboard without a terminal used to spin forever
    )
    assert (done.returncode, done.stdout) == (code, "")
    assert message in done.stderr and len(done.stderr.splitlines()) == 1


def test_options_before_the_paths_as_the_docs_show(installed: Installed, home: Path, corpus: Path) -> None:
    done = subprocess.run(
        [str(installed.exe), "report", "daily", "--json", str(corpus / "codex"), "--tz", "UTC"],
        capture_output=True,
        env=installed.env(home),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["rows"]


def test_help_lists_every_command(installed: Installed, home: Path) -> None:
    done = subprocess.run(
        [str(installed.exe), "--help"], capture_output=True, text=True, env=installed.env(home)
    )
    assert done.returncode == 0
    commands = ("dashboard", "demo", "export", "watch", "report", "status", "statusline", "ledger")
    assert all(re.search(rf"^  {c}\b", done.stdout, re.M) for c in commands)
