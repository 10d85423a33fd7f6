"""Claude Code's status-line hook: `tokwatch statusline`.

It runs after every message in every open session, so it must answer in well under half a second
however much history there is. It never reads all history: only Claude logs modified since a
cut-off (today, the running 5-hour block and a margin to find where that block's chain starts)
plus the session's own files, through a small cache of its own so a warm call reads only appended
bytes. The context gauge comes from the end of the transcript. Whatever goes wrong, it prints one
line and exits 0: a hook must not fail loudly.

Claude Code hands it the plan's windows (`rate_limits.five_hour/seven_day`, subscribers, 2.1.80+)
and writes them nowhere else: each call records them in the ledger (`record_limits`: one
transaction, only when present) for the dashboard and `report limits`, and the line shows the
5-hour window.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokwatch.core.blocks import BLOCK_SECONDS
from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Tokens, Turn
from tokwatch.core.observations import LimitSample
from tokwatch.core.text import clean, cost_text, duration
from tokwatch.fsio import open_binary, stat_regular
from tokwatch.reports.budgets import BudgetState, Usage, midnight, usage_in
from tokwatch.reports.tally import Scope

if TYPE_CHECKING:
    from datetime import tzinfo

    from tokwatch.config import Config

TAIL_BYTES = 256 * 1024
TAIL_MAX_BYTES = 8 * 1024 * 1024  # a line can hold megabytes of tool output: look back this far at most
SEP = " │ "


# ---------------------------------------------------------------- statusline
class ChainState:
    """The latest 5-hour block start the status line computed, for the same log folders, kept in
    the ledger's meta table.

    A block start stays a block start, so the next call resumes the chain there and reads only
    logs modified since then (or since midnight) instead of looking back for a 5-hour gap, which
    a machine running agents around the clock may never have.
    """

    MAX_AGE = 30 * 86400.0

    def __init__(self, ledger: Ledger, roots: list[Path]) -> None:
        self.ledger = ledger
        names = sorted(str(Path(r).expanduser().absolute()) for r in roots)
        self.key = "statusline_chain:" + hashlib.sha256(orjson.dumps(names)).hexdigest()[:16]

    def load(self, now: float) -> float | None:
        try:
            start = orjson.loads(self.ledger.meta(self.key) or "null")
        except orjson.JSONDecodeError:
            return None
        if isinstance(start, int | float) and now - self.MAX_AGE < start <= now:
            return float(start)
        return None

    def save(self, start: float) -> None:
        self.ledger.set_meta(self.key, orjson.dumps(start).decode())


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
        span = TAIL_BYTES
        with open_binary(path) as f:  # (a FIFO named as the transcript must not hang the hook)
            size = os.fstat(f.fileno()).st_size
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
    """Text from stdin or logs on a one-line display: terminal-safe (`clean`), bounded length."""
    s = clean(str(v).strip())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _pct(st: BudgetState | None) -> str:
    return f"{st.percent:.0f}%" if st else ""


@dataclass(slots=True)
class LineData:
    model: str = ""
    context_percent: float | None = None
    #: Claude Code's 5-hour window from this call's input: (used %, seconds to its reset or None)
    five_hour: tuple[float, float | None] | None = None
    session: Tokens | None = None
    usage: Usage | None = None
    budgets: dict[str, BudgetState] | None = None


def render_line(d: LineData) -> str:
    b = d.budgets or {}
    parts = [d.model or "Claude"]
    if d.context_percent is not None:
        parts.append(f"ctx {d.context_percent:.0f}%")
    if d.five_hour is not None:
        used, left = d.five_hour
        if left is not None and left <= 0:
            parts.append("5h reset")
        else:
            parts.append(f"5h {used:.0f}%" + (f" ({duration(left)} left)" if left is not None else ""))
    if d.session is not None:
        parts.append(
            f"session {cost_text(d.session, '$?')}" + (f" ({_pct(b['session'])})" if "session" in b else "")
        )
    if d.usage is not None:
        parts.append(
            f"today {cost_text(d.usage.today, '$?')}" + (f" ({_pct(b['daily'])})" if "daily" in b else "")
        )
        blk = d.usage.block
        if blk is None:
            parts.append("no block")
        else:
            left = duration(blk.end - d.usage.now) + " left"
            extra = f"{_pct(b['block'])}, {left}" if "block" in b else left
            parts.append(f"block {cost_text(blk.tokens, '$?')} ({extra})")
    return SEP.join(parts)


def record_limits(ledger: Ledger, hook: Mapping[str, Any], now: float) -> list[LimitSample]:
    """The plan windows of Claude Code's input, recorded in the ledger in one transaction (garbage
    refused and counted); nothing is written when the input has none. Returns the checked samples."""
    from tokwatch.agents.claude import hook_limits
    from tokwatch.core.ledger_obs import add_refused, insert_samples

    obs = hook_limits(hook, now)
    if not obs:
        return []
    samples = [o for o in obs if isinstance(o, LimitSample)]
    with ledger.transaction() as db:
        insert_samples(db, samples, ledger.writer)
        add_refused(db, len(obs) - len(samples))
    return samples


def _five_hour(samples: list[LimitSample], now: float) -> tuple[float, float | None] | None:
    for s in samples:
        if s.window_minutes == 300:
            return s.used_percent, (None if s.resets_at is None else s.resets_at - now)
    return None


def _claude_files(roots: list[Path]) -> dict[Path, float]:
    from tokwatch.ingest.discover import walk

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
    data_dir: Path | None = None,
    *,
    explicit: bool = True,
) -> LineData:
    """What the line shows. The ledger (in `data_dir`; None: a private one in memory) is brought up
    to date with the Claude logs written since the chain's start (or since a cut-off that moves
    back only when needed) and the session's own files; the sums come from the ledger. With
    `explicit` roots only their sessions count, else every Claude session the ledger holds."""
    from tokwatch.agents import get_agent
    from tokwatch.agents.claude import hook_limits
    from tokwatch.core.store import Store
    from tokwatch.ingest.engine import Engine
    from tokwatch.ingest.setup import make_pricer

    claude = get_agent("claude")
    assert claude is not None
    model_info = hook.get("model") if isinstance(hook.get("model"), dict) else {}
    assert isinstance(model_info, dict)
    tp = hook.get("transcript_path")
    transcript = Path(tp).expanduser().absolute() if isinstance(tp, str) and tp else None
    sid = hook.get("session_id")
    session_id = sid if isinstance(sid, str) and sid else (transcript.stem if transcript else "")
    session_files: set[Path] = set()
    if transcript is not None and stat_regular(transcript) is not None:
        session_files.add(transcript)
        sub = transcript.with_suffix("") / "subagents"
        if sub.is_dir():
            session_files.update(p.absolute() for p in sub.glob("*.jsonl") if stat_regular(p) is not None)
    roots = [Path(r).expanduser().absolute() for r in roots]
    files = _claude_files(roots)
    pricer = make_pricer(config)
    ledger = Ledger.at(data_dir) if data_dir is not None else Ledger.memory()
    if data_dir is not None:
        samples = record_limits(ledger, hook, now)
    else:
        samples = [o for o in hook_limits(hook, now) if isinstance(o, LimitSample)]
    store = Store(pricer, ledger)
    state = ChainState(ledger, roots)
    read: set[Path] = set()

    def ensure(since: float) -> None:
        """Every Claude log written since `since` (and the session's files) is in the ledger."""
        todo = sorted(({p for p, m in files.items() if m >= since} | session_files) - read)
        if todo:
            Engine(store, todo).backfill()
            read.update(todo)

    ensure(min(midnight(now, tz), now - BLOCK_SECONDS))
    scope = Scope(agents=frozenset({"claude"}), sessions=_sessions_under(ledger, roots) if explicit else None)
    usage = usage_in(ledger, scope, now, tz, state.load(now), ensure=ensure)
    if data_dir is not None and usage.last_start is not None:
        state.save(usage.last_start)
    d = LineData(usage=usage, five_hour=_five_hour(samples, now))
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
    if cfg.items():
        d.budgets = usage.states(cfg, d.session)
    return d


def _sessions_under(ledger: Ledger, roots: list[Path]) -> tuple[int, ...]:
    """The ledger ids of the sessions whose logs lie under `roots` (deleted logs included)."""
    records, _ = ledger.file_records()
    keys = {
        (rec.agent, sid)
        for p, rec in records.items()
        if any(Path(p) == r or r in Path(p).parents for r in roots)
        for sid in rec.sessions
    }
    return tuple(sorted(r.id for r in ledger.session_rows(keys)))


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
    from tokwatch.ingest.setup import data_dir as data_dir_of
    from tokwatch.reports.report import parse_tz

    hook = read_hook_input(sys.stdin)
    try:
        config = load_config(args.config) if args.config else load_config()
    except ConfigError:
        config = Config()
    try:
        tz = parse_tz(args.tz)
        data_dir = None if args.no_cache else data_dir_of(config)
        paths = list(args.paths)
        data = statusline_data(hook, config, _roots(paths), time.time(), tz, data_dir, explicit=bool(paths))
        line = render_line(data)
    except Exception:
        model = hook.get("model")
        name = model.get("display_name") if isinstance(model, dict) else None
        line = _text(name) if isinstance(name, str) and name else "tokwatch"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0
