"""One factory for the agent log records tokwatch's own tools write: the benchmark corpus
(`bench/make_corpus.py`), the live-append benchmark (`bench/run.py`), the demo's sample sessions
(`sample_logs/make_samples.py`) and the end-to-end tests.

Each function returns a record (a dict in the agent's own key order, as the agent writes it);
`jsonl()` turns one into a compact line. The shapes are those of real logs
(see /work/shared/docs/log-formats.md and tests/fixtures/real/).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


def iso_ms(ts: float | datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and `Z`, as Claude Code, Codex CLI and Gemini CLI write it."""
    if ts is None:
        ts = time.time()
    dt = ts.astimezone(UTC) if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def jsonl(record: Json) -> bytes:
    """One JSONL line the way `JSON.stringify` / serde write it: no spaces, raw UTF-8, a newline."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


# --------------------------------------------------------------------------- Claude Code
def claude_usage(
    input: int,
    cache_read: int,
    cache_write: int,
    output: int,
    *,
    cache_write_1h: int = 0,
    geo: str = "global",
) -> Json:
    """`message.usage` as Claude Code streams it: every copy of a response carries it (all but
    the last with a placeholder `output_tokens`)."""
    return {
        "input_tokens": input,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
            "ephemeral_1h_input_tokens": cache_write_1h,
        },
        "output_tokens": output,
        "service_tier": "standard",
        "inference_geo": geo,
    }


def claude_usage_final(
    input: int, cache_read: int, cache_write: int, output: int, *, cache_write_1h: int = 0
) -> Json:
    """`message.usage` of the last copy of a response in newer Claude Code builds (its keys in
    their order, with `server_tool_use` and `iterations`)."""
    return {
        "input_tokens": input,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {
            "ephemeral_1h_input_tokens": cache_write_1h,
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
        },
        "inference_geo": "",
        "iterations": [],
    }


def claude_header(
    *,
    session_id: str,
    cwd: str,
    parent_uuid: str | None = None,
    sidechain: bool = False,
    version: str = "2.1.39",
    git_branch: str = "main",
    agent_id: str | None = None,
    slug: str | None = None,
) -> Json:
    """The fields every Claude Code transcript line of a session starts with, in its order."""
    d: Json = {
        "parentUuid": parent_uuid,
        "isSidechain": sidechain,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session_id,
        "version": version,
        "gitBranch": git_branch,
    }
    if agent_id is not None:
        d["agentId"] = agent_id
    if slug is not None:
        d["slug"] = slug
    return d


def claude_assistant(
    header: Json,
    *,
    model: str,
    message_id: str,
    request_id: str,
    uuid: str,
    usage: Json,
    content: list[Json] | None = None,
    timestamp: str | None = None,
    stop_reason: str | None = None,
) -> Json:
    """A Claude Code assistant line (one copy of a streamed API response) after `header`."""
    d = dict(header)
    d["message"] = {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content if content is not None else [{"type": "text", "text": "ok"}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    d["requestId"] = request_id
    d["type"] = "assistant"
    d["uuid"] = uuid
    d["timestamp"] = timestamp or iso_ms()
    return d
