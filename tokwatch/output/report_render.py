"""`tokwatch report` output: JSON, CSV, and a Rich table that fits the terminal.

Rich is imported only to draw a table: the status line imports the report module's time helpers
and must start fast.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tokwatch.core import blocks as blk
from tokwatch.core.models import Tokens
from tokwatch.core.text import clean, compact, cost_text, duration, json_escape, money, num
from tokwatch.reports.report import KEY_NAMES, TOKEN_COLUMNS, UNDATED, Report, Row, to_local, zone_name

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


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
    return json_escape(orjson.dumps(doc, option=orjson.OPT_INDENT_2)) + "\n"


def _csv_cell(v: Any, terminal: bool = False) -> Any:
    from tokwatch.output.export import guard_cell

    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.9f}".rstrip("0").rstrip(".") or "0"
    if isinstance(v, str):
        return guard_cell(clean(v) if terminal else v)
    return v


def to_csv(rep: Report, breakdown: bool = False, terminal: bool = False) -> str:
    """One line per row (per row and model with `--breakdown`): no totals line, so columns sum.

    `terminal`: the text is for a terminal, so log text is made safe (`clean`); a file keeps it whole."""
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
            w.writerow([_csv_cell(v, terminal) for v in [*keys, label, *(nums[c] for c in TOKEN_COLUMNS)]])
    return buf.getvalue()


def _empty_key(view: str) -> list[str]:
    if view == "session":
        return ["session_id", "agent", "project"]
    if view == "blocks":
        return ["start", "end"]
    return [KEY_NAMES[view]]


# ---------------------------------------------------------------- table
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

    return Text(clean(str(v)))  # literal and terminal-safe: text from logs is never markup nor escapes


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
            # (32 is only what fitting assumes: a path takes the room there is, and wraps past it)
            Col(
                "Project", lambda _p, r, _t, _s: _plain(r.key["project"]), drop=6, min_width=12, max_width=32
            ),
            Col(
                "Last turn",
                lambda p, r, _t, _s: _plain(
                    to_local(r.last, p.tz).strftime(_when_format(p)) if r.last else ""
                ),
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
    # Token kinds give way in this order, except the largest, which is never dropped (most
    # tokens of a coding agent are cache reads: dropping them hid most of the usage).
    kinds = {"cache_read": 2, "cache_write": 3, "input": 8, "output": 9}
    largest = max(kinds, key=lambda k: getattr(rep.totals, k))
    if getattr(rep.totals, largest):
        kinds[largest] = 0
    cols += [
        _num_col("Input", "input", drop=kinds["input"]),
        _num_col("Output", "output", drop=kinds["output"]),
        _num_col("Cache write", "cache_write", drop=kinds["cache_write"]),
        _num_col("Cache read", "cache_read", drop=kinds["cache_read"]),
        _num_col("Total tokens", "total"),
        Col("Cost", lambda _p, _r, t, _s: cost_text(t), lambda t, _s: cost_text(t), numeric=True),
    ]
    if rep.token_limit:
        cols.append(
            Col("% limit", lambda _p, r, _t, _s: f"{r.extra.get('limit_percent', 0):.1f}%", numeric=True)
        )
    return cols


def _when_format(rep: Report) -> str:
    """Dates carry the year when the rows span more than one."""
    years = {to_local(r.last, rep.tz).year for r in rep.rows if r.last}
    return "%Y-%m-%d %H:%M" if len(years) > 1 else "%m-%d %H:%M"


def table(rep: Report, width: int | None, breakdown: bool = False) -> Table:
    """The widest table that fits `width`: optional columns go first, then numbers turn compact
    (2.78M). With no width (not a terminal, no COLUMNS), the whole table."""
    from rich.console import Console
    from rich.measure import Measurement

    cols = _columns(rep)
    if width is None:
        return _draw(rep, cols, False, breakdown, wrap_at=None)
    levels = sorted({c.drop for c in cols if c.drop})
    probe = Console(width=1 << 20)
    attempts = [(lvl, False) for lvl in [0, *levels]] + [(levels[-1] if levels else 0, True)]
    for dropped, small in attempts:
        shown = [c for c in cols if not c.drop or c.drop > dropped]
        t = _draw(rep, shown, small, breakdown)
        if Measurement.get(probe, probe.options, t).maximum <= width:
            return _draw(rep, shown, small, breakdown, wrap_at=None)  # text takes the room there is
    return t


def full_width(rep: Report, breakdown: bool = False) -> int:
    """How wide the whole table is, nothing dropped or wrapped."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(width=1 << 20)
    return Measurement.get(probe, probe.options, table(rep, None, breakdown)).maximum


def _draw(rep: Report, cols: list[Col], small: bool, breakdown: bool, wrap_at: int | None = 32) -> Table:
    """The table with these columns. `wrap_at` caps the text columns that may wrap (fitting
    measures with it); None lets them take the room the console has."""
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
            max_width=c.max_width if wrap_at is not None else None,
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
                        cells.append(Text("└ " + clean(m), style="dim"))
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


def print_table(rep: Report, console: Console, breakdown: bool = False, fit: bool = True) -> None:
    """The table fitted to the console's width; or (`fit=False`: stdout is not a terminal and
    COLUMNS is not set) the whole table, however wide."""
    console.print(table(rep, console.width if fit else None, breakdown))
    for line in active_lines(rep):
        console.print(line, markup=False, highlight=False)
