"""Usage that agents and status lines read: `tokwatch status --json` and `tokwatch statusline`.

`status` loads history like `export` (through the cache) and describes one session: an agent
budgeting itself asks "how much have I used, how full is my context, how close am I to a budget".

`statusline` is Claude Code's status-line hook: it runs after every message in every open session,
so it must answer in well under half a second however much history there is. It never reads all
history: only Claude logs modified since a cut-off (today, the running 5-hour block and a margin
to find where that block's chain starts) plus the session's own files, through a small cache of
its own so a warm call reads only appended bytes. The context gauge comes from the end of the
transcript. Whatever goes wrong, it prints one line and exits 0: a hook must not fail loudly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokwatch.core.models import Session, Tokens, Turn
from tokwatch.core.text import clean
from tokwatch.fsio import read_regular
from tokwatch.reports import limits
from tokwatch.reports.budgets import current_usage

if TYPE_CHECKING:
    from datetime import tzinfo

    from tokwatch.config import Config
    from tokwatch.core.store import Store
    from tokwatch.ingest.engine import Engine

TAIL_BYTES = 256 * 1024
TAIL_MAX_BYTES = 8 * 1024 * 1024  # a line can hold megabytes of tool output: look back this far at most
SEP = " │ "


# ---------------------------------------------------------------- shared helpers
def claude_slug(path: str) -> str:
    """Claude Code's project folder name for a working directory (`/a/b.c` -> `-a-b-c`)."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def norm_dir(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def same_project(project: str, cwd: str) -> bool:
    """A session's project (a path, or Claude's folder slug before any line named the cwd) is `cwd`."""
    if not project:
        return False
    if project.startswith("-") and "/" not in project:
        return project == claude_slug(cwd)
    return norm_dir(project) == cwd


def tokens_json(t: Tokens | None, turn: Turn | None = None, cost: int | None = None) -> dict[str, Any]:
    """camelCase usage numbers; `cost` null when any turn is unpriced (never a fake $0)."""
    if turn is not None:
        return {
            "input": turn.input,
            "output": turn.output,
            "cacheRead": turn.cache_read,
            "cacheWrite": turn.cache_write,
            "totalTokens": turn.total,
            "cost": None if cost is None else round(cost / 1e12, 9),
        }
    t = t or Tokens()
    return {
        "turns": t.turns,
        "input": t.input,
        "output": t.output,
        "cacheRead": t.cache_read,
        "cacheWrite": t.cache_write,
        "totalTokens": t.total,
        "cost": None if t.unpriced_turns else round(t.cost_pico / 1e12, 9),
    }


# ---------------------------------------------------------------- status
@dataclass(slots=True)
class Target:
    """The session `status` describes: from the store, or only a log file when it has no turns yet."""

    session_id: str
    agent: str
    project: str
    session: Session | None = None
    path: Path | None = None  # the log file, for a session without turns


_CWD = re.compile(rb'"cwd"\s*:\s*("(?:[^"\\]|\\.)*")')


def _logged_cwd(path: Path) -> str:
    """The working directory a log's first lines name (before any turn has set the project)."""
    try:
        m = _CWD.search(read_regular(path, 65536))
        v = orjson.loads(m.group(1)) if m else ""
    except (OSError, ValueError):
        return ""
    return v if isinstance(v, str) else ""


def _file_target(engine: Engine, ident: str | None, cwd: str | None) -> tuple[float, Target] | None:
    """The newest followed log that has no turn yet (named by `ident`, or of `cwd`), with its mtime.

    Its session id is the file's name (Claude names transcripts by session id)."""
    best: tuple[float, Target] | None = None
    for path, f in engine.files.items():
        if f.turns:
            continue
        owner = path.stem
        project = str(getattr(f.parser, "project", "") or "")
        if ident is not None and not owner.startswith(ident):
            continue
        if cwd is not None and not same_project(_logged_cwd(path) or project, cwd):
            continue
        mtime = f.cursor.mtime_ns / 1e9
        if best is None or mtime > best[0]:
            best = (mtime, Target(owner, f.agent.name, project, path=path))
    if best is None:
        return None
    t = best[1]
    if t.path is not None and (not t.project or (t.project.startswith("-") and "/" not in t.project)):
        t.project = _logged_cwd(t.path) or t.project
    return best


def _files_mtime(engine: Engine, session_id: str) -> float:
    """When a session's log files last changed (comparable with a turn-less log's mtime)."""
    return max(
        (f.cursor.mtime_ns / 1e9 for f in engine.files.values() if session_id in f.sessions),
        default=0.0,
    )


def find_target(engine: Engine, session_id: str | None, cwd: str | None) -> Target | None:
    """The named session, else the most recently active one (of `cwd`).

    A log without any turn yet (a session just started) is a candidate when asked for by id or
    folder, or when no session has turns: for `--cwd`, it wins when its file changed after the
    other sessions' files (its turns will come; the older sessions are done)."""
    store = engine.store
    with store.lock:
        sessions = list(store.sessions.values())
    if session_id:
        matches = [s for s in sessions if s.session_id == session_id] or [
            s for s in sessions if s.session_id.startswith(session_id)
        ]
        if len({s.session_id for s in matches}) > 1:
            matches = []  # an ambiguous prefix names nothing
    else:
        matches = [s for s in sessions if cwd is None or same_project(s.project, cwd)]
    best = max(matches, key=lambda s: (s.last_seen, s.session_id)) if matches else None
    if best is not None and (session_id or cwd is None):
        return Target(best.session_id, best.agent, best.project, best)
    fresh = _file_target(engine, session_id, cwd)
    if fresh is not None and (best is None or fresh[0] > _files_mtime(engine, best.session_id)):
        return fresh[1]
    return Target(best.session_id, best.agent, best.project, best) if best else None


