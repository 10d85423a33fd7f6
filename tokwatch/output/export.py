"""Snapshots of the store as rows: CSV or JSON, one row per (session, model), written atomically.

Text from logs is data: a CSV cell starting with = + - @ tab or CR is prefixed with `'` so a
spreadsheet never runs it as a formula; CSV for a terminal has its text made safe (`clean`), and
JSON escapes the characters a terminal would act on (`json_escape`), losing none.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import orjson

from tokwatch.core.atomic import write_atomic
from tokwatch.core.models import Session, iso
from tokwatch.core.store import Store
from tokwatch.core.text import clean, json_escape
from tokwatch.output.schema import ExportRow

__all__ = ["render", "rows", "to_csv", "to_json", "write_atomic"]

COLUMNS = list(ExportRow.model_fields)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def session_rows(s: Session) -> list[ExportRow]:
    rows = []
    for model in sorted(s.by_model):
        t = s.by_model[model]
        rows.append(
            ExportRow(
                agent=s.agent,
                session_id=s.session_id,
                project=s.project,
                model=model,
                turns=t.turns,
                input_tokens=t.input,
                cache_read_tokens=t.cache_read,
                cache_write_tokens=t.cache_write,
                output_tokens=t.output,
                reasoning_tokens=t.reasoning,
                total_tokens=t.total,
                cost_usd=None if t.cost_usd is None else round(t.cost_usd, 9),
                first_seen=iso(s.first_seen),
                last_seen=iso(s.last_seen),
                context_tokens=s.context_used,
                context_window=s.context_window or None,
                context_window_assumed=s.context_window_assumed,
            )
        )
    return rows


def rows(store: Store) -> list[ExportRow]:
    with store.lock:
        sessions = sorted(store.sessions.values(), key=lambda s: (s.first_seen, s.agent, s.session_id))
        return [r for s in sessions for r in session_rows(s)]


def guard_cell(value: str) -> str:
    """Neutralize spreadsheet formula injection in a text cell."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cost_text(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.9f}".rstrip("0").rstrip(".") or "0"


def to_csv(items: Iterable[ExportRow], terminal: bool = False) -> str:
    """`terminal`: the CSV is shown on a terminal, so log text is made safe; a file keeps it whole."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in items:
        out = []
        for col in COLUMNS:
            v = getattr(r, col)
            if col == "cost_usd":
                out.append(_cost_text(v))
            elif isinstance(v, str):
                out.append(guard_cell(clean(v) if terminal else v))
            elif v is None:
                out.append("")  # unknown, never 0
            else:
                out.append(v)
        w.writerow(out)
    return buf.getvalue()


def to_json(items: Iterable[ExportRow]) -> str:
    return json_escape(orjson.dumps([r.model_dump() for r in items], option=orjson.OPT_INDENT_2)) + "\n"


def render(items: Iterable[ExportRow], fmt: str, terminal: bool = False) -> str:
    return to_json(items) if fmt == "json" else to_csv(items, terminal)
