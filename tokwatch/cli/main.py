"""Command line: `tokwatch [PATHS]` (dashboard), `export`, `watch --jsonl`, `demo`."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from tokwatch import __version__
from tokwatch.cli.common import add_common, report_skips
from tokwatch.config import Config, ConfigError, load_config
from tokwatch.core.cache import Cache
from tokwatch.core.models import Turn
from tokwatch.ingest.setup import make_engine
from tokwatch.output.events import turn_event

COMMANDS = ("export", "watch", "demo", "dashboard", "cache", "report", "status", "statusline")


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

    w = sub.add_parser("watch", help="headless live mode: one JSON line per turn")
    add_common(w)
    w.add_argument("--jsonl", action="store_true", help="JSON lines (the only format for now)")

    c = sub.add_parser("cache", help="inspect or clean the cache of already-read logs")
    c.add_argument("--prune", action="store_true", help="forget logs that were deleted (archived sessions)")
    c.add_argument("--clear", action="store_true", help="delete the whole cache")

    m = sub.add_parser("demo", help="the dashboard on sample sessions replayed live")
    m.add_argument("--export-dir", type=Path)
    m.add_argument("--config", type=Path)

    if command in (None, "report"):
        from tokwatch.cli import report

        report.add_parser(sub, add_common)
    if command in (None, "status", "statusline"):
        from tokwatch.cli import status

        status.add_parsers(sub, add_common)
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
    if args.command == "cache":
        return cmd_cache(args)
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
    return cmd_dashboard(args, config, demo=args.command == "demo" or getattr(args, "demo", False))


def cmd_cache(args: argparse.Namespace) -> int:
    cache = Cache()
    if args.clear:
        cache.clear()
        print(f"cleared {cache.path}")
        return 0
    if args.prune:
        n = cache.prune()
        print(f"pruned {n} deleted log(s) from {cache.path}")
        return 0
    entries = cache.load()
    gone = sum(1 for p in entries if not Path(p).exists())
    turns = sum(e.count for e in entries.values())
    print(f"{cache.path}: {len(entries)} files ({gone} deleted, kept as archived), {turns} turns")
    return 0


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.output import export

    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    engine.backfill()
    text = export.render(export.rows(engine.store), args.format)
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
    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    store = engine.store
    engine.backfill()
    out = sys.stdout

    def emit(obj: dict[str, object]) -> None:
        out.write(orjson.dumps(obj).decode() + "\n")
        out.flush()

    def ready() -> None:
        """Announced once the watcher runs: a write made after this line is never missed."""
        totals = store.totals()
        emit(
            {
                "event": "ready",
                "sessions": len(store.sessions),
                "files": len(engine.files),
                "turns": totals.turns,
                "skipped_lines": engine.skips.lines,
                "roots": [str(r) for r in engine.roots],
            }
        )

    def on_turns(turns: list[Turn]) -> None:
        changes = store.apply(turns)
        for t in changes.turns:
            emit(turn_event(store, t).model_dump())

    stop = threading.Event()
    try:
        engine.follow(stop, on_turns, on_started=ready)
    except KeyboardInterrupt:
        stop.set()
    except BrokenPipeError:
        return 0
    finally:
        engine.save_cache()
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
    from tokwatch.core import logs
    from tokwatch.ui.app import TokwatchApp

    logs.to_file()  # the screen belongs to the dashboard: warnings and tracebacks go to a file

    app = TokwatchApp(engine, config=config, export_dir=export_dir, demo=demo)
    try:
        app.run()
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
