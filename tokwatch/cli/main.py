"""Command line: `tokwatch [PATHS]` (dashboard), `export`, `watch --jsonl`, `demo`; `report`, `status` and `mcp` in their own modules."""

from __future__ import annotations

import argparse
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

COMMANDS = ("export", "watch", "demo", "dashboard", "ledger", "report", "status", "statusline", "mcp")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` only that command's (start-up: reports are not imported
    for an export)."""
    p = argparse.ArgumentParser(prog="tokwatch", description="Live token usage and cost of AI coding agents.")
    p.add_argument("--version", action="version", version=f"tokwatch {__version__}")
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("dashboard", help="the live dashboard (the default command)")
    add_common(d)
    d.add_argument("--export-dir", type=Path, help="where `e` writes CSV snapshots (default: .)")
    d.add_argument("--demo", action="store_true", help="replay the bundled sample sessions")

    e = sub.add_parser("export", help="a snapshot of all sessions, one row per (session, model)")
    add_common(e)
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("-o", "--output", type=Path, help="file to write (atomically); default stdout")

    w = sub.add_parser("watch", help="headless live mode: JSON lines, OTLP metrics or a /metrics endpoint")
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

    if command in (None, "ledger"):
        from tokwatch.cli import ledger

        ledger.add_parser(sub, add_common)

    m = sub.add_parser("demo", help="the dashboard on sample sessions replayed live")
    m.add_argument("--export-dir", type=Path)
    m.add_argument("--config", type=Path)

    if command in (None, "report"):
        from tokwatch.cli import report

        report.add_parser(sub, add_common)
    if command in (None, "status", "statusline"):
        from tokwatch.cli import status

        status.add_parsers(sub, add_common)
    if command in (None, "mcp"):
        from tokwatch.cli import mcp

        mcp.add_parser(sub, add_common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "dashboard")
    args = build_parser(args_list[0] if args_list[0] in COMMANDS else None).parse_args(args_list)
    if args.command == "statusline":  # before the config: a hook prints a line whatever happens
        from tokwatch.output import statusline

        return statusline.cmd_statusline(args)
    try:
        config = load_config(args.config) if getattr(args, "config", None) else load_config()
    except ConfigError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
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

        from tokwatch.demo import DemoReplayer

        tmp = tempfile.TemporaryDirectory(prefix="tokwatch-demo-")
        replayer = DemoReplayer(Path(tmp.name))
        paths = replayer.prepare()
        threading.Thread(target=replayer.run, args=(stop,), daemon=True, name="tokwatch-demo").start()
    engine = make_engine(paths or None, config, use_cache=not demo and not getattr(args, "no_cache", False))
    from tokwatch.ui.app import TokwatchApp

    app = TokwatchApp(engine, config=config, export_dir=export_dir, demo=demo)
    try:
        app.run()
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