def status_doc(
    store: Store, target: Target | None, config: Config, now: float, tz: tzinfo | None = None
) -> dict[str, Any]:
    s = target.session if target else None
    doc: dict[str, Any] = {"session": None}
    if target is not None:
        model = (s.context_model or (s.last_turn.model if s.last_turn else "")) if s else ""
        doc["session"] = {
            "id": target.session_id,
            "agent": target.agent,
            "project": target.project,
            "model": model or None,
        }
    last = s.last_turn if s else None
    window, assumed = (s.context_window, s.context_window_assumed) if s else (0, False)
    if not window and target is not None:  # no turn yet: the agent's default window
        window, assumed = store.pricer.window(target.agent, s.context_model if s else "", 0, 0)
    used = s.context_used if s else 0
    usage: dict[str, Any] = {
        "session": tokens_json(s.totals if s else None),
        "lastTurn": tokens_json(None, last, s.last_cost) if last and s else None,
        "context": {
            "used": used,
            "window": window or None,
            "windowAssumed": assumed,  # the agent's default: neither logged nor configured
            "percent": round(100 * used / window, 1) if window else None,
        },
    }
    cfg = config.budgets
    if cfg.items():
        u = current_usage(store, now, tz, cfg.agents)
        states = u.states(cfg, s.totals if s else Tokens())
        usage["budgets"] = {name: st.as_json() for name, st in states.items()}
    # the plans' windows as the agents last reported them (every agent's: a plan is shared), and
    # this session's road to compaction
    usage["limits"] = limits.limits_json(
        limits.windows(store.ledger, now), now, config.limits.stale_minutes * 60
    )
    usage["compaction"] = limits.road(store.ledger, s).as_json() if s is not None and window else None
    doc["usage"] = usage
    return doc


def status_text(doc: Mapping[str, Any]) -> str:
    s, u = doc["session"], doc["usage"]
    lines = []
    if s is None:
        lines.append("no session found")
    else:
        model = clean(s["model"]) if s["model"] else "(no model yet)"
        lines.append(f"{clean(s['agent'])} {clean(s['id'])}  {clean(s['project'])}  {model}")
    su = u["session"]
    lines.append(f"session:       {su['turns']} turns, {su['totalTokens']:,} tokens, {_usd(su['cost'])}")
    if u["lastTurn"]:
        lt = u["lastTurn"]
        lines.append(f"last turn:     {lt['totalTokens']:,} tokens, {_usd(lt['cost'])}")
    c = u["context"]
    if c["window"]:
        about = "~" if c.get("windowAssumed") else ""
        lines.append(f"context:       {c['used']:,} of {about}{c['window']:,} ({about}{c['percent']:.0f}%)")
    else:
        lines.append(f"context:       {c['used']:,} of an unknown window")
    road = u.get("compaction")
    if road and road["tokensLeft"] is not None:
        where = (
            f"auto-compacts at {road['threshold']:,}"
            if road["threshold"] is not None
            else "no known auto-compact rule"
        )
        left = f"{road['tokensLeft']:,} tokens left"
        if road["turnsLeft"] is not None:
            left += f", ~{road['turnsLeft']} turns at {road['growthPerTurn']:,}/turn"
        lines.append(f"compaction:    {where} ({left}); {road['count']} so far")
    for name, b in u.get("budgets", {}).items():
        used = f"${b['used']:,.2f}" if b["unit"] == "usd" else f"{b['used']:,}"
        limit = f"${b['limit']:,.2f}" if b["unit"] == "usd" else f"{b['limit']:,}"
        lb = "≥" if b.get("lowerBound") else ""
        lines.append(f"{name + ' budget:':<15}{lb}{used} of {limit} ({b['percent']:.0f}%)")
    for agent, wins in u.get("limits", {}).items():
        for label, w in wins.items():
            lines.append(f"{f'{agent} {label}:':<15}{limit_text(w)}")
    return "\n".join(lines) + "\n"


def limit_text(w: Mapping[str, Any]) -> str:
    """`13% used, resets in 3h12m, 42% at this pace; seen 2m ago` (a `WindowState.as_json`)."""
    from tokwatch.core.text import duration

    if w["reset"]:
        return f"reset (was {w['observedAt']}: the figure from before no longer applies)"
    out = f"{w['percent']:.0f}% used"
    if w["resetsIn"] is not None:
        out += f", resets in {duration(w['resetsIn'])}"
    if w["fullIn"] is not None:
        out += f", 100% in ~{duration(w['fullIn'])} at this pace"
    elif w["projected"] is not None:
        out += f", ~{w['projected']:.0f}% at the reset at this pace"
    out += f"; seen {duration(w['age'])} ago" + (" (stale)" if w["stale"] else "")
    return out


def _usd(v: float | None) -> str:
    return "cost unknown" if v is None else f"${v:,.2f}"
