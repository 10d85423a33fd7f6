"""The command line: parsing (strict: typos and missing paths are errors), dispatch, and the
headless commands `export` and `watch`."""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from tokwatch import __version__
from tokwatch.cli.common import add_common, report_skips
from tokwatch.config import Config, ConfigError, load_config
from tokwatch.core.store import Changes
from tokwatch.core.text import json_escape
from tokwatch.fsio import safe_text
from tokwatch.ingest.setup import make_engine
from tokwatch.output.events import turn_event

#: Every command, in the order `--help` lists them.
COMMANDS = ("dashboard", "demo", "export", "watch", "report", "status", "statusline", "ledger", "mcp")
COMMAND_LIST = """commands:
  dashboard [PATHS...]      the live dashboard (what `tokwatch` alone opens)
  demo                      the dashboard on bundled sample sessions replayed live
  export [PATHS...]         a snapshot of all sessions, one row per (session, model): CSV or JSON
  watch [PATHS...]          headless live mode: --jsonl lines, --otlp metrics, a --prometheus endpoint
  report VIEW [PATHS...]    usage per day, week, month, session or 5-hour block
  status [PATHS...]         one session's usage, context and budgets (for agents)
  statusline                one line for Claude Code's status-line hook (JSON on stdin)
  ledger info|export|import|prune   the durable record of usage: where it is, backups, pruning
  mcp [PATHS...]            an MCP server (stdio) agents ask for their own usage: session_status, …

Options may come before or after paths. `tokwatch COMMAND --help` lists a command's options."""


