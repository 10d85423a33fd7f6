"""GitHub Copilot CLI: `${COPILOT_HOME:-~/.copilot}/session-state/<session>/events.jsonl`.

Append-only JSONL of `{type, data, id, timestamp, parentId}` events. What is logged about tokens:

* `assistant.message` (live, one per model response): `data.messageId`, `data.model` and
  `data.outputTokens` only. Prompt and cache sizes of a request are never logged per request.
* `session.shutdown` (when the process exits): `data.modelMetrics.<model>` with
  `requests.count` and `usage{inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens,
  reasoningTokens}` for the requests made since that process started (a `session.resume` starts a
  new process and new counters), plus `currentModel` and `currentTokens` (context occupancy).
  `inputTokens` INCLUDES cache reads and writes; `outputTokens` includes reasoning.

So a live message becomes an output-only turn (turn_id = messageId, marked sidechain so its unknown
prompt does not move the context gauge). At shutdown the same turn ids are re-emitted with their
share of the authoritative per-model numbers (the store replaces by turn_id, nothing is counted
twice): each message keeps its own output, the model's prompt tokens are spread evenly over its
requests (per-request sizes are unknown), and requests without a logged message get one
`<shutdown id>:<model>` turn. Totals are then exact; per-request prices are exact except where a
price tier depends on the size of one request.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents.base import (
    Agent,
    BadLine,
    LogParser,
    Record,
    as_dict,
    count,
    env_paths,
    load_object,
    parse_ts,
)
from tokwatch.core.models import Turn


def split(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (evenly when they are all 0), summing exactly."""
    n = len(weights)
    if n == 0:
        return []
    if total <= 0:
        return [0] * n
    w = weights if any(weights) else [1] * n
    wsum = sum(w)
    shares = [total * x // wsum for x in w]
    rest = total - sum(shares)
    by_fraction = sorted(range(n), key=lambda i: (-(total * w[i] % wsum), i))
    for i in by_fraction[:rest]:
        shares[i] += 1
    return shares


#: The fields `feed` reads; message content and tool calls are never built.
RECORD = Record(
    {
        "type": None,
        "id": None,
        "timestamp": None,
        "data": dict.fromkeys(
            (
                "messageId",
                "model",
                "outputTokens",
                "modelMetrics",
                "currentModel",
                "currentTokens",
                "sessionId",
                "context",
                "newModel",
                "tokenLimit",
            )
        ),
    }
)


class CopilotParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.session_id = path.parent.name if path.name == "events.jsonl" else path.stem
        self.project = ""
        self.model = "unknown"
        self.window = 0
        #: Messages since the process started: [message id, model, output tokens, timestamp].
        self.pending: list[list[object]] = []
        self.shutdowns: list[str] = []  # shutdown event ids already counted (a log may repeat one)

    def state(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "project": self.project,
            "model": self.model,
            "window": self.window,
            "pending": self.pending,
            "shutdowns": self.shutdowns,
        }

    def restore(self, state: Mapping[str, object]) -> None:
        self.session_id = str(state.get("session_id") or self.session_id)
        self.project = str(state.get("project") or "")
        self.model = str(state.get("model") or "unknown")
        w = state.get("window")
        self.window = w if type(w) is int else 0
        seen = state.get("shutdowns")
        self.shutdowns = [str(x) for x in seen] if isinstance(seen, list) else []
        pending = state.get("pending")
        self.pending = (
            [list(p) for p in pending if isinstance(p, list) and len(p) == 4]
            if isinstance(pending, list)
            else []
        )

    def _turn(self, turn_id: str, model: str, ts: float, **numbers: object) -> Turn:
        return Turn(
            agent="copilot",
            session_id=self.session_id,
            turn_id=turn_id,
            model=model,
            timestamp=ts,
            project=self.project,
            context_window=self.window,
            **numbers,  # type: ignore[arg-type]
        )

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line, RECORD)
        kind = d.get("type")
        if kind == "assistant.message":
            return self._message(as_dict(d.get("data")), d)
        if kind == "session.shutdown":
            return self._shutdown(as_dict(d.get("data")), d)
        if kind in ("session.start", "session.resume"):
            data = as_dict(d.get("data"))
            sid = data.get("sessionId")
            if isinstance(sid, str) and sid:
                self.session_id = sid
            ctx = data.get("context")
            cwd = ctx.get("cwd") if isinstance(ctx, dict) else None
            if isinstance(cwd, str) and cwd:
                self.project = cwd
            # A new process: its shutdown will count only its own requests. Messages of a process
            # that died without a shutdown keep their output-only numbers.
            self.pending = []
        elif kind == "session.model_change":
            model = as_dict(d.get("data")).get("newModel")
            if isinstance(model, str) and model and model != "auto":
                self.model = model
        elif kind == "session.usage_info":
            limit = as_dict(d.get("data")).get("tokenLimit")
            if type(limit) is int and 0 < limit < 10**9:
                self.window = limit
        return []

    def _message(self, data: dict[str, object], d: dict[str, object]) -> list[Turn]:
        mid = data.get("messageId") or d.get("id")
        if not isinstance(mid, str) or not mid:
            raise BadLine("assistant.message without messageId")
        model = data.get("model")
        if isinstance(model, str) and model:
            self.model = model
        out = count(data, "outputTokens")
        ts = parse_ts(d.get("timestamp"))
        self.pending = [p for p in self.pending if p[0] != mid]
        self.pending.append([mid, self.model, out, ts])
        if not out:
            return []
        # The prompt is unknown until shutdown: sidechain keeps this turn off the context gauge.
        return [self._turn(mid, self.model, ts, output=out, sidechain=True)]

    def _shutdown(self, data: dict[str, object], d: dict[str, object]) -> list[Turn]:
        metrics = data.get("modelMetrics")
        if not isinstance(metrics, dict):
            return []
        event_id = d.get("id")
        if not isinstance(event_id, str) or not event_id:
            event_id = f"shutdown@{d.get('timestamp')}"
        if event_id in self.shutdowns:
            return []  # the same shutdown written again: already counted
        self.shutdowns.append(event_id)
        ts = parse_ts(d.get("timestamp"))
        current = data.get("currentModel")
        current_tokens = data.get("currentTokens")
        turns: list[Turn] = []
        for model, m in metrics.items():
            if not isinstance(model, str) or not isinstance(m, dict):
                continue
            turns.extend(self._model_turns(model, m, event_id, ts))
        if type(current_tokens) is int and current_tokens > 0:
            # The occupancy Copilot reports belongs to the last request of the current model.
            for i in range(len(turns) - 1, -1, -1):
                t = turns[i]
                if t.model == current and not t.sidechain:
                    turns[i] = self._turn(
                        t.turn_id,
                        t.model,
                        t.timestamp,
                        input=t.input,
                        cache_read=t.cache_read,
                        cache_write=t.cache_write,
                        output=t.output,
                        reasoning=t.reasoning,
                        context_tokens=current_tokens,
                    )
                    break
        self.pending = []
        return turns

    def _model_turns(self, model: str, m: dict[str, object], event_id: str, ts: float) -> list[Turn]:
        usage = as_dict(m.get("usage"))
        raw_in = count(usage, "inputTokens")
        cache_read = min(count(usage, "cacheReadTokens"), raw_in)
        cache_write = min(count(usage, "cacheWriteTokens"), raw_in - cache_read)
        inp = raw_in - cache_read - cache_write
        out_total = count(usage, "outputTokens")
        reasoning = min(count(usage, "reasoningTokens"), out_total)
        req = m.get("requests")
        n_req = count(req, "count") if isinstance(req, dict) and type(req.get("count")) is int else 0
        msgs = [p for p in self.pending if p[1] == model]
        k = len(msgs)
        slots = max(n_req, k, 1)
        extra = slots > k  # requests that left no message (or no message at all)
        known = [int(p[2]) for p in msgs]  # type: ignore[call-overload]
        if out_total >= sum(known):
            outs = known + ([out_total - sum(known)] if extra else [])
            if not extra and outs:
                outs[-1] += out_total - sum(known)
        else:  # fewer than the messages claimed: trust the metrics, keep the proportions
            outs = split(out_total, known) + ([0] if extra else [])
        n = len(outs)
        ins = self._shares(inp, slots, n)
        crs = self._shares(cache_read, slots, n)
        cws = self._shares(cache_write, slots, n)
        reas = [min(r, o) for r, o in zip(split(reasoning, outs), outs, strict=True)]
        turns = []
        for i, p in enumerate(msgs):
            turns.append(
                self._turn(
                    str(p[0]),
                    model,
                    float(p[3]),  # type: ignore[arg-type]
                    input=ins[i],
                    cache_read=crs[i],
                    cache_write=cws[i],
                    output=outs[i],
                    reasoning=reas[i],
                )
            )
        if extra:
            turns.append(
                self._turn(
                    f"{event_id}:{model}",
                    model,
                    ts,
                    input=ins[-1],
                    cache_read=crs[-1],
                    cache_write=cws[-1],
                    output=outs[-1],
                    reasoning=reas[-1],
                    sidechain=True,  # an aggregate of several requests: not one prompt's size
                )
            )
        return turns

    @staticmethod
    def _shares(total: int, slots: int, n: int) -> list[int]:
        """One even share per request; the last of `n` entries takes the slots beyond `n - 1`."""
        # Arithmetic, not a list of `slots` shares: the count comes from the log and may be huge.
        if n <= 0:
            return []
        slots = max(slots, n)
        q, r = divmod(max(total, 0), slots)
        first = [q + (1 if i < r else 0) for i in range(n - 1)]
        return [*first, max(total, 0) - sum(first)]


