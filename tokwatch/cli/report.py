"""`tokwatch report daily|weekly|monthly|session|blocks`: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from tokwatch.output import report_render
from tokwatch.reports.report import VIEWS, Filters, Report, build, parse_tz

if TYPE_CHECKING:
    from tokwatch.config import Config


def parse_date(text: str) -> date:
    """YYYY-MM-DD or YYYYMMDD."""
    t = text.strip()
    try:
        if len(t) == 8 and t.isdigit():
            return date(int(t[:4]), int(t[4:6]), int(t[6:]))
        return date.fromisoformat(t)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD or YYYYMMDD): {text!r}") from e


def parse_limit(text: str) -> int | str:
    if text.strip().lower() == "max":
        return "max"
    try:
        n = int(text.replace("_", "").replace(",", ""))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--token-limit takes a number of tokens or 'max': {text!r}") from e
    if n <= 0:
        raise argparse.ArgumentTypeError("--token-limit must be positive")
    return n


def _console(rep: Report, breakdown: bool) -> tuple[Any, bool]:
    """Where the table goes: a terminal's width (or COLUMNS) is fitted; a pipe or a file gets
    the whole table (no column dropped, no path wrapped), unless COLUMNS says otherwise."""
    import os

    from rich.console import Console

    columns = os.environ.get("COLUMNS", "")
    if sys.stdout.isatty() or columns.isdigit():
        return Console(), True
    return Console(width=max(80, report_render.full_width(rep, breakdown)), soft_wrap=False), False


# ---------------------------------------------------------------- command
def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from tokwatch.agents import all_agents

    r = sub.add_parser(
        "report",
        description="usage per day, week, month, session or 5-hour block; plan-window samples (limits)",
    )
    r.add_argument("view", choices=(*VIEWS, "limits"))
    common(r)
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='{"rows": [...], "totals": {...}}')
    out.add_argument("--csv", action="store_true", help="one line per row")
    r.add_argument("--since", type=parse_date, help="first day, inclusive (YYYY-MM-DD or YYYYMMDD)")
    r.add_argument("--until", type=parse_date, help="last day, inclusive")
    r.add_argument("--tz", help="time zone for days, e.g. Europe/Paris or UTC (default: local)")
    r.add_argument(
        "--agent",
        action="append",
        choices=[a.name for a in all_agents()],
        help="only this agent (repeatable)",
    )
    r.add_argument("--project", help="only projects containing this text (case-insensitive)")
    r.add_argument("--breakdown", action="store_true", help="per-model rows")
    r.add_argument(
        "--token-limit",
        type=parse_limit,
        help="blocks: percent of N tokens, or of the largest past block (max)",
    )


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.cli.common import report_skips
    from tokwatch.ingest.setup import make_engine

    try:
        tz = parse_tz(args.tz)
    except ValueError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 2
    if args.token_limit is not None and args.view != "blocks":
        print("tokwatch: --token-limit applies to `report blocks` only", file=sys.stderr)
        return 2
    f = Filters(
        agents=frozenset(args.agent or ()), project=args.project, since=args.since, until=args.until, tz=tz
    )
    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    engine.backfill()
    if args.view == "limits":
        report_skips(engine)
        return _limits(engine.ledger, f, args)
    rep = build(engine.store, args.view, f, token_limit=args.token_limit)
    report_skips(engine)
    if args.json:
        sys.stdout.write(report_render.to_json(rep, args.breakdown))
    elif args.csv:
        sys.stdout.write(report_render.to_csv(rep, args.breakdown, terminal=sys.stdout.isatty()))
    else:
        console, fit = _console(rep, args.breakdown)
        report_render.print_table(rep, console, breakdown=args.breakdown, fit=fit)
    sys.stdout.flush()
    return 0


def _limits(ledger: Any, f: Filters, args: argparse.Namespace) -> int:
    """`report limits`: every plan-window sample in the range, per window."""
    from tokwatch.output import limits_render
    from tokwatch.reports import limits
    from tokwatch.reports.budgets import day_bounds

    since = day_bounds(_noon(f.since), f.tz)[1] if f.since else None
    until = day_bounds(_noon(f.until), f.tz)[2] if f.until else None
    samples = limits.history(ledger, since, until, f.agents)
    if args.json:
        sys.stdout.write(limits_render.to_json(samples, limits.refused(ledger)))
    elif args.csv:
        sys.stdout.write(limits_render.to_csv(samples))
    else:
        from rich.console import Console

        limits_render.print_table(samples, limits.refused(ledger), f.tz, Console())
    sys.stdout.flush()
    return 0


def _noon(d: date) -> float:
    """A moment inside day `d` in any zone (for `day_bounds`)."""
    from datetime import UTC, datetime

    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC).timestamp()