class UsageError(Exception):
    """A command line that cannot mean anything: said in one line, exit code 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` only that command's (start-up: reports are not imported
    for an export)."""
    p = argparse.ArgumentParser(
        prog="tokwatch",
        usage="tokwatch [COMMAND] [PATHS...] [OPTIONS]",
        description="Live token usage and cost of AI coding agents.",
        epilog=COMMAND_LIST,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tokwatch {__version__}")
    sub = p.add_subparsers(dest="command", prog="tokwatch", help=argparse.SUPPRESS)

    d = sub.add_parser("dashboard", description="the live dashboard (the default command)")
    add_common(d)
    d.add_argument("--export-dir", type=Path, help="where `e` writes CSV snapshots (default: .)")
    d.add_argument("--demo", action="store_true", help="replay the bundled sample sessions")

    m = sub.add_parser("demo", description="the dashboard on bundled sample sessions replayed live")
    m.add_argument("--export-dir", type=Path, help="where `e` writes CSV snapshots (default: .)")
    m.add_argument("--config", type=Path, help="config file (default: ~/.config/tokwatch/config.toml)")

    e = sub.add_parser("export", description="a snapshot of all sessions, one row per (session, model)")
    add_common(e)
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("-o", "--output", type=Path, help="file to write (atomically); default stdout")

    w = sub.add_parser(
        "watch", description="headless live mode: JSON lines, OTLP metrics or a /metrics endpoint"
    )
    add_common(w)
    w.add_argument(
        "--jsonl",
        action="store_true",
        help="one JSON line per turn (the default without --otlp/--prometheus)",
    )
    w.add_argument(
        "--otlp",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help="push metrics over OTLP/HTTP to ENDPOINT (default: OTEL_EXPORTER_OTLP_ENDPOINT,"
        " [telemetry] otlp_endpoint, else http://localhost:4318); see docs/team.md",
    )
    w.add_argument(
        "--prometheus",
        nargs="?",
        const="",
        metavar="ADDR:PORT",
        help="serve metrics on http://ADDR:PORT/metrics (default 127.0.0.1:9464; any other"
        " address is given here or in [telemetry] prometheus_address)",
    )

    if command in (None, "report"):
        from tokwatch.cli import report

        report.add_parser(sub, add_common)
    if command in (None, "status", "statusline"):
        from tokwatch.cli import status

        status.add_parsers(sub, add_common)

    if command in (None, "ledger"):
        from tokwatch.cli import ledger

        ledger.add_parser(sub, add_common)
    if command in (None, "mcp"):
        from tokwatch.cli import mcp

        mcp.add_parser(sub, add_common)
    return p


def _command(args_list: list[str]) -> tuple[str, list[str]]:
    """Which command a command line runs, and its arguments.

    A first word that is not a command is a path for the dashboard only if it exists: a typo
    (`reprot`) or a missing path is an error, never a dashboard watching a folder that isn't there.
    """
    if not args_list:
        return "dashboard", []
    args_list = _command_first(args_list)
    first = args_list[0]
    if first in COMMANDS:
        return first, args_list[1:]
    if first.startswith("-"):
        return "dashboard", args_list  # options of the dashboard (or --help / --version)
    if Path(first).expanduser().exists():
        return "dashboard", args_list
    close = difflib.get_close_matches(first, COMMANDS, n=1, cutoff=0.6)
    if close:
        raise UsageError(f"unknown command {first!r} (did you mean {close[0]!r}?)")
    if "/" in first or first.startswith((".", "~")) or "\\" in first:
        raise UsageError(f"no such file or folder: {first}")
    raise UsageError(
        f"{first!r} is neither a command nor an existing file or folder (commands: {', '.join(COMMANDS)})"
    )


#: Options that take a value (the word after them is never a command or a path).
VALUE_OPTIONS = frozenset(
    ("--config", "--export-dir", "-o", "--output", "--format", "--tz", "--since", "--until", "--agent",
     "--project", "--token-limit", "--session", "--cwd", "--before")
)  # fmt: skip


def _command_first(args_list: list[str]) -> list[str]:
    """`tokwatch --no-cache export PATH` is `tokwatch export --no-cache PATH`: options may come
    before the command too (a command name wins over a same-named folder only where none exists)."""
    i = 0
    while i < len(args_list):
        word = args_list[i]
        if word == "--":
            return args_list
        if not word.startswith("-"):
            if i and word in COMMANDS and not Path(word).exists():
                return [word, *args_list[:i], *args_list[i + 1 :]]
            return args_list
        i += 2 if word in VALUE_OPTIONS else 1
    return args_list


def parse_args(args_list: list[str]) -> argparse.Namespace:
    """Parse a command line; options may come before or after paths in every command.

    Raises UsageError for what argparse cannot see (unknown commands, missing paths); argparse
    itself exits 2 with the command's usage for unknown options.
    """
    if args_list[:1] and args_list[0] in ("-h", "--help", "--version"):
        build_parser().parse_args(args_list[:1])  # prints and exits
    command, rest = _command(args_list)
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen = sub.choices[command]
    # (intermixed parsing cannot take sub-commands: `ledger info|export|import|prune` has them)
    args = chosen.parse_args(rest) if command == "ledger" else chosen.parse_intermixed_args(rest)
    args.command = command
    if command == "statusline":  # a hook prints its one line whatever it is given
        return args
    for path in getattr(args, "paths", None) or ():
        if not path.expanduser().exists():
            raise UsageError(f"no such file or folder: {path}")
    config = getattr(args, "config", None)
    if config is not None and not config.expanduser().exists():
        raise UsageError(f"config file not found: {config}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(args_list)
    except UsageError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 2
    if args.command == "statusline":  # before the config: a hook prints a line whatever happens
        from tokwatch.output import statusline

        return statusline.cmd_statusline(args)
    if args.command in ("dashboard", "demo") and not _has_terminal():
        print(
            "tokwatch: the dashboard needs a terminal; for scripts use `tokwatch export` "
            "(a snapshot) or `tokwatch watch --jsonl` (live, one JSON line per turn)",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config) if getattr(args, "config", None) else load_config()
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"tokwatch: {line}", file=sys.stderr)
        return 2
    if getattr(args, "force_polling", False):
        config.force_polling = True
    if args.command == "ledger":
        from tokwatch.cli import ledger

        return ledger.cmd_ledger(args, config)
    if args.command == "export":
        return cmd_export(args, config)
    if args.command == "watch":
        return cmd_watch(args, config)
    if args.command == "report":
        from tokwatch.cli import report

        return report.cmd_report(args, config)
    if args.command == "status":
        from tokwatch.cli import status

        return status.cmd_status(args, config)
    if args.command == "mcp":
        from tokwatch.cli import mcp

        return mcp.cmd_mcp(args, config)
    return cmd_dashboard(args, config, demo=args.command == "demo" or getattr(args, "demo", False))


def _has_terminal() -> bool:
    """The dashboard reads keys from stdin and draws on the terminal: without one it cannot run."""
    try:
        return all(s is not None and s.isatty() for s in (sys.stdin, sys.stdout, sys.stderr))
    except (AttributeError, ValueError):
        return False


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.output import export

    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    engine.backfill()
    text = export.render(
        export.rows(engine.store), args.format, terminal=not args.output and sys.stdout.isatty()
    )
    report_skips(engine)
    if args.output:
        try:
            export.write_atomic(args.output, text)
        except OSError as e:
            print(f"tokwatch: cannot write {args.output}: {e}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def cmd_watch(args: argparse.Namespace, config: Config) -> int:
    telemetry = None
    plan = None
    if getattr(args, "otlp", None) is not None or getattr(args, "prometheus", None) is not None:
        from tokwatch.cli import telemetry as tel
        from tokwatch.output.telemetry import TelemetryError

        try:
            plan = tel.plan(args, config)
        except TelemetryError as e:
            print(f"tokwatch: {e}", file=sys.stderr)
            return 2
    turns = plan is None or args.jsonl  # with telemetry, turn lines only when asked for
    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    store = engine.store
    engine.backfill()
    out = sys.stdout
    if plan is not None:
        try:
            telemetry = tel.start(plan, engine, config)
        except TelemetryError as e:
            print(f"tokwatch: {e}", file=sys.stderr)
            return 2

    def emit(obj: dict[str, object]) -> None:
        out.write(json_escape(orjson.dumps(obj)) + "\n")
        out.flush()

    def ready() -> None:
        """Announced once the watcher runs: a write made after this line is never missed."""
        totals = store.totals()
        event: dict[str, object] = {
            "event": "ready",
            "sessions": len(store.sessions),
            "files": len(engine.files),
            "turns": totals.turns,
            "skipped_lines": engine.skips.lines,
            "roots": [safe_text(str(r)) for r in engine.roots],
        }
        if telemetry is not None:
            event["prometheus"] = telemetry.prometheus_url
            event["otlp"] = telemetry.otlp.endpoint if telemetry.otlp is not None else None
        emit(event)

    def on_changes(changes: Changes) -> None:
        if turns:
            for c in changes.turns:
                emit(turn_event(c).model_dump())

    stop = threading.Event()
    # SIGTERM and SIGHUP (systemd, `kill`, a closed terminal) end it like Ctrl-C: with telemetry,
    # the totals are pushed once more on the way out.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        engine.follow(stop, on_changes, on_started=ready)
    except KeyboardInterrupt:
        stop.set()
    except BrokenPipeError:
        # The reader is gone (`watch --jsonl | head -2`): end now, quietly, as a process killed by
        # SIGPIPE reads to a shell (128 + 13). Later flushes of stdout go nowhere, not to stderr.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 128 + signal.SIGPIPE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if telemetry is not None:
            telemetry.shutdown()
    return 0


def cmd_dashboard(args: argparse.Namespace, config: Config, demo: bool) -> int:
    from tokwatch.ingest.discover import default_roots, discover

    paths: list[Path] = list(getattr(args, "paths", []) or [])
    export_dir = getattr(args, "export_dir", None) or (
        Path(config.export_dir) if config.export_dir else Path.cwd()
    )
    replayer = None
    stop = threading.Event()
    if not demo and not paths and next(discover(default_roots()), None) is None:
        print("tokwatch: no agent logs found; starting the demo (tokwatch demo)", file=sys.stderr)
        demo = True
    if demo:
        import tempfile

        from tokwatch.demo import DemoReplayer, SamplesMissing

        tmp = tempfile.TemporaryDirectory(prefix="tokwatch-demo-")
        try:
            replayer = DemoReplayer(Path(tmp.name))
            paths = replayer.prepare()
        except SamplesMissing as e:
            print(f"tokwatch: cannot start the demo: {e}", file=sys.stderr)
            return 1
        threading.Thread(target=replayer.run, args=(stop,), daemon=True, name="tokwatch-demo").start()
    engine = make_engine(paths or None, config, use_cache=not demo and not getattr(args, "no_cache", False))
    from tokwatch.core import logs
    from tokwatch.ui.app import TokwatchApp

    logs.to_file()  # the screen belongs to the dashboard: warnings and tracebacks go to a file

    from tokwatch.config import default_config_path

    config_path = getattr(args, "config", None) or default_config_path()
    app = TokwatchApp(engine, config=config, export_dir=export_dir, demo=demo, config_path=config_path)
    try:
        app.run()
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
