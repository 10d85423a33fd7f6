"""pi (the pi coding agent): `${PI_CODING_AGENT_DIR:-~/.pi/agent}/sessions/--<cwd>--/<time>_<id>.jsonl`.

Append-only JSONL. Line 1 is the header `{"type": "session", "id", "cwd", "version"?,
"parentSession"?}`; every request is one `{"type": "message", "message": {"role": "assistant",
"api", "provider", "model", "usage": {input, output, cacheRead, cacheWrite, totalTokens?}, "timestamp"
(ms, request start)}}` line, written once when the response ends (no streaming duplicates).
OpenClaw embeds pi and writes the same lines: `Transcript` below is the reader both share
(`openclaw.py` adds its bookkeeping rules and its SQLite store).

Traps handled here (docs/agents.md):
* Forks copy entries verbatim into a new file (`/fork`, `createBranchedSession`; `--session
  <file>` copies all of them), and pi's v1->v2 migration rewrites a file in place with NEW entry
  ids. A request is therefore keyed by what every copy keeps identical: `message.timestamp`,
  provider, model and the four raw counts. That key, with the session id, is the turn id (a
  rewrite replaces, never adds), and alone it is `Turn.dedup_key` (a copy in another session is
  counted once, in the first session seen).
* `usage` depends on `message.api`: older pi builds stored Google's `promptTokenCount` (cache
  included) as `input` for `google-generative-ai` / `google-vertex`; newer ones subtract the cache.
  The provider's `totalTokens` tells the two apart (see `google_cache_inside`).
* `openai-completions` in pi builds before the spring-2026 fix stored `completion_tokens +
  reasoning_tokens` as output (double-counting reasoning for OpenAI-style providers); the
  reasoning count itself was not stored, so this cannot be undone from the file (docs/agents.md).
  Builds that store `usage.reasoningTokens` give tokwatch the reasoning part.
* `prompt - cached` can go negative in older builds: negative counts are clamped to 0 (the line is
  kept); all-zero usage (aborted or failed requests) is not a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents.base import Agent, BadLine, LogParser, as_dict, load_object, parse_ts
from tokwatch.core.models import MAX_TS, MIN_TS, Turn

#: APIs whose older pi builds stored Google's prompt count (cache included) as `input`.
GOOGLE_PROMPT_APIS = frozenset({"google-generative-ai", "google-vertex"})

# pi's names first; the rest are the spellings OpenClaw's own usage reader also accepts
_INPUT = ("input", "inputTokens", "input_tokens", "promptTokens", "prompt_tokens")
_OUTPUT = ("output", "outputTokens", "output_tokens", "completionTokens", "completion_tokens")
_CACHE_READ = ("cacheRead", "cache_read", "cache_read_input_tokens", "cached_tokens")
_CACHE_WRITE = ("cacheWrite", "cache_write", "cache_creation_input_tokens")
_TOTAL = ("totalTokens", "total", "total_tokens")
_REASONING = ("reasoningTokens", "reasoning")
MAX_COUNT = 10**12


def _raw(usage: Mapping[str, object], keys: tuple[str, ...]) -> int:
    """The first of `keys` present, as an integer (negatives kept: they go into the copy key)."""
    for k in keys:
        v = usage.get(k)
        if v is None:
            continue
        if type(v) is float and v.is_integer():
            v = int(v)
        if type(v) is int and -MAX_COUNT < v < MAX_COUNT:
            return v
        raise BadLine(f"bad count for {k}: {v!r}")
    return 0


def google_cache_inside(api: object, inp: int, out: int, cache_read: int, total: int) -> bool:
    """Does `input` include the cache read? Only ever for the Google APIs of older pi builds.

    Older builds stored `input = promptTokenCount` (cache inside) and `totalTokens =
    totalTokenCount` (prompt + candidates + thoughts), so `total < input + output + cacheRead`;
    newer builds subtract the cache from `input` and keep the same total, so `total` then covers
    all three. Files without a total predate `totalTokens` (December 2025): older builds.
    """
    if api not in GOOGLE_PROMPT_APIS or cache_read <= 0:
        return False
    if total <= 0:
        return True
    return total < inp + out + cache_read


class Transcript:
    """What one pi-format transcript (a file, or one OpenClaw session's rows) says, line by line."""

    def __init__(self, agent: str, session_id: str, project: str = "") -> None:
        self.agent = agent
        self.session_id = session_id
        self.project = project
        self.model = ""  # the last model_change / model-snapshot: for messages that name none

    def state(self) -> dict[str, object]:
        return {"session_id": self.session_id, "project": self.project, "model": self.model}

    def restore(self, state: Mapping[str, object]) -> None:
        for name in ("session_id", "project", "model"):
            v = state.get(name)
            if isinstance(v, str) and (v or name != "session_id"):
                setattr(self, name, v)

    def skip(self, msg: Mapping[str, object]) -> bool:
        """Assistant messages that are not model requests (OpenClaw's bookkeeping rows)."""
        return False

    def entry(self, d: Mapping[str, object]) -> Turn | None:
        kind = d.get("type")
        if kind == "message":
            return self._message(d)
        if kind == "session":
            sid = d.get("id")
            if isinstance(sid, str) and sid:
                self.session_id = sid
            cwd = d.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.project = cwd
        elif kind == "model_change":
            model = d.get("modelId")
            if isinstance(model, str) and model:
                self.model = model
        elif kind == "custom" and d.get("customType") == "model-snapshot":
            data = d.get("data")
            model = data.get("modelId") if isinstance(data, dict) else None
            if isinstance(model, str) and model:
                self.model = model
        return None

    def _message(self, d: Mapping[str, object]) -> Turn | None:
        msg = as_dict(d.get("message"))
        if msg.get("role") != "assistant" or self.skip(msg):
            return None
        usage = msg.get("usage")
        if usage is None:
            usage = d.get("usage")  # (OpenClaw's reader falls back to the entry's usage)
        if usage is None:
            return None
        usage = as_dict(usage)
        inp = _raw(usage, _INPUT)
        out = _raw(usage, _OUTPUT)
        cr = _raw(usage, _CACHE_READ)
        if not cr:
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                cr = _raw(details, ("cached_tokens",))
        cw = _raw(usage, _CACHE_WRITE)
        total = _raw(usage, _TOTAL)
        reasoning = _raw(usage, _REASONING)
        cache_read, cache_write, output = max(cr, 0), max(cw, 0), max(out, 0)
        api = msg.get("api")
        inside = google_cache_inside(api, inp, out, cache_read, total)
        inp_n = max(inp - cache_read if inside else inp, 0)
        if not (inp_n or cache_read or cache_write or output):
            return None  # aborted or failed before any usage: not a billed request
        model = msg.get("model")
        if not isinstance(model, str) or not model:
            model = self.model or "unknown"
        provider = msg.get("provider")
        started = msg.get("timestamp")
        if isinstance(started, int | float) and not isinstance(started, bool) and started > 0:
            key = f"{started!r}|{provider}|{model}|{inp}|{out}|{cr}|{cw}"
            ts = parse_ts(started)
        else:  # no request time (never seen from pi itself): the entry's id and time
            key = f"{d.get('id')}|{d.get('timestamp')}|{provider}|{model}|{inp}|{out}|{cr}|{cw}"
            ts = 0.0
        if not ts:
            ts = parse_ts(d.get("timestamp"))
        if not MIN_TS <= ts <= MAX_TS:
            ts = 0.0
        return Turn(
            agent=self.agent,
            session_id=self.session_id,
            # (the session too: one OpenClaw database holds a session and its fork copies, and
            # a file's turn ids must be unique in it)
            turn_id=f"{self.session_id}|{key}",
            model=model,
            timestamp=ts,
            input=inp_n,
            cache_read=cache_read,
            cache_write=cache_write,
            output=output,
            reasoning=min(max(reasoning, 0), output),
            project=self.project,
            dedup_key=key,
        )


def session_from_name(path: Path) -> str:
    """`<time>_<sessionId>.jsonl` -> the session id, until the header names it."""
    stem = path.name.split(".jsonl", 1)[0]
    return stem.split("_", 1)[1] if "_" in stem else stem


class TranscriptParser(LogParser):
    """A pi-format JSONL file read line by line."""

    agent_name = "pi"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.transcript = self.make_transcript(path)

    def make_transcript(self, path: Path) -> Transcript:
        return Transcript(self.agent_name, session_from_name(path))

    def state(self) -> dict[str, object]:
        return self.transcript.state()

    def restore(self, state: Mapping[str, object]) -> None:
        self.transcript.restore(state)

    def feed(self, line: bytes) -> list[Turn]:
        t = self.transcript.entry(load_object(line))
        return [t] if t is not None else []


class PiParser(TranscriptParser):
    agent_name = "pi"


def is_pi_header(head: bytes) -> bool:
    return head.startswith((b'{"type":"session"', b'{"type": "session"'))


class Pi(Agent):
    name = "pi"
    # session headers (id, cwd), model changes and messages; everything else is skipped unparsed
    needles = (b'"assistant"', b'"session"', b'"model_change"', b"model-snapshot")
    sniff_priority = 45
    suffixes = (".jsonl",)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        custom = env.get("PI_CODING_AGENT_DIR", "").strip()
        base = Path(os.path.expanduser(custom)) if custom else home / ".pi" / "agent"
        return [base / "sessions"]

    def owns_path(self, path: Path) -> bool:
        # sessions/--home-me-proj--/<time>_<id>.jsonl (a lossy cwd slug: the header names the cwd)
        parent = path.parent.name
        return (
            path.suffix == ".jsonl"
            and len(parent) >= 4
            and parent.startswith("--")
            and parent.endswith("--")
            and path.parent.parent.name == "sessions"
        )

    def sniff(self, head: bytes) -> bool:
        return is_pi_header(head)

    def parser(self, path: Path) -> LogParser:
        return PiParser(path)


AGENT = Pi()