class Copilot(Agent):
    name = "copilot"
    needles = (b'"assistant.message"', b'"session.')
    sniff_priority = 40  # before Claude, whose sniff matches any `sessionId` + `type` JSONL
    suffixes = (".jsonl",)
    compact_rule = "80% of the prompt limit (background compaction, Copilot CLI 0.0.380+)"

    def compact_threshold(self, model: str, window: int) -> int | None:
        return window * 8 // 10 if window > 0 else None

    # given to MCP servers since Copilot CLI 1.0.29; the id names the session-state folder
    mcp_marker_env = ("COPILOT_AGENT_SESSION_ID",)
    mcp_session_env = "COPILOT_AGENT_SESSION_ID"

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        bases = env_paths(env, "COPILOT_HOME") or [home / ".copilot"]
        return [b / "session-state" for b in bases]

    def owns_path(self, path: Path) -> bool:
        if path.suffix != ".jsonl":
            return False
        if path.name == "events.jsonl":
            return path.parent.parent.name == "session-state"
        return path.parent.name == "session-state"  # older CLIs: session-state/<id>.jsonl

    def sniff(self, head: bytes) -> bool:
        return b'"copilotVersion"' in head or b'"producer":"copilot-agent"' in head

    def parser(self, path: Path) -> LogParser:
        return CopilotParser(path)


AGENT = Copilot()
