"""`tokwatch ledger info | export | import | prune`: look after the record of usage."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokwatch.core.ledger import LedgerError
from tokwatch.core.models import iso
from tokwatch.ingest.setup import make_ledger, make_pricer

if TYPE_CHECKING:
    from tokwatch.config import Config


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("ledger", help="the durable record of usage: info, export, import, prune")
    ops = p.add_subparsers(dest="op", required=True, metavar="info|export|import|prune")
    info = ops.add_parser("info", help="where the ledger is and what it holds")
    info.add_argument("--config", type=Path)
    ex = ops.add_parser("export", help="every turn, for a backup or another machine (JSON lines or CSV)")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("-o", "--output", type=Path, help="file to write (atomically); default stdout")
    ex.add_argument("--config", type=Path)
    im = ops.add_parser("import", help="merge a dump made by `ledger export` (idempotent)")
    im.add_argument("file", type=Path)
    im.add_argument("--config", type=Path)
    pr = ops.add_parser("prune", help="forget turns older than a date (asks first)")
    pr.add_argument("--before", required=True, type=_date, help="YYYY-MM-DD: turns before this local day")
    pr.add_argument("--yes", action="store_true", help="do not ask")
    pr.add_argument("--config", type=Path)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from e


def cmd_ledger(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.core.store import Store

    ledger = make_ledger(config)
    try:
        opened = ledger.open()
    except LedgerError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 1
    for line in opened.messages():
        print(f"tokwatch: {line}", file=sys.stderr)
    store = Store(make_pricer(config), ledger)
    if args.op == "info":
        return _info(ledger)
    if args.op == "export":
        return _export(ledger, args)
    if args.op == "import":
        return _import(store, args)
    return _prune(store, args)


def _info(ledger: Any) -> int:
    path: Path = ledger.path
    with ledger.reading() as db:
        sessions = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        turns, first, last = db.execute("SELECT count(*), min(NULLIF(ts, 0)), max(ts) FROM turns").fetchone()
        files = [os.fsdecode(p) for (p,) in db.execute("SELECT path FROM files WHERE turns > 0")]
        samples = db.execute("SELECT count(*) FROM limit_samples").fetchone()[0]
        compactions = db.execute("SELECT count(*) FROM compactions").fetchone()[0]
    gone = sum(1 for p in files if not os.path.exists(p))
    size = sum(os.path.getsize(p) for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    print(f"ledger:   {path} ({size / 1e6:.1f} MB)")
    print(f"sessions: {sessions}")
    print(f"turns:    {turns}" + (f" ({iso(first)[:10]} to {iso(last)[:10]})" if first else ""))
    print(f"logs:     {len(files)} with usage ({gone} deleted since; their turns are kept)")
    print(f"limits:   {samples} plan-window samples, {compactions} compaction marks (tokwatch report limits)")
    print("back up:  tokwatch ledger export -o FILE  (restore or merge: tokwatch ledger import FILE)")
    return 0


def _export(ledger: Any, args: argparse.Namespace) -> int:
    from tokwatch.core.atomic import write_atomic
    from tokwatch.output import ledger_dump

    items = ledger_dump.turns(ledger)
    terminal = not args.output and sys.stdout.isatty()
    chunks = ledger_dump.to_jsonl(items) if args.format == "jsonl" else ledger_dump.to_csv(items, terminal)
    if args.output:
        try:
            write_atomic(args.output, b"".join(chunks))
        except OSError as e:
            print(f"tokwatch: cannot write {args.output}: {e}", file=sys.stderr)
            return 1
        return 0
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()
    return 0


def _import(store: Any, args: argparse.Namespace) -> int:
    from tokwatch.fsio import open_regular
    from tokwatch.output import ledger_dump

    f = open_regular(args.file)
    if f is None:
        print(f"tokwatch: cannot read {args.file}: not a readable regular file", file=sys.stderr)
        return 2
    with f:
        data = f.read()
    try:
        turns, bad = ledger_dump.read_dump(data)
    except ledger_dump.DumpError as e:
        print(f"tokwatch: {args.file}: {e}", file=sys.stderr)
        return 2
    before = store.ledger.count_turns()
    for i in range(0, len(turns), 20_000):
        store.apply(turns[i : i + 20_000])
    after = store.ledger.count_turns()
    print(
        f"imported {args.file}: {len(turns)} turns read, {after - before} new"
        + (f", {bad} malformed skipped" if bad else "")
    )
    return 0


def _prune(store: Any, args: argparse.Namespace) -> int:
    d: date = args.before
    cut = datetime(d.year, d.month, d.day).timestamp()  # local midnight
    with store.ledger.reading() as db:
        n = db.execute("SELECT count(*) FROM turns WHERE ts > 0 AND ts < ?", (cut,)).fetchone()[0]
    if not n:
        print(f"nothing to prune: no turn before {d.isoformat()}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"tokwatch: {n} turns before {d.isoformat()} would be forgotten; add --yes to confirm",
                file=sys.stderr,
            )
            return 2
        answer = input(
            f"Forget {n} turns before {d.isoformat()} for good? Back up first: tokwatch ledger export. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing pruned")
            return 1
    t0 = time.monotonic()
    removed, emptied = store.prune(cut)
    print(f"pruned {removed} turns ({emptied} sessions emptied) in {time.monotonic() - t0:.1f}s")
    return 0
