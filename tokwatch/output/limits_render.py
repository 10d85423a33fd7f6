"""`tokwatch report limits`: the history of the plan windows' samples, per window (JSON, CSV, a table).

Every sample the ledger holds in the range, as the agent reported it (docs/limits.md): nothing is
interpolated. Identical readings less than a minute apart were never stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import tzinfo
from itertools import groupby
from typing import TYPE_CHECKING

import orjson

from tokwatch.core.models import iso
from tokwatch.core.observations import LimitSample, window_label
from tokwatch.reports.report import to_local, zone_name

if TYPE_CHECKING:
    from rich.console import Console

CSV_COLUMNS = (
    "agent",
    "provider",
    "limit_id",
    "window",
    "window_minutes",
    "observed_at",
    "used_percent",
    "resets_at",
    "source",
    "plan_type",
    "session_id",
)


def _by_window(samples: Iterable[LimitSample]) -> Iterator[tuple[LimitSample, list[LimitSample]]]:
    for _, group in groupby(samples, key=lambda s: s.key):
        items = list(group)
        yield items[0], items


def to_json(samples: Iterable[LimitSample], refused: int) -> str:
    windows = []
    for first, items in _by_window(samples):
        windows.append(
            {
                "agent": first.agent,
                "provider": first.provider,
                "limitId": first.limit_id,
                "window": window_label(first.window_minutes),
                "windowMinutes": first.window_minutes,
                "samples": [
                    {
                        "observedAt": iso(s.observed_at),
                        "usedPercent": s.used_percent,
                        "resetsAt": iso(s.resets_at) if s.resets_at else None,
                        "source": s.source,
                        "planType": s.plan_type or None,
                        "sessionId": s.session_id or None,
                    }
                    for s in items
                ],
            }
        )
    return orjson.dumps({"windows": windows, "refused": refused}).decode() + "\n"


def to_csv(samples: Iterable[LimitSample]) -> str:
    from tokwatch.output.export import guard_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in samples:
        w.writerow(
            [
                guard_cell(s.agent),
                guard_cell(s.provider),
                guard_cell(s.limit_id),
                window_label(s.window_minutes),
                s.window_minutes,
                iso(s.observed_at),
                s.used_percent,
                iso(s.resets_at) if s.resets_at else "",
                guard_cell(s.source),
                guard_cell(s.plan_type),
                guard_cell(s.session_id),
            ]
        )
    return buf.getvalue()


def print_table(samples: list[LimitSample], refused: int, tz: tzinfo | None, console: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def when(ts: float | None) -> str:
        return to_local(ts, tz).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"

    if not samples:
        console.print(
            Text(
                "No plan-window samples recorded (docs/limits.md says which agents report them).", style="dim"
            )
        )
    for first, items in _by_window(samples):
        title = f"{first.agent} {window_label(first.window_minutes)}"
        if first.limit_id != first.agent:
            title += f" ({first.limit_id})"
        t = Table(title=f"{title} ({zone_name(tz)})", box=box.SIMPLE_HEAD, header_style="bold")
        for name, justify in (
            ("Observed", "left"),
            ("Used", "right"),
            ("Resets", "left"),
            ("Source", "left"),
            ("Session", "left"),
        ):
            t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for s in items:
            t.add_row(
                when(s.observed_at),
                f"{s.used_percent:g}%",
                when(s.resets_at),
                Text(s.source + (f" · {s.plan_type}" if s.plan_type else "")),
                Text(s.session_id[:8]),
            )
        console.print(t)
    if refused:
        console.print(Text(f"{refused} readings were refused as garbage (never stored).", style="dim"))
