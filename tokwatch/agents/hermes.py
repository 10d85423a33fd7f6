"""Hermes Agent (Nous Research): `state.db` (SQLite, WAL) in `$HERMES_HOME` or `~/.hermes`, and
in each named profile, `<home>/profiles/<name>/state.db`.

Hermes keeps RUNNING TOTALS, not requests, so every turn here is an OBSERVED STEP
(`_steps.Steps`, docs/agents.md): what a total grew by since tokwatch last read it.

* `session_model_usage` rows (one per session, model, billing route and task) only grow: each row
  is stepped on its own, timed by its `last_seen`, priced by its own model. The CLI adds every
  call to them (task `''`, or a per-turn route such as `voice_chat`); auxiliary calls (title
  generation, compression, vision, …) exist ONLY there.
* `sessions.*` counters hold the main loop's usage. For CLI sessions that is the sum of the
  main-loop rows; a gateway session (Telegram, Discord, …) SETS them to its cached agent's totals
  and writes no main-loop row. So the session row is stepped as the RESIDUAL it holds beyond its
  main-loop rows: ~0 for the CLI, everything for a gateway. A gateway total that goes down (the
  agent was rebuilt) re-baselines, as Hermes' own daily table does: nothing is counted twice.
* `input_tokens` already excludes the cache; `output_tokens` includes the reasoning.
* Cost: `actual_cost_usd` when positive, else `estimated_cost_usd`.
* Compression continues a conversation in a child row (`parent_session_id`): each row is its own
  session here, with its own counters. The context in use is not recorded: the gauge is unknown.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents._sqlite import columns, connect_ro, read_database, tables
from tokwatch.agents._steps import Step, Steps
from tokwatch.agents.base import Agent, LogParser, parse_ts
from tokwatch.core.models import Turn
from tokwatch.core.tailer import Cursor

FULL_SCAN_SECONDS = 30.0
SLACK_SECONDS = 10.0
#: Sessions written to within this many seconds are re-read on every change (a gateway's totals
#: are updated by a background writer, after the message that prompted them).
HOT_SECONDS = 600.0
#: Tasks of `session_model_usage` whose calls are also in `sessions.*` (the main loop and the
#: per-turn routes `update_token_counts(task=…)` names); every other task is an auxiliary call.
MAIN_TASKS = ("", "voice_chat")
_COUNTERS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def _n(v: object) -> int:
    return v if type(v) is int and 0 <= v < 10**15 else 0


def _cost(actual: object, estimated: object) -> float | None:
    for v in (actual, estimated):
        if isinstance(v, int | float) and 0 < v < 1e9:
            return float(v)
    return None


class HermesParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.steps = Steps()
        self.message_mark = 0  # the largest messages.id read
        self.usage_mark = 0.0  # the largest session_model_usage.last_seen read
        self.full_scan_at = 0.0
        self.hot: dict[str, float] = {}  # session -> monotonic time it was last seen written

    def state(self) -> dict[str, object]:
        return {"steps": self.steps.state(), "message_mark": self.message_mark, "usage_mark": self.usage_mark}

    def restore(self, state: Mapping[str, object]) -> None:
        self.steps.restore(state.get("steps"))
        m = state.get("message_mark")
        self.message_mark = m if type(m) is int and m >= 0 else 0
        u = state.get("usage_mark")
        self.usage_mark = float(u) if isinstance(u, int | float) and u >= 0 else 0.0
        self.full_scan_at = 0.0

    def parse_document(self, data: bytes) -> list[Turn]:
        raise NotImplementedError("a database is queried, not parsed")

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        return read_database(self.path, cursor, self._read)

    def _read(self) -> list[Turn]:
        con = connect_ro(self.path)
        try:
            con.row_factory = sqlite3.Row
            con.execute("BEGIN")
            have = tables(con)
            if "sessions" not in have:
                return []
            cols = columns(con, "sessions")
            wanted = ["id", "model", "cwd", "started_at", "last_activity_at", "ended_at",
                      "actual_cost_usd", "estimated_cost_usd", *_COUNTERS]  # fmt: skip
            select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
            usage = "session_model_usage" in have
            now = time.monotonic()
            if not self.full_scan_at or now - self.full_scan_at >= FULL_SCAN_SECONDS:
                self.full_scan_at = now
                sessions = con.execute(f"SELECT {select} FROM sessions").fetchall()
                rows = con.execute("SELECT * FROM session_model_usage").fetchall() if usage else []
            else:
                ids = self._changed(con, usage, now)
                sessions, rows = [], []
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    sessions += con.execute(
                        f"SELECT {select} FROM sessions WHERE id IN ({marks})", chunk
                    ).fetchall()
                    if usage:
                        rows += con.execute(
                            f"SELECT * FROM session_model_usage WHERE session_id IN ({marks})", chunk
                        ).fetchall()
            with contextlib.suppress(sqlite3.Error):
                top = con.execute("SELECT max(id) FROM messages").fetchone()[0]
                if type(top) is int:
                    self.message_mark = max(self.message_mark, top)
        finally:
            con.close()
        for r in rows:
            seen = r["last_seen"]
            if isinstance(seen, int | float) and seen > self.usage_mark:
                self.usage_mark = float(seen)
        return self._turns(sessions, rows)

    def _changed(self, con: sqlite3.Connection, usage: bool, now: float) -> list[str]:
        """Sessions that may have moved: new messages, recent usage rows, or written lately."""
        ids: set[str] = set()
        with contextlib.suppress(sqlite3.Error):
            for (sid,) in con.execute(
                "SELECT DISTINCT session_id FROM messages WHERE id > ?", (self.message_mark,)
            ):
                if isinstance(sid, str):
                    ids.add(sid)
                    self.hot[sid] = now
        if usage:
            for (sid,) in con.execute(
                "SELECT DISTINCT session_id FROM session_model_usage WHERE last_seen >= ?",
                (self.usage_mark - SLACK_SECONDS,),
            ):
                if isinstance(sid, str):
                    ids.add(sid)
                    self.hot[sid] = now
        for sid, at in list(self.hot.items()):
            if now - at > HOT_SECONDS:
                del self.hot[sid]
            else:
                ids.add(sid)
        return sorted(ids)

    def _turns(self, sessions: list[sqlite3.Row], rows: list[sqlite3.Row]) -> list[Turn]:
        by_session: dict[str, list[sqlite3.Row]] = {}
        for r in rows:
            if isinstance(r["session_id"], str):
                by_session.setdefault(r["session_id"], []).append(r)
        turns: list[Turn] = []
        info = {s["id"]: s for s in sessions if isinstance(s["id"], str)}
        for sid in sorted(info.keys() | by_session.keys()):
            s = info.get(sid)
            project = s["cwd"] if s is not None and isinstance(s["cwd"], str) else ""
            main = [0, 0, 0, 0, 0]
            main_cost = 0.0
            for r in by_session.get(sid, ()):
                counts = tuple(_n(r[c]) for c in _COUNTERS)
                task = r["task"] if isinstance(r["task"], str) else ""
                if task in MAIN_TASKS:
                    main = [a + b for a, b in zip(main, counts, strict=True)]
                    main_cost += _cost(r["actual_cost_usd"], r["estimated_cost_usd"]) or 0.0
                key = "|".join(
                    str(r[k] or "") for k in ("model", "billing_provider", "billing_base_url", "billing_mode")
                )
                seen = r["last_seen"]
                step = self.steps.observe(
                    f"{sid}|{key}|{task}",
                    f"{seen}",
                    counts,
                    _cost(r["actual_cost_usd"], r["estimated_cost_usd"]),  # type: ignore[arg-type]
                )
                if step is not None:
                    model = r["model"]
                    turns.append(
                        self._turn(
                            sid, step, model if isinstance(model, str) else "", parse_ts(seen), project
                        )
                    )
            if s is None:
                continue
            # what the session row holds beyond its main-loop rows (a gateway's whole usage)
            residual = tuple(max(0, _n(s[c]) - m) for c, m in zip(_COUNTERS, main, strict=True))
            total_cost = _cost(s["actual_cost_usd"], s["estimated_cost_usd"])
            rest_cost = (
                total_cost - main_cost if total_cost is not None and total_cost - main_cost > 1e-9 else None
            )
            when = s["last_activity_at"] or s["ended_at"] or s["started_at"]
            step = self.steps.observe(f"{sid}|session", f"{when}", residual, rest_cost)  # type: ignore[arg-type]
            if step is not None:
                model = s["model"]
                turns.append(
                    self._turn(sid, step, model if isinstance(model, str) else "", parse_ts(when), project)
                )
        return turns

    @staticmethod
    def _turn(sid: str, step: Step, model: str, ts: float, project: str) -> Turn:
        return Turn(
            agent="hermes",
            session_id=sid,
            turn_id=step.turn_id,
            model=model or "unknown",
            timestamp=ts,
            input=step.input,
            cache_read=step.cache_read,
            cache_write=step.cache_write,
            output=step.output,
            reasoning=step.reasoning,
            project=project,
            sidechain=True,  # a step's prompt is not one request's: the context is not known
            cost_usd=step.cost_usd,
        )


class Hermes(Agent):
    name = "hermes"
    mode = "document"
    sniff_priority = 40
    suffixes = (".db",)

    def __init__(self) -> None:
        self._homes: set[Path] | None = None

    def _find(self, env: Mapping[str, str], home: Path) -> list[Path]:
        custom = env.get("HERMES_HOME", "").strip()
        root = Path(os.path.expanduser(custom)) if custom else home / ".hermes"
        homes = [root]
        with contextlib.suppress(OSError):
            homes += sorted(p.parent for p in (root / "profiles").glob("*/state.db"))
        self._homes = (self._homes or set()) | set(homes)
        return homes

    def homes(self) -> set[Path]:
        """Computed on first use too: a backfill worker process never calls `roots()`."""
        if self._homes is None:
            self._find(os.environ, Path(os.environ.get("HOME") or Path.home()))
        return self._homes or set()

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        return [h / "state.db" for h in self._find(env, home)]

    def owns_path(self, path: Path) -> bool:
        if path.name != "state.db":
            return False
        parent = path.parent
        return (
            parent.name == ".hermes"
            or (parent.parent.name == "profiles" and parent.parent.parent.name == ".hermes")
            or parent in self.homes()
        )

    def companion_of(self, path: Path) -> Path | None:
        if path.name == "state.db-wal":
            main = path.with_name("state.db")
            if self.owns_path(main):
                return main
        return None

    def parser(self, path: Path) -> LogParser:
        return HermesParser(path)


AGENT = Hermes()
