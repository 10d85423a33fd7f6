"""`tokwatch report`: usage per day, ISO week, month, session or 5-hour block.

Reports aggregate turns (not sessions), so a session spanning midnight is split between its days
and every report's rows add up to exactly what `export` totals on the same logs. Costs are summed
in integer picodollars; a row with any unpriced turn has an unknown (null) cost, never $0, and
carries the known part as `known_cost_usd` (a lower bound). Rich is imported only to draw a
table: the status line imports this module for its time helpers and must start fast.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from tokwatch import blocks as blk
from tokwatch.models import Session, Tokens, Turn, iso

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tokwatch.config import Config
    from tokwatch.store import Store

VIEWS = ("daily", "weekly", "monthly", "session", "blocks")
KEY_NAMES = {"daily": "date", "weekly": "week", "monthly": "month"}
TOKEN_COLUMNS = (
    "turns",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "known_cost_usd",
    "unpriced_turns",
)
UNDATED = "unknown"  # the key of turns whose log gave no time


# ---------------------------------------------------------------- time
def parse_tz(name: str | None) -> tzinfo | None:
    """A zone for day boundaries; None means the machine's local zone (DST-aware)."""
    if not name or name.lower() == "local":
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}") from e


def to_local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)


def local_date(ts: float, tz: tzinfo | None) -> date:
    return to_local(ts, tz).date()


def zone_name(tz: tzinfo | None) -> str:
    if tz is None:
        return f"local, {datetime.now().astimezone().tzname()}"
    return str(tz)


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


def day_key(d: date) -> str:
    return d.isoformat()


def week_key(d: date) -> str:
    """ISO week (Monday first; the ISO year, so 2027-01-01 may be `2026-W53`)."""
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def month_key(d: date) -> str:
    return f"{d.year}-{d.month:02d}"


PERIOD_KEYS: dict[str, Callable[[date], str]] = {"daily": day_key, "weekly": week_key, "monthly": month_key}


# ---------------------------------------------------------------- selection
@dataclass(frozen=True, slots=True)
class Filters:
    agents: frozenset[str] = frozenset()  # empty: every agent
    project: str | None = None  # case-insensitive substring of the session's project
    since: date | None = None  # inclusive, in `tz`
    until: date | None = None
    tz: tzinfo | None = None

    def session_ok(self, s: Session, *, project: bool = True) -> bool:
        if self.agents and s.agent not in self.agents:
            return False
        return not (project and self.project and self.project.lower() not in s.project.lower())

    def date_ok(self, ts: float) -> bool:
        if self.since is None and self.until is None:
            return True
        if not ts:
            return False
        d = local_date(ts, self.tz)
        return (self.since is None or d >= self.since) and (self.until is None or d <= self.until)


Entry = tuple[Session, Turn, int | None]


def entries(store: Store, f: Filters, *, project: bool = True) -> list[Entry]:
    """Every turn of the selected sessions with its cost (picodollars, None = unpriced)."""
    out: list[Entry] = []
    with store.lock:
        for key, s in store.sessions.items():
            if f.session_ok(s, project=project):
                cost = store.cost_pico
                out.extend((s, t, cost(t)) for t in store.turns_of(key))
    return out


# ---------------------------------------------------------------- rows
@dataclass(slots=True)
class Row:
    key: dict[str, Any]  # the row's identity, in output order (date | week | month | session | block)
    tokens: Tokens = field(default_factory=Tokens)
    by_model: dict[str, Tokens] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0  # blocks: the block's start (0.0 for the undated turns' row)

    def add(self, t: Turn, cost: int | None) -> None:
        self.tokens.add(t, cost)
        m = self.by_model.get(t.model)
        if m is None:
            m = self.by_model[t.model] = Tokens()
        m.add(t, cost)
        if t.timestamp:
            self.first = t.timestamp if not self.first else min(self.first, t.timestamp)
            self.last = max(self.last, t.timestamp)


