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

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokwatch.blocks import BLOCK_SECONDS
from tokwatch.budgets import LOOKBACKS, BudgetState, Usage, current_usage, midnight, usage_from_turns
from tokwatch.cache import Cache, Loaded, default_cache_dir
from tokwatch.models import Session, Tokens, Turn

if TYPE_CHECKING:
    from datetime import tzinfo

    from tokwatch.config import Config
    from tokwatch.engine import Engine
    from tokwatch.store import Store

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
        with open(path, "rb") as f:
            m = _CWD.search(f.read(65536))
        v = orjson.loads(m.group(1)) if m else ""
    except (OSError, ValueError):
        return ""
    return v if isinstance(v, str) else ""


def _file_target(engine: Engine, ident: str | None, cwd: str | None) -> tuple[float, Target] | None:
    """The newest followed log that has no turn yet (named by `ident`, or of `cwd`), with its mtime.

    Its session id is the file's name (Claude names transcripts by session id)."""
    best: tuple[float, Target] | None = None
    for path, f in engine.files.items():
        if f.has_turns():
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
        (f.cursor.mtime_ns / 1e9 for f in engine.files.values() if session_id in f.sessions()),
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
    window = s.context_window if s else 0
    if not window and target is not None:  # no turn yet: the agent's default window
        window = store.pricer.context_window(target.agent, s.context_model if s else "", 0, 0)
    used = s.context_used if s else 0
    usage: dict[str, Any] = {
        "session": tokens_json(s.totals if s else None),
        "lastTurn": tokens_json(None, last, store.cost_pico(last)) if last else None,
        "context": {
            "used": used,
            "window": window or None,
            "percent": round(100 * used / window, 1) if window else None,
        },
    }
    cfg = config.budgets
    if cfg.items():
        u = current_usage(store, now, tz, cfg.agents)
        states = u.states(cfg, s.totals if s else Tokens())
        usage["budgets"] = {name: st.as_json() for name, st in states.items()}
    doc["usage"] = usage
    return doc


def status_text(doc: Mapping[str, Any]) -> str:
    s, u = doc["session"], doc["usage"]
    lines = []
    if s is None:
        lines.append("no session found")
    else:
        lines.append(f"{s['agent']} {s['id']}  {s['project']}  {s['model'] or '(no model yet)'}")
    su = u["session"]
    lines.append(f"session:       {su['turns']} turns, {su['totalTokens']:,} tokens, {_usd(su['cost'])}")
    if u["lastTurn"]:
        lt = u["lastTurn"]
        lines.append(f"last turn:     {lt['totalTokens']:,} tokens, {_usd(lt['cost'])}")
    c = u["context"]
    if c["window"]:
        lines.append(f"context:       {c['used']:,} of {c['window']:,} ({c['percent']:.0f}%)")
    for name, b in u.get("budgets", {}).items():
        used = f"${b['used']:,.2f}" if b["unit"] == "usd" else f"{b['used']:,}"
        limit = f"${b['limit']:,.2f}" if b["unit"] == "usd" else f"{b['limit']:,}"
        lb = "≥" if b.get("lowerBound") else ""
        lines.append(f"{name + ' budget:':<15}{lb}{used} of {limit} ({b['percent']:.0f}%)")
    return "\n".join(lines) + "\n"


def _usd(v: float | None) -> str:
    return "cost unknown" if v is None else f"${v:,.2f}"


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.cli import make_engine, report_skips
    from tokwatch.report import parse_tz

    try:
        tz = parse_tz(args.tz)
    except ValueError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 2
    engine = make_engine(args.paths, config, use_cache=not args.no_cache)
    engine.backfill()
    cwd = norm_dir(args.cwd) if args.cwd else None
    doc = status_doc(engine.store, find_target(engine, args.session, cwd), config, time.time(), tz)
    report_skips(engine)
    if args.json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        sys.stdout.write(status_text(doc))
    return 0


# ---------------------------------------------------------------- statusline
class ScopedCache(Cache):
    """A cache that forgets every file but `keep`: the status line's stays as small as its window."""

    def __init__(self, directory: Path, keep: set[str]) -> None:
        super().__init__(directory)
        self.keep = keep

    def read(self) -> Loaded:
        loaded = super().read()
        loaded.entries = {p: e for p, e in loaded.entries.items() if p in self.keep}
        return loaded


