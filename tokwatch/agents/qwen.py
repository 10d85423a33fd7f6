"""Qwen Code: `${QWEN_RUNTIME_DIR:-${QWEN_HOME:-~/.qwen}}/projects/<cwd-slug>/chats/<session>.jsonl`.

Append-only JSONL written by Qwen Code's `ChatRecordingService`: one record per line (`uuid`,
`parentUuid`, `sessionId`, `timestamp`, `type`, `cwd`, `version`, ...). A billed request is a
`type: "assistant"` record carrying `usageMetadata` (Gemini's `GenerateContentResponseUsageMetadata`),
`model` and, in recent versions, `contextWindowSize`.

Traps handled here (docs/agents.md): `cachedContentTokenCount` is INSIDE `promptTokenCount`. Whether
`thoughtsTokenCount` is inside `candidatesTokenCount` depends on the backend Qwen Code talked to: its
OpenAI-compatible converter (the default: DashScope, OpenRouter, ...) copies `completion_tokens`,
which already holds the reasoning, into `candidatesTokenCount`, while Gemini's native API keeps
thoughts apart. `totalTokenCount` tells them apart (prompt + candidates [+ thoughts]). Only
`type: "assistant"` records are read: `ui_telemetry` system records repeat the same usage.
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

#: The fields `feed` reads; the message content is never built.
RECORD = Record(
    dict.fromkeys(
        (
            "cwd",
            "type",
            "usageMetadata",
            "uuid",
            "sessionId",
            "model",
            "contextWindowSize",
            "timestamp",
            "isSidechain",
        )
    )
)


def split_usage(u: Mapping[str, object]) -> tuple[int, int, int, int]:
    """`usageMetadata` -> (input without cache, cache_read, output with reasoning, reasoning)."""
    prompt = count(u, "promptTokenCount")
    cached = min(count(u, "cachedContentTokenCount"), prompt)
    candidates = count(u, "candidatesTokenCount")
    thoughts = count(u, "thoughtsTokenCount")
    tool = count(u, "toolUsePromptTokenCount")
    total = count(u, "totalTokenCount")
    if thoughts > candidates:
        outside = True  # cannot be a part of it
    elif total and thoughts:
        # Gemini: total = prompt + candidates + thoughts (+ tool); OpenAI-style: prompt + candidates.
        outside = total >= prompt + candidates + thoughts + tool
    else:
        outside = False  # OpenAI-compatible and Anthropic converters (the usual backends)
    output = candidates + thoughts if outside else candidates
    return prompt - cached + tool, cached, output, thoughts


class QwenParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fallback_session = path.stem
        # chats/<file> is a session; anything deeper under chats/ is a subagent's transcript.
        self.nested = path.parent.name != "chats" and "chats" in path.parts[:-2]
        self.project = ""

    def state(self) -> dict[str, object]:
        return {"project": self.project}

    def restore(self, state: Mapping[str, object]) -> None:
        self.project = str(state.get("project") or "")

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line, RECORD)
        cwd = d.get("cwd")
        if isinstance(cwd, str) and cwd:
            self.project = cwd
        if d.get("type") != "assistant":
            return []
        usage = d.get("usageMetadata")
        if usage is None:
            return []
        inp, cache_read, output, reasoning = split_usage(as_dict(usage))
        if not (inp or cache_read or output):
            return []
        uid = d.get("uuid")
        if not isinstance(uid, str) or not uid:
            raise BadLine("assistant record without uuid")
        session = d.get("sessionId")
        if not isinstance(session, str) or not session:
            session = self.fallback_session
        model = d.get("model")
        window = d.get("contextWindowSize")
        return [
            Turn(
                agent="qwen",
                session_id=session,
                turn_id=uid,
                model=model if isinstance(model, str) and model else "unknown",
                timestamp=parse_ts(d.get("timestamp")),
                input=inp,
                cache_read=cache_read,
                output=output,
                reasoning=min(reasoning, output),
                project=self.project,
                sidechain=bool(d.get("isSidechain")) or self.nested,
                context_window=window if type(window) is int and 0 < window < 10**9 else 0,
            )
        ]


class Qwen(Agent):
    name = "qwen"
    needles = (b'"usageMetadata"',)
    sniff_priority = 40  # before Claude: the record shape (uuid, parentUuid, sessionId, cwd) is Claude's
    suffixes = (".jsonl",)
    compact_rule = (
        "85% of the window, at most the window less 33k (context.autoCompactThreshold, Qwen Code 0.21+)"
    )

    def compact_threshold(self, model: str, window: int) -> int | None:
        if window <= 33_000:
            return None
        return min(window * 85 // 100, window - 33_000)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        # Qwen Code: runtime data under QWEN_RUNTIME_DIR, else QWEN_HOME, else ~/.qwen.
        bases = env_paths(env, "QWEN_RUNTIME_DIR") or env_paths(env, "QWEN_HOME") or [home / ".qwen"]
        return [b / "projects" for b in bases]

    def owns_path(self, path: Path) -> bool:
        if path.suffix != ".jsonl":
            return False
        parts = path.parts
        try:
            i = len(parts) - 1 - parts[::-1].index("chats")
        except ValueError:
            return False
        return len(parts) - i <= 4 and i >= 2 and parts[i - 2] == "projects"

    def sniff(self, head: bytes) -> bool:
        # Gemini `Content` records (`parts`, role user/model) inside Claude-like envelopes.
        return (
            b'"usageMetadata":{' in head
            or b'"role":"user","parts":[' in head
            or b'"role":"model","parts":[' in head
            or (b'"systemPayload"' in head and b'"parentUuid"' in head)
        )

    def parser(self, path: Path) -> LogParser:
        return QwenParser(path)


AGENT = Qwen()