@dataclass(slots=True)
class Report:
    view: str
    rows: list[Row]
    totals: Tokens
    tz: tzinfo | None
    active: Row | None = None  # blocks: the running block, also in `rows`
    token_limit: int | None = None


def period_rows(items: Iterable[Entry], view: str, f: Filters) -> list[Row]:
    name, keyfn = KEY_NAMES[view], PERIOD_KEYS[view]
    rows: dict[str, Row] = {}
    for _, t, cost in items:
        if not f.date_ok(t.timestamp):
            continue
        k = keyfn(local_date(t.timestamp, f.tz)) if t.timestamp else UNDATED
        row = rows.get(k)
        if row is None:
            row = rows[k] = Row(key={name: k})
        row.add(t, cost)
    return [rows[k] for k in sorted(rows, key=lambda k: (k == UNDATED, k))]


def session_rows(items: Iterable[Entry], f: Filters) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    for s, t, cost in items:
        if not f.date_ok(t.timestamp):
            continue
        row = rows.get(s.key)
        if row is None:
            row = rows[s.key] = Row(key={"session_id": s.session_id, "agent": s.agent, "project": s.project})
        row.add(t, cost)
    out = sorted(rows.values(), key=lambda r: (r.last, r.key["agent"], r.key["session_id"]))
    for r in out:
        r.extra = {"first_seen": iso(r.first) or None, "last_seen": iso(r.last) or None}
    return out


def block_rows(
    store: Store, f: Filters, now: float, token_limit: int | str | None = None
) -> tuple[list[Row], Row | None, int | None]:
    """Blocks bounded by every turn of the selected agents, tallying the project's turns only."""
    everything = entries(store, f, project=False)
    starts = blk.block_starts(sorted(t.timestamp for _, t, _ in everything))
    active_start = blk.active_start(starts, now)
    tallies: dict[float | None, blk.Block] = {}
    for s, t, cost in everything:
        if not f.session_ok(s):
            continue
        start = blk.start_of(t.timestamp, starts)
        b = tallies.get(start)
        if b is None:
            b = tallies[start] = blk.Block(start=start or 0.0)
        b.add(t, cost)
    limit: int | None
    if token_limit == "max":
        limit = blk.max_completed([b for k, b in tallies.items() if k is not None], now) or None
    else:
        limit = token_limit if isinstance(token_limit, int) else None
    rows: list[Row] = []
    active: Row | None = None
    for start in sorted(tallies, key=lambda k: (k is None, k or 0.0)):
        b = tallies[start]
        if start is not None and not f.date_ok(start):
            continue
        if start is None and (f.since or f.until):
            continue
        row = Row(
            key={
                "start": iso(b.start) if start is not None else None,
                "end": iso(b.end) if start is not None else None,
            },
            tokens=b.tokens,
            by_model=b.by_model,
            first=b.first,
            last=b.last,
            start=b.start if start is not None else 0.0,
        )
        row.extra = {
            "first_turn": iso(b.first) or None,
            "last_turn": iso(b.last) or None,
            "active": start is not None and start == active_start,
        }
        if limit:
            row.extra["limit_percent"] = round(100 * b.tokens.total / limit, 1)
        if row.extra["active"]:
            p = blk.project(b, now)
            row.extra.update(
                remaining_minutes=round(p.remaining_s / 60, 1),
                burn_rate_tokens_per_minute=None
                if p.tokens_per_minute is None
                else round(p.tokens_per_minute, 1),
                cost_per_hour_usd=None if p.cost_per_hour_usd is None else round(p.cost_per_hour_usd, 6),
                projected_tokens=p.projected_tokens,
                projected_cost_usd=None if p.projected_cost_usd is None else round(p.projected_cost_usd, 6),
            )
            if limit and p.projected_tokens is not None:
                row.extra["projected_limit_percent"] = round(100 * p.projected_tokens / limit, 1)
            active = row
        rows.append(row)
    return rows, active, limit