class ChainState:
    """The latest 5-hour block start the status line computed, for the same log folders.

    A block start stays a block start, so the next call resumes the chain there and reads only
    logs modified since then (or since midnight) instead of looking back for a 5-hour gap, which
    a machine running agents around the clock may never have.
    """

    MAX_AGE = 30 * 86400.0

    def __init__(self, directory: Path, roots: list[Path]) -> None:
        self.path = directory / "blocks.json"
        self.roots = sorted(str(Path(r).expanduser().absolute()) for r in roots)

    def load(self, now: float) -> float | None:
        try:
            d = orjson.loads(self.path.read_bytes())
            start = d["start"] if isinstance(d, dict) and d.get("roots") == self.roots else None
        except (OSError, ValueError, KeyError):
            return None
        if isinstance(start, int | float) and now - self.MAX_AGE < start <= now:
            return float(start)
        return None

    def save(self, start: float) -> None:
        """Atomic (rename); losing it only costs one slower call."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".blocks.{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps({"roots": self.roots, "start": start}))
            os.replace(tmp, self.path)
        except OSError:
            return


def read_hook_input(stream: Any) -> dict[str, Any]:
    """Claude Code's JSON on stdin; {} when there is none (a terminal) or it is not an object."""
    try:
        if stream is None or stream.isatty():
            return {}
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        data = orjson.loads(raw)
    except (OSError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def last_main_turn(path: Path, parse: Callable[[bytes], list[Turn]]) -> Turn | None:
    """The transcript's last main-chain billed turn, reading back from the end (256 KiB, then 4x)."""
    try:
        size = os.stat(path).st_size
        span = TAIL_BYTES
        with open(path, "rb") as f:
            while True:
                start = max(0, size - span)
                f.seek(start)
                lines = f.read(size - start).split(b"\n")
                if start:
                    lines = lines[1:]  # cut mid-line
                for line in reversed(lines):
                    if b'"assistant"' not in line:
                        continue
                    try:
                        turns = parse(line)
                    except (ValueError, TypeError, RecursionError):
                        continue  # a line still being written, or malformed
                    for t in turns:
                        if not t.sidechain:
                            return t
                if not start or span >= TAIL_MAX_BYTES:
                    return None
                span *= 4
    except OSError:
        return None


def _text(v: object, limit: int = 40) -> str:
    """Text from stdin or logs on a one-line display: no control characters, bounded length."""
    s = re.sub(r"[\x00-\x1f\x7f]", " ", str(v)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _money(t: Tokens) -> str:
    from tokwatch.report import money

    if not t.unpriced_turns:
        return money(t.known_cost_usd)
    if t.unpriced_turns >= t.turns:
        return "$?"
    return "≥" + money(t.known_cost_usd)


def _pct(st: BudgetState | None) -> str:
    return f"{st.percent:.0f}%" if st else ""


@dataclass(slots=True)
class LineData:
    model: str = ""
    context_percent: float | None = None
    session: Tokens | None = None
    usage: Usage | None = None
    budgets: dict[str, BudgetState] | None = None


def render_line(d: LineData) -> str:
    from tokwatch.report import duration

    b = d.budgets or {}
    parts = [d.model or "Claude"]
    if d.context_percent is not None:
        parts.append(f"ctx {d.context_percent:.0f}%")
    if d.session is not None:
        parts.append(f"session {_money(d.session)}" + (f" ({_pct(b['session'])})" if "session" in b else ""))
    if d.usage is not None:
        parts.append(f"today {_money(d.usage.today)}" + (f" ({_pct(b['daily'])})" if "daily" in b else ""))
        blk = d.usage.block
        if blk is None:
            parts.append("no block")
        else:
            left = duration(blk.end - d.usage.now) + " left"
            extra = f"{_pct(b['block'])}, {left}" if "block" in b else left
            parts.append(f"block {_money(blk.tokens)} ({extra})")
    return SEP.join(parts)


def _claude_files(roots: list[Path]) -> dict[Path, float]:
    from tokwatch.discover import walk

    out: dict[Path, float] = {}
    for root in roots:
        for p in walk(root):
            try:
                out[p] = os.stat(p).st_mtime
            except OSError:
                continue
    return out


def statusline_data(
    hook: Mapping[str, Any],
    config: Config,
    roots: list[Path],
    now: float,
    tz: tzinfo | None = None,
    cache_dir: Path | None = None,
) -> LineData:
    from tokwatch.agents import get_agent
    from tokwatch.engine import Engine
    from tokwatch.pricing import Pricer
    from tokwatch.store import Store

    claude = get_agent("claude")
    assert claude is not None
    model_info = hook.get("model") if isinstance(hook.get("model"), dict) else {}
    assert isinstance(model_info, dict)
    tp = hook.get("transcript_path")
    transcript = Path(tp).expanduser().absolute() if isinstance(tp, str) and tp else None
    sid = hook.get("session_id")
    session_id = sid if isinstance(sid, str) and sid else (transcript.stem if transcript else "")
    session_files: set[Path] = set()
    if transcript is not None and transcript.is_file():
        session_files.add(transcript)
        sub = transcript.with_suffix("") / "subagents"
        if sub.is_dir():
            session_files.update(p.absolute() for p in sub.glob("*.jsonl") if p.is_file())
    files = _claude_files([Path(r).expanduser().absolute() for r in roots])
    pricer = Pricer(config)
    day_start = midnight(now, tz)
    recent = min(day_start, now - BLOCK_SECONDS)
    state = ChainState(cache_dir, roots) if cache_dir is not None else None
    known = state.load(now) if state else None
    # A known block start lets the chain resume there; otherwise look back further and further.
    passes = [(min(recent, known), known)] if known is not None else []
    passes += [(recent - back, None) for back in LOOKBACKS]
    store = Store(pricer)
    usage: Usage | None = None
    for since, chain_from in passes:
        chosen = sorted({p for p, m in files.items() if m >= since} | session_files)
        store = Store(pricer)
        if chosen:
            cache = ScopedCache(cache_dir, {str(p) for p in chosen}) if cache_dir is not None else None
            Engine(store, chosen, cache=cache).backfill()
        turns = [(t, store.cost_pico(t)) for key in store.sessions for t in store.turns_of(key)]
        turns.sort(key=lambda e: e[0].timestamp)
        usage = usage_from_turns(turns, since, now, tz, chain_from)
        if usage is not None:
            break
    if state is not None and usage is not None and usage.last_start is not None:
        state.save(usage.last_start)
    d = LineData(usage=usage)
    s = store.sessions.get(("claude", session_id)) if session_id else None
    if transcript is not None or s is not None:
        d.session = s.totals if s else Tokens()
    last = last_main_turn(transcript, claude.parser(transcript).feed) if transcript else None
    model_id = model_info.get("id") if isinstance(model_info.get("id"), str) else ""
    name = model_info.get("display_name")
    d.model = (
        _text(name) if isinstance(name, str) and name else _text(model_id or (last.model if last else ""))
    )
    if last is not None:
        cw = hook.get("context_window")
        logged = cw.get("context_window_size") if isinstance(cw, dict) else None
        logged = logged if type(logged) is int and logged > 0 else 0
        max_prompt = max(last.context, s.max_context if s else 0)
        window = pricer.context_window("claude", str(model_id or last.model), logged, max_prompt)
        if window:
            d.context_percent = 100 * last.context / window
    cfg = config.budgets
    if cfg.items() and usage is not None:
        d.budgets = usage.states(cfg, d.session)
    return d


def _roots(paths: list[Path]) -> list[Path]:
    if paths:
        return paths
    from tokwatch.agents import get_agent

    claude = get_agent("claude")
    env = os.environ
    home = Path(env.get("HOME") or Path.home())
    return claude.roots(env, home) if claude else []


def cmd_statusline(args: argparse.Namespace) -> int:
    """Always one line and exit 0: Claude Code shows whatever we print, errors included."""
    from tokwatch.config import Config, ConfigError, load_config
    from tokwatch.report import parse_tz

    hook = read_hook_input(sys.stdin)
    try:
        config = load_config(args.config) if args.config else load_config()
    except ConfigError:
        config = Config()
    try:
        tz = parse_tz(args.tz)
        cache_dir = None if args.no_cache else default_cache_dir() / "statusline"
        data = statusline_data(hook, config, _roots(list(args.paths)), time.time(), tz, cache_dir)
        line = render_line(data)
    except Exception:
        model = hook.get("model")
        name = model.get("display_name") if isinstance(model, dict) else None
        line = _text(name) if isinstance(name, str) and name else "tokwatch"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    s = sub.add_parser("status", help="one session's usage, context and budgets (for agents)")
    common(s)
    which = s.add_mutually_exclusive_group()
    which.add_argument("--session", help="session id (or a unique prefix)")
    which.add_argument("--cwd", help="the most recently active session of this project folder")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--tz", help="time zone for 'today' (default: local)")

    line = sub.add_parser("statusline", help="one line for Claude Code's statusLine hook (JSON on stdin)")
    line.add_argument("paths", nargs="*", type=Path, help="Claude log folders (default: Claude's homes)")
    line.add_argument("--config", type=Path)
    line.add_argument("--no-cache", action="store_true")
    line.add_argument("--tz", help="time zone for 'today' (default: local)")
