"""The command line as people type it: typos, missing paths, options anywhere, no terminal, bad config."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tokwatch.cli import main
from tokwatch.cli.main import COMMANDS

REAL = Path(__file__).parent / "fixtures" / "real"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [(["reprot", "daily"], "report"), (["exprot"], "export"), (["stauts"], "status"), (["demp"], "demo")],
)
def test_a_mistyped_command_is_an_error_with_a_suggestion(
    capsys: pytest.CaptureFixture[str], argv: list[str], suggestion: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err == f"tokwatch: unknown command {argv[0]!r} (did you mean {suggestion!r}?)\n"


def test_an_unknown_word_is_neither_a_command_nor_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "'frobnicate' is neither a command nor an existing file or folder" in err
    assert all(c in err for c in COMMANDS)


@pytest.mark.parametrize(
    "argv",
    [
        ["/no/such/path"],
        ["dashboard", "/no/such/path"],
        ["export", "/no/such/path"],
        ["export", str(REAL), "/no/such/path"],
        ["watch", "--jsonl", "/no/such/path"],
        ["report", "daily", "/no/such/path"],
        ["status", "/no/such/path", "--json"],
    ],
)
def test_an_explicit_path_that_does_not_exist_is_an_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (2, "", "tokwatch: no such file or folder: /no/such/path\n")


@pytest.mark.parametrize(
    "argv", [["export", "--config", "/missing.toml"], ["--config", "/missing.toml", "export"]]
)
def test_a_config_file_that_does_not_exist_is_an_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv, str(REAL))
    assert (code, out, err) == (2, "", "tokwatch: config file not found: /missing.toml\n")


def test_options_may_come_before_or_after_paths(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for argv in (
        ["export", "--format", "json", "--no-cache", str(REAL)],
        ["export", str(REAL), "--format", "json", "--no-cache"],
        ["export", "--no-cache", str(REAL), "--format", "json"],
        ["--no-cache", "export", str(REAL), "--format", "json"],
    ):
        code, out, _ = run(capsys, *argv)
        assert code == 0, argv
        outputs.append(out)
    assert orjson.loads(outputs[0]) and all(o == outputs[0] for o in outputs)


def test_report_takes_options_between_the_view_and_the_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """The docs' own example: `report daily --json PATH` used to exit 2 ("unrecognized arguments")."""
    code, out, _ = run(capsys, "report", "daily", "--json", str(REAL), "--tz", "UTC")
    assert code == 0
    assert orjson.loads(out)["rows"]
    code2, out2, _ = run(capsys, "report", "--json", "daily", "--tz", "UTC", str(REAL))
    assert (code2, out2) == (0, out)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tokwatch [COMMAND] [PATHS...] [OPTIONS]")
    listed = [
        line.split()[0] for line in out.split("commands:\n", 1)[1].splitlines() if line.startswith("  ")
    ]
    assert listed == list(COMMANDS)


def test_a_command_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert capsys.readouterr().out.startswith("usage: tokwatch report ")


def test_an_unknown_option_exits_2_with_the_command_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["export", "--bogus"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tokwatch export" in err and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("argv", [[], ["dashboard"], ["demo"], [str(REAL)], ["--no-cache"]])
def test_without_a_terminal_the_dashboard_refuses_at_once(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """(pytest's stdin and stdout are not terminals.) It used to spin at 100% CPU writing escapes."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "the dashboard needs a terminal" in err
    assert "tokwatch export" in err and "tokwatch watch --jsonl" in err


def test_config_errors_are_one_line_per_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('active_minutes = -3\nbogus = 1\n[prices."m"]\ninput = "x"\n')
    code, out, err = run(capsys, "export", str(REAL), "--config", str(bad))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"tokwatch: invalid config {bad}: active_minutes: input should be greater than 0 (found -3)",
        f"tokwatch: invalid config {bad}: prices.m.input: input should be a valid number, "
        "unable to parse string as a number (found 'x')",
        f"tokwatch: invalid config {bad}: prices.m.output: missing (required)",
        f"tokwatch: invalid config {bad}: bogus: unknown key",
    ]
    assert "pydantic" not in err


def test_a_toml_syntax_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("active_minutes = \n")
    code, _, err = run(capsys, "export", str(REAL), "--config", str(bad))
    assert code == 2
    assert err == f"tokwatch: invalid config {bad}: not valid TOML: Invalid value (at line 1, column 18)\n"


def test_the_demo_never_watches_anything_but_the_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without its samples the demo is an error: it used to watch the user's real folders."""
    from tokwatch import demo

    monkeypatch.setattr(demo, "AGENT_DIRS", ("nothing-here",))
    with pytest.raises(demo.SamplesMissing):
        demo.default_source()
    with pytest.raises(demo.SamplesMissing):
        demo.DemoReplayer(tmp_path / "out", source=tmp_path / "empty").prepare()


def test_the_status_line_hook_always_prints_its_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code shows whatever the hook prints: a wrong path or config is no reason for none."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    code, out, _ = run(capsys, "statusline", "/no/such/path", "--config", "/missing.toml", "--no-cache")
    assert code == 0 and len(out.splitlines()) == 1