def build(
    store: Store,
    view: str,
    f: Filters | None = None,
    *,
    now: float | None = None,
    token_limit: int | str | None = None,
) -> Report:
    f = f or Filters()
    now = time.time() if now is None else now
    active: Row | None = None
    limit: int | None = None
    if view == "blocks":
        rows, active, limit = block_rows(store, f, now, token_limit)
    elif view == "session":
        rows = session_rows(entries(store, f), f)
    elif view in PERIOD_KEYS:
        rows = period_rows(entries(store, f), view, f)
    else:
        raise ValueError(f"unknown report {view!r}")
    return Report(view, rows, Tokens.sum(r.tokens for r in rows), f.tz, active, limit)


# ---------------------------------------------------------------- machine output
def cost_usd(t: Tokens) -> float | None:
    return None if t.unpriced_turns else round(t.cost_pico / 1e12, 9)


def token_fields(t: Tokens) -> dict[str, Any]:
    return {
        "turns": t.turns,
        "input_tokens": t.input,
        "cache_read_tokens": t.cache_read,
        "cache_write_tokens": t.cache_write,
        "output_tokens": t.output,
        "reasoning_tokens": t.reasoning,
        "total_tokens": t.total,
        "cost_usd": cost_usd(t),
        "known_cost_usd": round(t.cost_pico / 1e12, 9),
        "unpriced_turns": t.unpriced_turns,
    }


def row_dict(r: Row, breakdown: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = dict(r.key)
    d["models"] = sorted(r.by_model)
    d.update(token_fields(r.tokens))
    d.update(r.extra)
    if breakdown:
        d["breakdown"] = [{"model": m, **token_fields(r.by_model[m])} for m in sorted(r.by_model)]
    return d


def to_json(rep: Report, breakdown: bool = False) -> str:
    doc = {"rows": [row_dict(r, breakdown) for r in rep.rows], "totals": token_fields(rep.totals)}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def _csv_cell(v: Any) -> Any:
    from tokwatch.export import guard_cell

    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.9f}".rstrip("0").rstrip(".") or "0"
    if isinstance(v, str):
        return guard_cell(v)
    return v


