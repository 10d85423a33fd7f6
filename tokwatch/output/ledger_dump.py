"""`tokwatch ledger export | import`: every turn of the ledger as JSON lines or CSV, and back.

A dump is a backup and the way to merge another machine's history: importing applies its turns
with the same keys and the same rule as reading logs (a turn seen again replaces its numbers, or
keeps the field-wise maximum for Claude's streaming duplicates), so importing twice changes
nothing. Costs are not taken from the dump: they are computed again at this machine's prices
(an agent's own reported cost, kept in `agent_cost_usd`, still wins as it does for logs).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

import orjson

from tokwatch.core.ledger import TURN_COLUMNS, Ledger, turn_from_row
from tokwatch.core.models import Turn, bad_turn, iso
from tokwatch.core.text import clean, json_escape

FORMAT = "tokwatch-ledger"
VERSION = 1
FIELDS = (
    "agent", "session_id", "turn_id", "model", "timestamp", "time", "input", "cache_read", "cache_write",
    "cache_write_1h", "output", "reasoning", "context_tokens", "context_window", "project", "sidechain",
    "merge_max", "agent_cost_usd", "dedup_key", "cost_usd",
)  # fmt: skip


def turns(ledger: Ledger) -> Iterator[tuple[Turn, int | None]]:
    """Every readable turn, session by session (rows that fail the checks are skipped)."""
    with ledger.reading() as db:
        sessions = db.execute("SELECT id, agent, session_id FROM sessions ORDER BY id").fetchall()
    for sid, agent, session_id in sessions:
        with ledger.reading() as db:
            rows = db.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE session=? ORDER BY ts, turn_id", (sid,)
            ).fetchall()
        for r in rows:
            try:
                yield turn_from_row(str(agent), str(session_id), r)
            except (TypeError, ValueError):
                continue


def record(t: Turn, cost: int | None) -> dict[str, object]:
    return {
        "agent": t.agent,
        "session_id": t.session_id,
        "turn_id": t.turn_id,
        "model": t.model,
        "timestamp": t.timestamp,
        "time": iso(t.timestamp) or None,
        "input": t.input,
        "cache_read": t.cache_read,
        "cache_write": t.cache_write,
        "cache_write_1h": t.cache_write_1h,
        "output": t.output,
        "reasoning": t.reasoning,
        "context_tokens": t.context_tokens,
        "context_window": t.context_window,
        "project": t.project,
        "sidechain": t.sidechain,
        "merge_max": t.merge_max,
        "agent_cost_usd": t.cost_usd,
        "dedup_key": t.dedup_key,
        "cost_usd": None if cost is None else cost / 1e12,
    }


def to_jsonl(items: Iterable[tuple[Turn, int | None]]) -> Iterator[bytes]:
    """JSON lines; characters a terminal would act on are `\\u` escapes (the same JSON value)."""
    yield orjson.dumps({"format": FORMAT, "version": VERSION}) + b"\n"
    for t, cost in items:
        yield json_escape(orjson.dumps(record(t, cost))).encode() + b"\n"


def to_csv(items: Iterable[tuple[Turn, int | None]], terminal: bool = False) -> Iterator[bytes]:
    """CSV with the export's formula guard; on a terminal, log text is `clean()`ed."""
    from tokwatch.output.export import guard_cell

    def cell(v: object) -> object:
        if not isinstance(v, str):
            return v
        return guard_cell(clean(v) if terminal else v)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    yield buf.getvalue().encode()
    for t, cost in items:
        buf.seek(0)
        buf.truncate()
        rec = record(t, cost)
        w.writerow(
            ["" if rec[f] is None else guard_cell(v) if isinstance(v := rec[f], str) else v for f in FIELDS]
        )
        yield buf.getvalue().encode()


class DumpError(ValueError):
    pass


def read_dump(data: bytes) -> tuple[list[Turn], int]:
    """Turns of a JSONL or CSV dump, and how many records were malformed (skipped)."""
    text = data.lstrip()
    if text.startswith(b"{"):
        return _read_jsonl(data)
    return _read_csv(data)


def _read_jsonl(data: bytes) -> tuple[list[Turn], int]:
    lines = data.splitlines()
    try:
        head = orjson.loads(lines[0]) if lines else None
    except orjson.JSONDecodeError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise DumpError("not a tokwatch ledger dump (its first line names the format)")
    if head.get("version") != VERSION:
        raise DumpError(
            f"a ledger dump of version {head.get('version')!r}; this tokwatch reads version {VERSION}"
        )
    out: list[Turn] = []
    bad = 0
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            d = orjson.loads(line)
            out.append(_turn(d))
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError):
            bad += 1
    return out, bad


def _read_csv(data: bytes) -> tuple[list[Turn], int]:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DumpError(f"not a readable CSV dump: {e}") from None
    if rows and set(FIELDS) - set(rows[0]):
        raise DumpError("not a tokwatch ledger dump (CSV columns differ)")
    out: list[Turn] = []
    bad = 0
    for r in rows:
        try:
            d: dict[str, object] = {}
            for k in FIELDS:
                v = r[k]
                if isinstance(v, str) and v.startswith("'") and v[1:2] in ("=", "+", "-", "@", "\t", "\r"):
                    v = v[1:]  # the formula guard the export added
                d[k] = v
            for k in ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
                      "context_tokens", "context_window"):  # fmt: skip
                d[k] = int(str(d[k]))
            d["timestamp"] = float(str(d["timestamp"]))
            d["sidechain"] = d["sidechain"] == "True"
            d["merge_max"] = d["merge_max"] == "True"
            d["agent_cost_usd"] = float(str(d["agent_cost_usd"])) if d["agent_cost_usd"] else None
            out.append(_turn(d))
        except (TypeError, ValueError, KeyError):
            bad += 1
    return out, bad


def _turn(d: dict[str, object]) -> Turn:
    """A dump record checked like a log line: wrong types or absurd values are refused."""
    ts, cost = d["timestamp"], d.get("agent_cost_usd")
    t = Turn(
        agent=d["agent"],  # type: ignore[arg-type]
        session_id=d["session_id"],  # type: ignore[arg-type]
        turn_id=d["turn_id"],  # type: ignore[arg-type]
        model=d["model"],  # type: ignore[arg-type]
        timestamp=float(ts) if type(ts) is int else ts,  # type: ignore[arg-type]
        input=d["input"],  # type: ignore[arg-type]
        cache_read=d["cache_read"],  # type: ignore[arg-type]
        cache_write=d["cache_write"],  # type: ignore[arg-type]
        cache_write_1h=d["cache_write_1h"],  # type: ignore[arg-type]
        output=d["output"],  # type: ignore[arg-type]
        reasoning=d["reasoning"],  # type: ignore[arg-type]
        context_tokens=d["context_tokens"],  # type: ignore[arg-type]
        context_window=d["context_window"],  # type: ignore[arg-type]
        project=d["project"],  # type: ignore[arg-type]
        sidechain=bool(d.get("sidechain")),
        merge_max=bool(d.get("merge_max")),
        cost_usd=float(cost) if type(cost) is int else cost,  # type: ignore[arg-type]
        dedup_key=d.get("dedup_key") or "",  # type: ignore[arg-type]
    )
    why = bad_turn(t) or (None if t.agent and t.session_id and t.turn_id else "an empty key")
    if why is not None:
        raise ValueError(why)
    return t
