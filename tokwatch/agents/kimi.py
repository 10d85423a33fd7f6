"""Kimi CLI (`kimi`, MoonshotAI/kimi-cli): `${KIMI_SHARE_DIR:-~/.kimi}/sessions/<md5(workdir)>/<id>/wire.jsonl`.

Each line of `wire.jsonl` is `{"timestamp": <unix seconds>, "message": {"type", "payload"}}` (line 1:
`{"type": "metadata", "protocol_version"}`). A request is a `StatusUpdate` whose payload has
`token_usage{input_other, output, input_cache_read, input_cache_creation}`, emitted once per
completed step, with the provider's response id (`message_id`) and Kimi's own context figures
(`context_tokens`: the full prompt; `max_context_tokens`: the model's window).

Traps handled here (docs/agents.md):
* Subagents (Kimi CLI >= 1.25) write `subagents/<agent_id>/wire.jsonl`, AND the parent wire
  records each of their events wrapped in a `SubagentEvent`. The subagent's own file is counted;
  a wrapped copy only when that file does not exist (older sessions have only the copies). Both
  copies share the response id, so they also share one turn id in the parent's session.
* `/fork`, `/undo` and imported sessions copy wire lines byte for byte into another session:
  the response id and the four counts (or, without an id, the raw timestamp) are the turn id and
  `Turn.dedup_key`.
* StatusUpdates without `token_usage` (plan mode, MCP status, `/compact`, `/clear`) are not requests.
* The model is not in the wire: the configured default model (`config.toml`) is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents.base import Agent, LogParser, as_dict, clamp_count, count, load_object, parse_ts
from tokwatch.core.models import MAX_TS, MIN_TS, Turn
from tokwatch.core.observations import ContextSize

MAX_DEPTH = 4  # SubagentEvent inside SubagentEvent (a subagent's own subagents)

_files: dict[str, tuple[int, object]] = {}  # path -> (mtime_ns, what was read from it)


def _read_cached(path: Path) -> object:
    """A small config/metadata file, re-read only when its mtime changes."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    hit = _files.get(str(path))
    if hit is not None and hit[0] == st.st_mtime_ns:
        return hit[1]
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    _files[str(path)] = (st.st_mtime_ns, data)
    return data


def configured_model(share: Path) -> tuple[str, str]:
    """(model, provider type) of the configured default model, or ("", "") when unknown."""
    for name in ("config.toml", "config.json"):
        data = _read_cached(share / name)
        if not isinstance(data, dict):
            continue
        default = data.get("default_model")
        models = data.get("models")
        entry = models.get(default) if isinstance(models, dict) and isinstance(default, str) else None
        if not isinstance(entry, dict):
            return (default if isinstance(default, str) else "", "")
        model = entry.get("model")
        providers = data.get("providers")
        provider = providers.get(entry.get("provider")) if isinstance(providers, dict) else None
        kind = provider.get("type") if isinstance(provider, dict) else None
        return (
            model if isinstance(model, str) and model else str(default),
            kind if isinstance(kind, str) else "",
        )
    return ("", "")


def work_dir(share: Path, key: str) -> str:
    """The work directory whose sessions folder is `key` (`md5(path)`, or `<kaos>_<md5>`), from
    `kimi.json`; "" when not listed."""
    data = _read_cached(share / "kimi.json")
    dirs = data.get("work_dirs") if isinstance(data, dict) else None
    for wd in dirs if isinstance(dirs, list) else ():
        if not isinstance(wd, dict) or not isinstance(wd.get("path"), str):
            continue
        digest = hashlib.md5(wd["path"].encode("utf-8")).hexdigest()
        kaos = wd.get("kaos", "local")
        if key == (digest if kaos in ("local", None) else f"{kaos}_{digest}"):
            return wd["path"]
    return ""


class KimiParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # <share>/sessions/<wd>/<id>/wire.jsonl, .../<id>/subagents/<agent>/wire.jsonl,
        # <share>/imported_sessions/<id>/wire.jsonl
        self.subagent = path.parent.parent.name == "subagents"
        self.session_dir = path.parents[2] if self.subagent else path.parent
        self.session_id = self.session_dir.name
        imported = self.session_dir.parent.name == "imported_sessions"
        parents = self.session_dir.parents
        share = parents[1] if imported or len(parents) < 3 else parents[2]
        self.model, self.provider_type = configured_model(share)
        self.project = work_dir(share, self.session_dir.parent.name)

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line)
        msg = d.get("message")
        if not isinstance(msg, dict):
            return []
        ts = d.get("timestamp")
        t = self._event(msg, ts, self.subagent, 0)
        return [t] if t is not None else []

    def _event(self, msg: dict[str, object], ts: object, sidechain: bool, depth: int) -> Turn | None:
        kind = msg.get("type")
        payload = msg.get("payload")
        if kind == "StatusUpdate":
            return self._status(as_dict(payload), ts, sidechain)
        if kind == "SubagentEvent" and depth < MAX_DEPTH and isinstance(payload, dict):
            agent = payload.get("agent_id")
            if isinstance(agent, str) and agent and self._has_own_file(agent):
                return None  # the subagent's own wire.jsonl counts it
            inner = payload.get("event")
            if isinstance(inner, dict):
                return self._event(inner, ts, True, depth + 1)
        return None

    def _has_own_file(self, agent: str) -> bool:
        if "/" in agent or "\\" in agent or agent in (".", ".."):
            return False  # not an agent id (a hostile line must not point elsewhere)
        return os.path.exists(self.session_dir / "subagents" / agent / "wire.jsonl")

    def _status(self, p: dict[str, object], ts: object, sidechain: bool) -> Turn | None:
        usage = p.get("token_usage")
        if usage is None:
            # a context-only update (plan mode, MCP, /compact, /clear): not a request, but Kimi's
            # own figure for the context as it now is moves the gauge
            ctx = p.get("context_tokens")
            stamp = parse_ts(ts)
            if not sidechain and type(ctx) is int and 0 <= ctx < 10**9 and MIN_TS <= stamp <= MAX_TS:
                window = p.get("max_context_tokens")
                w = window if type(window) is int and 0 < window < 10**9 else 0
                self.observe(ContextSize("kimi", self.session_id, stamp, ctx, w))
            return None
        usage = as_dict(usage)
        raw = [usage.get(k) for k in ("input_other", "output", "input_cache_read", "input_cache_creation")]
        inp = clamp_count(usage, "input_other")
        out = count(usage, "output")
        cache_read = count(usage, "input_cache_read")
        cache_write = count(usage, "input_cache_creation")
        if self.provider_type == "google_genai":  # its input_other includes the cached part
            inp = max(inp - cache_read, 0)
        if not (inp or out or cache_read or cache_write):
            return None
        numbers = "|".join(str(x) for x in raw)
        mid = p.get("message_id")
        key = f"{mid}|{numbers}" if isinstance(mid, str) and mid else f"{ts!r}|{numbers}"
        stamp = parse_ts(ts)
        ctx = p.get("context_tokens")
        window = p.get("max_context_tokens")
        main = not sidechain
        return Turn(
            agent="kimi",
            session_id=self.session_id,
            turn_id=key,
            model=self.model or "unknown",
            timestamp=stamp if MIN_TS <= stamp <= MAX_TS else 0.0,
            input=inp,
            cache_read=cache_read,
            cache_write=cache_write,
            output=out,
            project=self.project,
            sidechain=sidechain,
            context_tokens=ctx if main and type(ctx) is int and 0 < ctx < 10**9 else 0,
            context_window=window if main and type(window) is int and 0 < window < 10**9 else 0,
            dedup_key=key,
        )


class Kimi(Agent):
    name = "kimi"
    needles = (b'"StatusUpdate"',)
    provider = "moonshotai"
    sniff_priority = 46
    suffixes = (".jsonl",)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        custom = env.get("KIMI_SHARE_DIR", "").strip()
        share = Path(os.path.expanduser(custom)) if custom else home / ".kimi"
        return [share / "sessions", share / "imported_sessions"]

    def owns_path(self, path: Path) -> bool:
        if path.name != "wire.jsonl":
            return False
        parents = path.parents
        return (
            (len(parents) > 2 and parents[1].name == "subagents")
            or (len(parents) > 2 and parents[2].name == "sessions")
            or (len(parents) > 1 and parents[1].name == "imported_sessions")
        )

    def sniff(self, head: bytes) -> bool:
        return b'"protocol_version"' in head and b'"message": {"type": "' in head

    def parser(self, path: Path) -> LogParser:
        return KimiParser(path)


AGENT = Kimi()