def to_csv(rep: Report, breakdown: bool = False) -> str:
    """One line per row (per row and model with `--breakdown`): no totals line, so columns sum."""
    key_cols = list(rep.rows[0].key) if rep.rows else _empty_key(rep.view)
    if rep.view == "session":
        key_cols += ["first_seen", "last_seen"]
    cols = [*key_cols, "model" if breakdown else "models", *TOKEN_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rep.rows:
        keys = [r.key.get(c, r.extra.get(c)) for c in key_cols]
        parts = (
            [(m, r.by_model[m]) for m in sorted(r.by_model)]
            if breakdown
            else [(" ".join(sorted(r.by_model)), r.tokens)]
        )
        for label, t in parts:
            nums = token_fields(t)
            w.writerow([_csv_cell(v) for v in [*keys, label, *(nums[c] for c in TOKEN_COLUMNS)]])
    return buf.getvalue()


def _empty_key(view: str) -> list[str]:
    if view == "session":
        return ["session_id", "agent", "project"]
    if view == "blocks":
        return ["start", "end"]
    return [KEY_NAMES[view]]


# ---------------------------------------------------------------- table
def num(n: int) -> str:
    return f"{n:,}"


def money(v: float) -> str:
    if v == 0:
        return "$0.00"
    if v < 0.01:
        return "<$0.01"
    return f"${v:,.2f}"


def cost_text(t: Tokens) -> str:
    """'unknown' when no turn is priced, '≥$X' (a lower bound) when only some are."""
    if not t.unpriced_turns:
        return money(t.known_cost_usd)
    if t.unpriced_turns >= t.turns:
        return "unknown"
    return "≥" + money(t.known_cost_usd)


def duration(seconds: float) -> str:
    m = max(0, int(seconds // 60))
    return f"{m // 60}h{m % 60:02d}m"


TITLES = {
    "daily": "Usage per day",
    "weekly": "Usage per ISO week",
    "monthly": "Usage per month",
    "session": "Usage per session",
    "blocks": "Usage per 5-hour block",
}


@dataclass(frozen=True, slots=True)
class Col:
    """One table column: how to draw a row's cell, and when it may be dropped to fit."""

    header: str
    cell: Callable[[Report, Row, Tokens, bool], Any]  # (report, row, tokens of the line, compact)
    footer: Callable[[Tokens, bool], str] | None = None
    drop: int = 0  # 0: always shown; otherwise dropped in increasing order when too wide
    numeric: bool = False
    min_width: int | None = None
    max_width: int | None = None  # longer text folds onto more lines


def _plain(v: object) -> Any:
    from rich.text import Text

    return Text(str(v))  # literal: text from logs is never markup


def compact(n: int) -> str:
    for div, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def _num_col(header: str, attr: str, drop: int = 0) -> Col:
    def fmt(n: int, small: bool) -> str:
        return compact(n) if small else num(n)

    return Col(
        header,
        lambda _rep, _r, t, small: fmt(getattr(t, attr), small),
        lambda t, small: fmt(getattr(t, attr), small),
        drop,
        numeric=True,
    )


def _block_status(rep: Report, r: Row) -> str:
    if r.key["start"] is None:
        return ""
    if r.extra["active"]:
        return f"active, {duration(r.extra['remaining_minutes'] * 60)} left"
    return "done"


def _columns(rep: Report) -> list[Col]:
    view = rep.view
    cols: list[Col]
    if view in KEY_NAMES:
        name = KEY_NAMES[view]
        cols = [Col(name.capitalize(), lambda _p, r, _t, _s: _plain(r.key[name]), lambda _t, _s: "Total")]
    elif view == "session":
        cols = [
            Col(
                "Session", lambda _p, r, _t, _s: _plain(str(r.key["session_id"])[:8]), lambda _t, _s: "Total"
            ),
            Col("Agent", lambda _p, r, _t, _s: _plain(r.key["agent"]), drop=4),
            Col(
                "Project", lambda _p, r, _t, _s: _plain(r.key["project"]), drop=6, min_width=12, max_width=32
            ),
            Col(
                "Last turn",
                lambda p, r, _t, _s: _plain(to_local(r.last, p.tz).strftime("%m-%d %H:%M") if r.last else ""),
                drop=5,
            ),
        ]
    else:
        cols = [
            Col(
                "Block start",
                lambda p, r, _t, _s: _plain(
                    to_local(r.start, p.tz).strftime("%Y-%m-%d %H:%M") if r.key["start"] else UNDATED
                ),
                lambda _t, _s: "Total",
            ),
            Col("Status", lambda p, r, _t, _s: _plain(_block_status(p, r)), drop=7),
        ]
    cols.append(Col("Models", lambda _p, r, _t, _s: _plain("\n".join(sorted(r.by_model))), drop=1))
    cols += [
        _num_col("Input", "input", drop=8),
        _num_col("Output", "output", drop=9),
        _num_col("Cache write", "cache_write", drop=3),
        _num_col("Cache read", "cache_read", drop=2),
        _num_col("Total tokens", "total"),
        Col("Cost", lambda _p, _r, t, _s: cost_text(t), lambda t, _s: cost_text(t), numeric=True),
    ]
    if rep.token_limit:
        cols.append(
            Col("% limit", lambda _p, r, _t, _s: f"{r.extra.get('limit_percent', 0):.1f}%", numeric=True)
        )
    return cols


def table(rep: Report, width: int, breakdown: bool = False) -> Table:
    """The widest table that fits: optional columns go first, then numbers turn compact (2.78M)."""
    from rich.console import Console
    from rich.measure import Measurement

    cols = _columns(rep)
    levels = sorted({c.drop for c in cols if c.drop})
    probe = Console(width=1 << 20)
    attempts = [(lvl, False) for lvl in [0, *levels]] + [(levels[-1] if levels else 0, True)]
    for dropped, small in attempts:
        shown = [c for c in cols if not c.drop or c.drop > dropped]
        t = _draw(rep, shown, small, breakdown)
        if Measurement.get(probe, probe.options, t).maximum <= width:
            return t
    return t


def _draw(rep: Report, cols: list[Col], small: bool, breakdown: bool) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(
        title=f"{TITLES[rep.view]} ({zone_name(rep.tz)})",
        box=box.SIMPLE_HEAD,
        show_footer=True,
        header_style="bold",
        footer_style="bold",
    )
    for c in cols:
        t.add_column(
            c.header,
            footer=c.footer(rep.totals, small) if c.footer else "",
            justify="right" if c.numeric else "left",
            no_wrap=c.numeric or c.min_width is None,
            overflow="fold",
            min_width=c.min_width,
            max_width=c.max_width,
        )
    for r in rep.rows:
        t.add_row(
            *(c.cell(rep, r, r.tokens, small) for c in cols), style="bold" if r.extra.get("active") else None
        )
        if breakdown:
            for m in sorted(r.by_model):
                mt = r.by_model[m]
                label = next((i for i, c in enumerate(cols) if c.header == "Models"), 0)
                cells: list[Any] = []
                for i, c in enumerate(cols):
                    if i == label:
                        cells.append(Text("└ " + m, style="dim"))
                    elif c.numeric and c.header != "% limit":
                        cells.append(c.cell(rep, r, mt, small))
                    else:
                        cells.append("")
                t.add_row(*cells, style="dim")
    if not rep.rows:
        t.caption = "no turns match"
    elif rep.totals.unpriced_turns:
        t.caption = "≥: some turns have no known price; the known part is shown (a lower bound)"
    return t


def active_lines(rep: Report) -> list[str]:
    """The running block's pace and projection, under the blocks table."""
    a = rep.active
    if a is None:
        return []
    x = a.extra
    end = to_local(a.start + blk.BLOCK_SECONDS, rep.tz).strftime("%H:%M")
    lines = [
        f"Active block: {duration(x['remaining_minutes'] * 60)} left (ends {end}), "
        f"{num(a.tokens.total)} tokens, {cost_text(a.tokens)} so far."
    ]
    if x["burn_rate_tokens_per_minute"] is None:
        lines.append("Burn rate: not yet (less than a minute of activity).")
    else:
        per_hour = x["cost_per_hour_usd"]
        rate = f"{num(round(x['burn_rate_tokens_per_minute']))} tokens/min"
        rate += f", {money(per_hour)}/h" if per_hour is not None else ", cost rate unknown"
        proj_cost = x["projected_cost_usd"]
        proj = f"{num(x['projected_tokens'])} tokens"
        proj += f", {money(proj_cost)}" if proj_cost is not None else ", cost unknown"
        if rep.token_limit and "projected_limit_percent" in x:
            proj += f" ({x['projected_limit_percent']:.0f}% of the {num(rep.token_limit)}-token limit)"
        lines.append(f"Burn rate: {rate}. Projected at the block's end: {proj}.")
    return lines


def print_table(rep: Report, console: Console, breakdown: bool = False) -> None:
    console.print(table(rep, console.width, breakdown))
    for line in active_lines(rep):
        console.print(line, markup=False, highlight=False)


# ---------------------------------------------------------------- command
def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from tokwatch.agents import all_agents

    r = sub.add_parser("report", help="usage per day, week, month, session or 5-hour block")
    r.add_argument("view", choices=VIEWS)
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
    from tokwatch.cli import make_engine, report_skips

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
    rep = build(engine.store, args.view, f, token_limit=args.token_limit)
    report_skips(engine)
    if args.json:
        sys.stdout.write(to_json(rep, args.breakdown))
    elif args.csv:
        sys.stdout.write(to_csv(rep, args.breakdown))
    else:
        from rich.console import Console

        print_table(rep, Console(), args.breakdown)
    sys.stdout.flush()
    return 0
