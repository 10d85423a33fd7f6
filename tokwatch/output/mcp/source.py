"""Everything the MCP server reads, in one class: the seam where the ledger plugs in.

`UsageSource` reads through the same engine and ledger as the CLI (`make_engine`), keeps them
current with the engine's follow loop in a thread of its own (the store's and the ledger's one
writer), and answers the three tools with the status and report functions: sessions as the store
shows them, sums in SQL on the ledger. It returns plain JSON-ready dicts and raises `Unanswerable`
for a question with no answer. The server module only validates arguments and wraps these dicts
into tool results: whatever tokwatch reads its numbers from next, this module is the one to change.

Numbers use the camelCase vocabulary of `status --json` (`input` excludes cache reads and writes,
`output` includes `reasoning`). `cost` is null when any counted turn has no known price, and then
`knownCost` gives the priced part (a lower bound); a cost is never a silent 0.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from tokwatch.core.models import Session, Tokens, Turn, iso
from tokwatch.ingest.setup import make_engine
from tokwatch.reports import report
from tokwatch.reports.status import Target, find_target, same_project, status_doc, tokens_json

if TYPE_CHECKING:
    from tokwatch.config import Config
    from tokwatch.ingest.engine import Engine
    from tokwatch.output.mcp.caller import Caller

log = logging.getLogger(__name__)

GROUPS = ("day", "week", "month", "project", "model", "agent", "session")
_PERIOD_VIEWS = {"day": "daily", "week": "weekly", "month": "monthly"}


class Unanswerable(Exception):
    """No answer to give (no such session, still reading history, …): the text says why."""


@dataclass(frozen=True, slots=True)
class Choice:
    target: Target
    method: str  # session_id | agent_session_env | agent_and_project | project
    reason: str


def numbers(t: Tokens) -> dict[str, Any]:
    """A sum of turns in the status vocabulary, with reasoning and the known part of an unknown cost."""
    out: dict[str, Any] = {}
    for k, v in tokens_json(t).items():
        out[k] = v
        if k == "output":
            out["reasoning"] = t.reasoning
    if t.unpriced_turns:
        out["knownCost"] = round(t.cost_pico / 1e12, 9)
        out["unpricedTurns"] = t.unpriced_turns
    return out


def _context(s: Session) -> dict[str, Any]:
    window = s.context_window or None
    return {
        "used": s.context_used,
        "window": window,
        "percent": round(100 * s.context_used / window, 1) if window else None,
    }


class UsageSource:
    """The store kept live by the engine, and the questions the MCP tools ask of it."""

    def __init__(
        self,
        paths: Sequence[Path] | None,
        config: Config,
        *,
        use_cache: bool = True,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.tz = tz
        self.clock = clock
        self.engine = make_engine(paths, config, use_cache=use_cache)
        self.store = self.engine.store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    # ---------------------------------------------------------------- life
    def start(self) -> None:
        """Read history, then follow the logs, in a background thread (the one writer)."""
        self._thread = threading.Thread(target=self._run, name="tokwatch-mcp-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine.backfill()
            for problem in self.engine.problems:  # stderr: the agent keeps it in its MCP log
                log.warning("tokwatch mcp: %s", problem)
            self.engine.follow(self._stop, lambda changes: None)  # each batch is recorded by then
        except BaseException as e:  # the server keeps answering from what it has
            self._failed = e
            self.engine.ready.set()
            log.exception("tokwatch mcp: reading the logs failed")

    def wait_ready(self, timeout: float) -> None:
        if not self.engine.ready.wait(timeout):
            raise Unanswerable(
                f"tokwatch is still reading the agents' logs (over {timeout:.0f} s so far); ask again shortly"
            )
        if self._failed is not None and not self.store.sessions:
            raise Unanswerable(f"tokwatch could not read the agents' logs: {self._failed}")

    def close(self) -> None:
        """Stop following. Every batch read is already committed to the ledger; closing it once
        the engine thread has stopped checkpoints its write-ahead log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                return
        with contextlib.suppress(Exception):
            self.store.ledger.close()

    # ---------------------------------------------------------------- session_status
    def choose(self, caller: Caller, session_id: str | None) -> Choice:
        """The session to describe: the one named, else the caller's own (see `caller.py`)."""
        with self.store.lock:
            return self._choose(caller, session_id)

    def _engine_view(self) -> Engine:
        """What `find_target` reads of the engine, with a copy of the followed files: the engine
        thread adds files while this thread walks them (copying a dict is one step for the GIL)."""
        return cast("Engine", SimpleNamespace(store=self.store, files=dict(self.engine.files)))

    def _choose(self, caller: Caller, session_id: str | None) -> Choice:
        engine = self._engine_view()
        if session_id:
            t = find_target(engine, session_id, None)
            if t is None:
                raise Unanswerable(
                    f"No session matches session_id {session_id!r} (a full id or a unique prefix); "
                    "list_sessions shows the recent ones."
                )
            return Choice(t, "session_id", f"the session_id argument {session_id!r} names it")
        note = ""
        if caller.session_id:
            t = find_target(engine, caller.session_id, None)
            if t is not None and t.agent == caller.agent:
                return Choice(
                    t,
                    "agent_session_env",
                    f"{caller.agent_from}, and it started this server with {caller.session_from} "
                    f"= {caller.session_id}",
                )
            note = f" ({caller.session_from} = {caller.session_id} names no {caller.agent} session tokwatch has read)"
        where = f"{caller.cwd} (from {caller.cwd_from})"
        if caller.agent is None:
            t = find_target(engine, None, caller.cwd)
            if t is None:
                raise Unanswerable(
                    f"No session found for the project {where}, and {caller.agent_from}. "
                    "Pass session_id (list_sessions shows the recent ones)."
                )
            return Choice(
                t, "project", f"the most recently active session of the project {where}; {caller.agent_from}"
            )
        t = find_target(engine, None, caller.cwd)  # includes a log that has no turn yet
        if t is None or t.agent != caller.agent:
            t = self._latest(caller.agent, caller.cwd)
        if t is None:
            raise Unanswerable(
                f"No {caller.agent} session found for the project {where}{note}. "
                "Pass session_id (list_sessions shows the recent ones)."
            )
        return Choice(
            t,
            "agent_and_project",
            f"the most recently active {caller.agent} session of the project {where}; "
            f"{caller.agent_from}{note}",
        )

    def _latest(self, agent: str, cwd: str) -> Target | None:
        with self.store.lock:
            mine = [
                s for s in self.store.sessions.values() if s.agent == agent and same_project(s.project, cwd)
            ]
        if not mine:
            return None
        s = max(mine, key=lambda s: (s.last_seen, s.session_id))
        return Target(s.session_id, s.agent, s.project, s)

    def session_status(self, caller: Caller, session_id: str | None = None) -> dict[str, Any]:
        """`status --json`'s answer for the chosen session, with how it was chosen, reasoning
        tokens, the last turn's model and time, and the context tokens left."""
        with self.store.lock:
            choice = self.choose(caller, session_id)
            t = choice.target
            now = self.clock()
            doc = status_doc(self.store, t, self.config, now, self.tz)
            s = t.session
            usage = doc["usage"]
            usage["session"] = numbers(s.totals if s else Tokens())
            last: Turn | None = s.last_turn if s else None
            if last is not None:
                lt = usage["lastTurn"]
                usage["lastTurn"] = {
                    "input": lt["input"],
                    "output": lt["output"],
                    "reasoning": last.reasoning,
                    **{k: lt[k] for k in ("cacheRead", "cacheWrite", "totalTokens", "cost")},
                    "model": last.model,
                    "at": iso(last.timestamp) or None,
                }
            ctx = usage["context"]
            ctx["remaining"] = max(0, ctx["window"] - ctx["used"]) if ctx["window"] else None
            session = doc["session"]
            session["firstSeen"] = iso(s.first_seen) if s and s.first_seen else None
            session["lastSeen"] = iso(s.last_seen) if s and s.last_seen else None
        return {
            "session": session,
            "selection": {"method": choice.method, "reason": choice.reason},
            "usage": usage,
            "asOf": iso(now),
        }

    # ---------------------------------------------------------------- usage_report
    def usage_report(
        self,
        group_by: str = "day",
        since: date | None = None,
        until: date | None = None,
        agent: str | None = None,
        project: str | None = None,
        top_n: int = 10,
    ) -> dict[str, Any]:
        """Rows of the `report` command's data, grouped by a period or a key, cut to `top_n`:
        the latest periods, or the keys that cost most. `totals` covers every row."""
        if group_by not in GROUPS:
            raise Unanswerable(f"group_by must be one of {', '.join(GROUPS)}")
        if since and until and since > until:
            raise Unanswerable(f"since ({since}) is after until ({until})")
        f = report.Filters(
            agents=frozenset([agent] if agent else ()), project=project, since=since, until=until, tz=self.tz
        )
        with self.store.lock:
            if group_by in _PERIOD_VIEWS:
                rep = report.build(self.store, _PERIOD_VIEWS[group_by], f, now=self.clock())
                rows = [(r.key[report.KEY_NAMES[rep.view]], r.tokens, r.by_model) for r in rep.rows]
            else:
                rep = report.build(self.store, "session", f, now=self.clock())
                rows = _regroup(rep.rows, group_by)
        if group_by in _PERIOD_VIEWS:
            keep = list(range(len(rows)))[-top_n:]  # the latest periods, oldest first
        else:  # what cost most first (the known part of an unknown cost), then the most tokens
            keep = sorted(range(len(rows)), key=lambda i: (-rows[i][1].cost_pico, -rows[i][1].total))[:top_n]
        kept: list[dict[str, Any]] = []
        for i in keep:
            key, tokens, by_model = rows[i]
            row: dict[str, Any] = dict(key) if isinstance(key, dict) else {group_by: key}
            row.update(numbers(tokens))
            if group_by != "model":
                row["models"] = sorted(by_model)
            kept.append(row)
        doc: dict[str, Any] = {
            "groupBy": group_by,
            "range": {
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "timeZone": report.zone_name(self.tz),
            },
            "filters": {"agent": agent, "project": project},
            "rows": kept,
            "totals": numbers(rep.totals),
            "rowCount": len(rows),
        }
        if len(keep) < len(rows):
            shown = set(keep)
            rest = Tokens.sum(rows[i][1] for i in range(len(rows)) if i not in shown)
            doc["omitted"] = {"rows": len(rows) - len(keep), **numbers(rest)}
        return doc

    # ---------------------------------------------------------------- list_sessions
    def list_sessions(
        self,
        limit: int = 10,
        agent: str | None = None,
        project: str | None = None,
        active_only: bool = False,
    ) -> dict[str, Any]:
        """The most recently active sessions first, with their context and cost."""
        now = self.clock()
        active_s = self.config.active_minutes * 60
        with self.store.lock:
            found = [
                s
                for s in self.store.sessions.values()
                if (agent is None or s.agent == agent)
                and (not project or project.lower() in s.project.lower())
                and (not active_only or (s.last_seen and now - s.last_seen <= active_s))
            ]
            found.sort(key=lambda s: (s.last_seen, s.session_id), reverse=True)
            rows = [
                {
                    "id": s.session_id,
                    "agent": s.agent,
                    "project": s.project,
                    "model": s.context_model or (s.last_turn.model if s.last_turn else None),
                    "models": s.models,
                    "firstSeen": iso(s.first_seen) or None,
                    "lastSeen": iso(s.last_seen) or None,
                    "active": bool(s.last_seen) and now - s.last_seen <= active_s,
                    **numbers(s.totals),
                    "context": _context(s),
                }
                for s in found[:limit]
            ]
        return {
            "sessions": rows,
            "shown": len(rows),
            "matching": len(found),
            "activeMinutes": self.config.active_minutes,
            "asOf": iso(now),
        }


def _regroup(rows: list[report.Row], group_by: str) -> list[tuple[Any, Tokens, dict[str, Tokens]]]:
    """Session rows (already cut to the date range) summed by project, agent or model."""
    if group_by == "session":
        out = []
        for r in rows:
            key = {
                "session": r.key["session_id"],
                "agent": r.key["agent"],
                "project": r.key["project"],
                "lastSeen": r.extra.get("last_seen"),
            }
            out.append((key, r.tokens, r.by_model))
        return out
    parts: dict[str, list[Tokens]] = {}
    models: dict[str, dict[str, list[Tokens]]] = {}
    for r in rows:
        if group_by == "model":
            for m, t in r.by_model.items():
                parts.setdefault(m, []).append(t)
            continue
        key = r.key[group_by]
        parts.setdefault(key, []).append(r.tokens)
        for m, t in r.by_model.items():
            models.setdefault(key, {}).setdefault(m, []).append(t)
    return [
        (k, Tokens.sum(ts), {m: Tokens.sum(mts) for m, mts in models.get(k, {}).items()})
        for k, ts in parts.items()
    ]
