"""Snapshots of the store as rows: CSV or JSON, one row per (session, model), written atomically.

Text from logs is data: a CSV cell starting with = + - @ tab or CR is prefixed with `'` so a
spreadsheet never runs it as a formula; CSV for a terminal has its text made safe (`clean`), and
JSON escapes the characters a terminal would act on (`json_escape`), losing none.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import orjson

from tokwatch.core.models import Session, iso
from tokwatch.core.store import Store
from tokwatch.core.text import clean, json_escape
from tokwatch.output.schema import ExportRow

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
                context_window=s.context_window,
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
            else:
                out.append(v)
        w.writerow(out)
    return buf.getvalue()


def to_json(items: Iterable[ExportRow]) -> str:
    return json_escape(orjson.dumps([r.model_dump() for r in items], option=orjson.OPT_INDENT_2)) + "\n"


def render(items: Iterable[ExportRow], fmt: str, terminal: bool = False) -> str:
    return to_json(items) if fmt == "json" else to_csv(items, terminal)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask sets it, and
    another thread may be creating a file meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a crash, or a full disk) never sees a half-written snapshot; on error the
    temporary file is removed and the old file is left untouched. The file keeps the mode an
    existing one had; a new one gets 0644 less the umask, like any file a shell creates.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o644 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.fchmod(fd, mode)  # (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
