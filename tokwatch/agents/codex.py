"""Codex CLI: `sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl` and `archived_sessions/`.

Traps handled here (docs/agents.md): every `token_count` is written twice, so a turn is an event
whose cumulative `total_token_usage` differs from the previous one, and its numbers come from
`last_token_usage` (never from differences of totals, which jump after compaction); `info: null`
events and all-zero `last_token_usage` add nothing; the model comes from the latest
`turn_context`; OpenAI's `input_tokens` include the cached part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents.base import Agent, LogParser, Record, as_dict, count, load_object, parse_ts
from tokwatch.core.models import Turn

_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
#: The fields `feed` reads; instructions, messages and tool output are never built.
RECORD = Record(
    {"type": None, "timestamp": None, "payload": dict.fromkeys(("type", "info", "model", "id", "cwd"))}
)
_USAGE_KEYS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
    "total_tokens",
)


class CodexParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        m = _UUID.search(path.name)
        self.session_id = m.group(1) if m else path.stem
        self.project = ""
        self.model = "unknown"
        self.prev_total: list[int] | None = None
        self.window = 0

    def state(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "project": self.project,
            "model": self.model,
            "prev_total": self.prev_total,
            "window": self.window,
        }

    def restore(self, state: Mapping[str, object]) -> None:
        self.session_id = str(state.get("session_id") or self.session_id)
        self.project = str(state.get("project") or "")
        self.model = str(state.get("model") or "unknown")
        prev = state.get("prev_total")
        self.prev_total = [int(x) for x in prev] if isinstance(prev, list) else None
        w = state.get("window")
        self.window = w if isinstance(w, int) else 0

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line, RECORD)
        kind = d.get("type")
        payload = d.get("payload")
        if kind == "event_msg":
            payload = as_dict(payload)
            if payload.get("type") != "token_count":
                return []
            info = payload.get("info")
            if info is None:
                return []
            return self._token_count(as_dict(info), d.get("timestamp"))
        if kind == "turn_context":
            model = as_dict(payload).get("model")
            if isinstance(model, str) and model:
                self.model = model
        elif kind == "session_meta":
            payload = as_dict(payload)
            sid = payload.get("id")
            if isinstance(sid, str) and sid:
                self.session_id = sid
            cwd = payload.get("cwd")
            if isinstance(cwd, str):
                self.project = cwd
            model = payload.get("model")
            if isinstance(model, str) and model and self.model == "unknown":
                self.model = model
        return []

    def _token_count(self, info: dict[str, object], ts: object) -> list[Turn]:
        total_u = as_dict(info.get("total_token_usage"))
        total = [count(total_u, k) for k in _USAGE_KEYS]
        window = info.get("model_context_window")
        if type(window) is int and 0 < window < 10**9:
            self.window = window
        if total == self.prev_total:
            return []  # the re-emitted copy of the previous event
        self.prev_total = total
        last = as_dict(info.get("last_token_usage"))
        raw_in = count(last, "input_tokens")
        cached = count(last, "cached_input_tokens")
        cw = count(last, "cache_write_input_tokens")
        out = count(last, "output_tokens")
        reasoning = count(last, "reasoning_output_tokens")
        if not (raw_in or cached or cw or out):
            return []
        cache_read = min(cached, raw_in)
        cache_write = min(cw, raw_in - cache_read)
        return [
            Turn(
                agent="codex",
                session_id=self.session_id,
                turn_id=f"{ts}#{total[4]}",
                model=self.model,
                timestamp=parse_ts(ts),
                input=raw_in - cache_read - cache_write,
                cache_read=cache_read,
                cache_write=cache_write,
                output=out,
                reasoning=min(reasoning, out),
                project=self.project,
                context_window=self.window,
            )
        ]


class Codex(Agent):
    name = "codex"
    needles = (b"token_count", b"turn_context", b"session_meta")
    provider = "openai"
    default_context_window = 272_000
    #: Codex logs its window (`model_context_window`); when it is null, 272k is our guess.
    window_assumed = True

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        base = Path(env["CODEX_HOME"]).expanduser() if env.get("CODEX_HOME") else home / ".codex"
        return [base / "sessions", base / "archived_sessions"]

    def owns_path(self, path: Path) -> bool:
        return path.suffix == ".jsonl" and path.name.startswith("rollout-")

    def sniff(self, head: bytes) -> bool:
        return b'"payload"' in head and (b'"session_meta"' in head or b'"turn_context"' in head)

    def parser(self, path: Path) -> LogParser:
        return CodexParser(path)


AGENT = Codex()
