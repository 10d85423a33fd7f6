"""Goose: `sessions/sessions.db` (SQLite, WAL) under `$GOOSE_PATH_ROOT/data` or
`${XDG_DATA_HOME:-~/.local/share}/goose` (XDG on macOS too); older Goose kept one
`sessions/<name>.jsonl` per session.

What is counted (docs/agents.md):
* Schema ≥ 15: one turn per `usage_ledger` row, i.e. per model call (compaction calls included:
  billed, but they do not move the context gauge). Rows `carried_forward` are not calls: Goose
  writes one when a session's running totals exceed its ledger (usage from before the ledger).
  That older usage is one AGGREGATE turn per session, `accumulated_* - Σ ledger rows`, recomputed
  on every read: it equals the carried-forward row once Goose writes it, and also covers sessions
  never touched since the upgrade.
* Schema < 15 (running totals only): OBSERVED STEPS (`_steps.Steps`): what `accumulated_*` grew
  by since the last read, keyed by `updated_at` and persisted in the parser state.
* `input_tokens` is the whole prompt (cache included): `input = input - cache_read - cache_write`.
* Pre-SQLite `<name>.jsonl` files (first line: metadata with `accumulated_*`) are read only when
  no `sessions.db` sits beside them (Goose imports them into it): one aggregate turn per file.

The database is read-only, one read transaction per change (`_sqlite`): new ledger rows by id,
sessions by `updated_at` (and all of them every FULL_SCAN_SECONDS).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tokwatch.agents._sqlite import columns, connect_ro, read_database, tables
from tokwatch.agents._steps import Steps
from tokwatch.agents.base import Agent, BadLine, LogParser, load_object, parse_ts
from tokwatch.core.models import SUM_MARK, Turn
from tokwatch.core.tailer import Cursor

FULL_SCAN_SECONDS = 30.0
SLACK_SECONDS = 10
_ACC = ("accumulated_input_tokens", "accumulated_output_tokens", "accumulated_cache_read_tokens",
        "accumulated_cache_write_tokens", "accumulated_cost")  # fmt: skip
PRE_LEDGER = f"{SUM_MARK}pre-ledger"


def _utc(text: object) -> float:
    """Goose's `updated_at` ('YYYY-MM-DD HH:MM:SS', UTC) as unix seconds; 0.0 when unreadable."""
    if not isinstance(text, str):
        return 0.0
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _n(v: object) -> int:
    return v if type(v) is int and 0 <= v < 10**15 else 0


class _Session:
    __slots__ = ("acc", "cost", "current_input", "model", "model_json", "project", "updated", "window")

    def __init__(self, row: Mapping[str, object]) -> None:
        self.project = str(row.get("working_dir") or "")
        self.updated = str(row.get("updated_at") or "")
        self.current_input = _n(row.get("input_tokens"))
        ai, ao = _n(row.get("accumulated_input_tokens")), _n(row.get("accumulated_output_tokens"))
        cr, cw = _n(row.get("accumulated_cache_read_tokens")), _n(row.get("accumulated_cache_write_tokens"))
        # accumulated input holds the whole prompt: the cache is taken out of it
        self.acc = (max(0, ai - cr - cw), cr, cw, ao, 0)
        cost = row.get("accumulated_cost")
        self.cost = float(cost) if isinstance(cost, int | float) and cost >= 0 else None
        self.model, self.window = "unknown", 0
        self.model_json = row.get("model_config_json")
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            cfg = orjson.loads(row.get("model_config_json") or b"{}")  # type: ignore[arg-type]
            if isinstance(cfg, dict):
                name, limit = cfg.get("model_name"), cfg.get("context_limit")
                self.model = name if isinstance(name, str) and name else "unknown"
                self.window = _n(limit)

    def sig(self) -> tuple[object, ...]:
        return (self.acc, self.cost, self.current_input, self.updated, self.model_json, self.project)


class GooseDbParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.ledger_mark = 0  # the largest usage_ledger.id read
        self.updated_mark = ""  # the largest sessions.updated_at read
        self.steps = Steps()  # schema < 15: running totals as observed steps
        self.pre: dict[str, list[int]] = {}  # session -> pre-ledger aggregate as last emitted
        self.full_scan_at = 0.0
        self.known: dict[str, _Session] = {}
        self.sigs: dict[
            str, tuple[object, ...]
        ] = {}  # session -> totals when its aggregate was last computed

    def state(self) -> dict[str, object]:
        return {
            "ledger_mark": self.ledger_mark,
            "updated_mark": self.updated_mark,
            "steps": self.steps.state(),
            "pre": self.pre,
        }

    def restore(self, state: Mapping[str, object]) -> None:
        mark = state.get("ledger_mark")
        self.ledger_mark = mark if type(mark) is int and mark >= 0 else 0
        upd = state.get("updated_mark")
        self.updated_mark = upd if isinstance(upd, str) else ""
        self.steps.restore(state.get("steps"))
        pre = state.get("pre")
        if isinstance(pre, dict):
            self.pre = {k: v for k, v in pre.items() if isinstance(k, str) and isinstance(v, list)}
        self.full_scan_at = 0.0

    def parse_document(self, data: bytes) -> list[Turn]:
        raise NotImplementedError("a database is queried, not parsed")

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        return read_database(self.path, cursor, self._read)

    def _read(self) -> list[Turn]:
        con = connect_ro(self.path)
        try:
            con.row_factory = sqlite3.Row
            con.execute("BEGIN")  # one snapshot: Goose updates totals and ledger in one transaction
            have = tables(con)
            if "sessions" not in have:
                return []
            cols = columns(con, "sessions")
            wanted = ["id", "working_dir", "updated_at", "model_config_json", "input_tokens", *_ACC]
            select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
            now = time.monotonic()
            if not self.full_scan_at or now - self.full_scan_at >= FULL_SCAN_SECONDS:
                rows = con.execute(f"SELECT {select} FROM sessions").fetchall()
                self.full_scan_at = now
            else:
                since = self._since()
                rows = con.execute(
                    f"SELECT {select} FROM sessions WHERE updated_at >= ?", (since,)
                ).fetchall()
            changed = {r["id"]: _Session(dict(r)) for r in rows if isinstance(r["id"], str)}
            for r in rows:
                if isinstance(r["updated_at"], str) and r["updated_at"] > self.updated_mark:
                    self.updated_mark = r["updated_at"]
            self.known.update(changed)
            if "usage_ledger" not in have:
                return self._steps(changed)
            return self._ledger(con, changed, select)
        finally:
            con.close()

    def _since(self) -> str:
        t = _utc(self.updated_mark)
        if not t:
            return ""
        return datetime.fromtimestamp(t - SLACK_SECONDS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")

    def _steps(self, changed: dict[str, _Session]) -> list[Turn]:
        turns = []
        for sid, s in changed.items():
            step = self.steps.observe(sid, s.updated, s.acc, s.cost)
            if step is None:
                continue
            turns.append(
                Turn(
                    agent="goose",
                    session_id=sid,
                    turn_id=step.turn_id,
                    model=s.model,
                    timestamp=_utc(s.updated),
                    input=step.input,
                    cache_read=step.cache_read,
                    cache_write=step.cache_write,
                    output=step.output,
                    project=s.project,
                    context_window=s.window,
                    context_tokens=s.current_input,  # the last call's whole prompt
                    sidechain=not s.current_input,
                    cost_usd=step.cost_usd,
                )
            )
        return turns

    def _ledger(self, con: sqlite3.Connection, changed: dict[str, _Session], select: str) -> list[Turn]:
        rows = con.execute(
            "SELECT id, session_id, created_timestamp, model, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, cost, cost_source, is_compaction FROM usage_ledger WHERE id > ? ORDER BY id",
            (self.ledger_mark,),
        ).fetchall()
        if rows:
            self.ledger_mark = max(self.ledger_mark, *(r["id"] for r in rows if type(r["id"]) is int))
        touched = {r["session_id"] for r in rows if isinstance(r["session_id"], str)}
        missing = sorted(touched - self.known.keys())
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in con.execute(f"SELECT {select} FROM sessions WHERE id IN ({marks})", chunk):
                self.known[r["id"]] = _Session(dict(r))
        turns: list[Turn] = []
        for r in rows:
            if r["cost_source"] == "carried_forward" or not isinstance(r["session_id"], str):
                continue
            t = self._call(r)
            if t is not None:
                turns.append(t)
        # the pre-ledger aggregate of every session whose totals moved or that got ledger rows
        todo = sorted(
            {sid for sid, s in changed.items() if self.sigs.get(sid) != s.sig()}
            | (touched & self.known.keys())
        )
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sums = {
                r[0]: r[1:]
                for r in con.execute(
                    "SELECT session_id, coalesce(sum(CASE WHEN carried THEN 0 ELSE input_tokens END), 0), "
                    "coalesce(sum(CASE WHEN carried THEN 0 ELSE cache_read_tokens END), 0), "
                    "coalesce(sum(CASE WHEN carried THEN 0 ELSE cache_write_tokens END), 0), "
                    "coalesce(sum(CASE WHEN carried THEN 0 ELSE output_tokens END), 0), "
                    "coalesce(sum(CASE WHEN carried THEN 0 ELSE cost END), 0), "
                    "min(CASE WHEN carried THEN created_timestamp END) "
                    "FROM (SELECT *, coalesce(cost_source, '') = 'carried_forward' AS carried FROM usage_ledger) "
                    f"WHERE session_id IN ({marks}) GROUP BY session_id",
                    chunk,
                )
            }
            for sid in chunk:
                t = self._pre_ledger(sid, sums.get(sid))
                if t is not None:
                    turns.append(t)
        return turns

    def _call(self, r: sqlite3.Row) -> Turn | None:
        s = self.known.get(r["session_id"])
        cr, cw = _n(r["cache_read_tokens"]), _n(r["cache_write_tokens"])
        inp = max(0, _n(r["input_tokens"]) - cr - cw)  # the whole prompt, cache included
        out = _n(r["output_tokens"])
        if not (inp or cr or cw or out):
            return None
        cost = r["cost"]
        model = r["model"] if isinstance(r["model"], str) and r["model"] else (s.model if s else "unknown")
        return Turn(
            agent="goose",
            session_id=r["session_id"],
            turn_id=f"ledger:{r['id']}",
            model=model,
            timestamp=parse_ts(r["created_timestamp"]),
            input=inp,
            cache_read=cr,
            cache_write=cw,
            output=out,
            project=s.project if s else "",
            context_window=s.window if s else 0,
            # a compaction call's prompt is the old conversation, not the context going on
            sidechain=bool(r["is_compaction"]) or not (inp or cr or cw),
            cost_usd=float(cost) if isinstance(cost, int | float) and 0 < cost < 1e6 else None,
        )

    def _pre_ledger(self, sid: str, sums: tuple[object, ...] | None) -> Turn | None:
        """Usage from before the ledger: the running totals less the ledger's calls (and less any
        steps tokwatch counted while this database was still below schema 15)."""
        s = self.known.get(sid)
        if s is None:
            return None
        self.sigs[sid] = s.sig()
        li, lcr, lcw, lo, lcost, carried = sums if sums is not None else (0, 0, 0, 0, 0.0, None)
        lcr, lcw = _n(lcr), _n(lcw)
        ledger = (max(0, _n(li) - lcr - lcw), lcr, lcw, _n(lo))
        stepped = self.steps.emitted.get(sid) or [0, 0, 0, 0, 0, None]
        inp, cr, cw, out = (
            max(0, a - b - int(c or 0))  # type: ignore[call-overload]
            for a, b, c in zip(s.acc[:4], ledger, stepped[:4], strict=True)
        )
        if not (inp or cr or cw or out) and sid not in self.pre:
            return None
        self.pre[sid] = [inp, cr, cw, out]
        cost = None
        if s.cost is not None:
            rest = s.cost - float(lcost or 0) - float(stepped[5] or 0)  # type: ignore[arg-type]
            cost = rest if rest > 1e-9 else None
        return Turn(
            agent="goose",
            session_id=sid,
            turn_id=PRE_LEDGER,
            model=s.model,
            timestamp=parse_ts(carried) or _utc(s.updated),
            input=inp,
            cache_read=cr,
            cache_write=cw,
            output=out,
            project=s.project,
            context_window=s.window,
            context_tokens=s.current_input,
            sidechain=not s.current_input,
            cost_usd=cost if (inp or cr or cw or out) else 0.0,
        )


class GooseLegacyParser(LogParser):
    """A pre-SQLite session file: its first line's running totals, as one aggregate turn."""

    def parse_document(self, data: bytes) -> list[Turn]:
        if (self.path.parent / "sessions.db").exists():
            return []  # Goose imported these files into the database: counted there
        lines = data.split(b"\n")
        meta = load_object(lines[0])
        ai, ao = _n(meta.get("accumulated_input_tokens")), _n(meta.get("accumulated_output_tokens"))
        if not (ai or ao):
            return []
        last = 0.0
        for raw in lines[1:]:
            with contextlib.suppress(BadLine):
                if raw.strip():
                    last = max(last, parse_ts(load_object(raw).get("created")))
        cwd = meta.get("working_dir")
        return [
            Turn(
                agent="goose",
                session_id=self.path.stem,
                turn_id=f"{SUM_MARK}session",
                model="unknown",  # these files name no model
                timestamp=last,
                input=ai,  # no cache split was recorded
                output=ao,
                project=cwd if isinstance(cwd, str) else "",
                sidechain=True,
            )
        ]


class Goose(Agent):
    name = "goose"
    mode = "document"
    sniff_priority = 40
    suffixes = (".db", ".jsonl")

    def __init__(self) -> None:
        self._dirs: set[Path] | None = None  # sessions folders named by GOOSE_PATH_ROOT

    def _sessions_dirs(self, env: Mapping[str, str], home: Path) -> list[Path]:
        out: list[Path] = []
        root = env.get("GOOSE_PATH_ROOT", "").strip()
        if root and Path(os.path.expanduser(root)).is_absolute():
            out.append(Path(os.path.expanduser(root)) / "data" / "sessions")
        xdg = env.get("XDG_DATA_HOME", "").strip()
        data = Path(os.path.expanduser(xdg)) if xdg else home / ".local" / "share"
        out.append(data / "goose" / "sessions")
        # other readers also look here (older builds' platform folders): harmless extra places
        out.append(home / "Library" / "Application Support" / "goose" / "sessions")
        out.append(data / "Block" / "goose" / "sessions")
        self._dirs = (self._dirs or set()) | set(out)  # (every call's: tests and commands may differ)
        return out

    def dirs(self) -> set[Path]:
        if self._dirs is None:
            self._sessions_dirs(os.environ, Path(os.environ.get("HOME") or Path.home()))
        return self._dirs or set()

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        dirs = self._sessions_dirs(env, home)
        return dirs[:-2] + [d for d in dirs[-2:] if d.is_dir()]

    def owns_path(self, path: Path) -> bool:
        if path.parent.name != "sessions":
            return False
        if path.name != "sessions.db" and path.suffix != ".jsonl":
            return False
        return path.parent.parent.name == "goose" or path.parent in self.dirs()

    def companion_of(self, path: Path) -> Path | None:
        if path.name == "sessions.db-wal":
            main = path.with_name("sessions.db")
            if self.owns_path(main):
                return main
        return None

    def is_document(self, path: Path) -> bool:
        return True

    def parser(self, path: Path) -> LogParser:
        if path.suffix == ".jsonl":
            return GooseLegacyParser(path)
        return GooseDbParser(path)


AGENT = Goose()
