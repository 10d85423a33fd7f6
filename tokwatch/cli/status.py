"""`tokwatch status` and `tokwatch statusline`: the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokwatch.core.text import json_escape
from tokwatch.reports.status import find_target, norm_dir, status_doc, status_text

if TYPE_CHECKING:
    from tokwatch.config import Config


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.cli.common import report_skips
    from tokwatch.ingest.setup import make_engine
    from tokwatch.reports.report import parse_tz

    try:
        tz = parse_tz(args.tz)
    except ValueError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 2
    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    engine.backfill()
    cwd = norm_dir(args.cwd) if args.cwd else None
    doc = status_doc(engine.store, find_target(engine, args.session, cwd), config, time.time(), tz)
    report_skips(engine)
    if args.json:
        sys.stdout.write(json_escape(orjson.dumps(doc)) + "\n")
    else:
        sys.stdout.write(status_text(doc))
    return 0


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    s = sub.add_parser("status", description="one session's usage, context and budgets (for agents)")
    common(s)
    which = s.add_mutually_exclusive_group()
    which.add_argument("--session", help="session id (or a unique prefix)")
    which.add_argument("--cwd", help="the most recently active session of this project folder")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--tz", help="time zone for 'today' (default: local)")

    line = sub.add_parser(
        "statusline", description="one line for Claude Code's statusLine hook (JSON on stdin)"
    )
    line.add_argument("paths", nargs="*", type=Path, help="Claude log folders (default: Claude's homes)")
    line.add_argument("--config", type=Path)
    line.add_argument("--no-cache", action="store_true")
    line.add_argument("--tz", help="time zone for 'today' (default: local)")
