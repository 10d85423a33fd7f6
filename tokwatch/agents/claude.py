"""Claude Code: `projects/<cwd-slug>/<session>.jsonl`, subagents in `<session>/subagents/`.

Traps handled here (docs/agents.md): streaming duplicates share (message.id, requestId) and only
the last carries the real output count, so turns are merged field-wise by maximum in the store;
`progress` and `toolUseResult` embed usage that the subagent's own file already counts, so only
top-level `type: assistant` lines are read; `<synthetic>` API-error lines are not billed.

Besides turns: a `compact_boundary` system line is a `Compaction` (trigger, `preTokens`). Plan
windows are not in the transcripts: Claude Code hands them to the status-line command only
(`hook_limits`, recorded by `tokwatch statusline`).
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
from tokwatch.core.observations import Compaction, LimitSample, Observation, Refused, limit_sample

WINDOW = 200_000
WINDOW_1M = 1_000_000
#: The fields `feed` reads; message content, tool results and the rest are never built.
RECORD = Record(
    dict.fromkeys(
        (
            "type",
            "isApiErrorMessage",
            "sessionId",
            "cwd",
            "requestId",
            "uuid",
            "timestamp",
            "isSidechain",
            "subtype",
            "compactMetadata",
        )
    )
    | {"message": dict.fromkeys(("id", "model", "usage"))}
)
#: Claude Code >= 2.1.21: auto-compact at window - min(max output, 20k) - 13k (docs/limits.md).
OUTPUT_RESERVE = 20_000
AUTOCOMPACT_BUFFER = 13_000
#: The status line's `rate_limits` windows and their lengths in minutes.
HOOK_WINDOWS = (("five_hour", 300), ("seven_day", 10080))


class ClaudeParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fallback_session = path.stem
        self.subagent = path.parent.name == "subagents"
        if self.subagent:
            self.fallback_session = path.parent.parent.name
        # `-home-me-proj` is the cwd with / replaced: a best guess until a line names its cwd.
        proj_dir = path.parents[2] if self.subagent else path.parent
        self.project = proj_dir.name

    def state(self) -> dict[str, object]:
        return {"project": self.project}

    def restore(self, state: Mapping[str, object]) -> None:
        self.project = str(state.get("project") or self.project)

    def feed(self, line: bytes) -> list[Turn]:
        if b'"assistant"' not in line:
            if b'"compact_boundary"' in line:
                self._boundary(load_object(line))
            return []
        d = load_object(line, RECORD)
        if d.get("type") != "assistant":
            if d.get("subtype") == "compact_boundary":
                self._boundary(d)
            return []
        msg = as_dict(d.get("message"))
        usage = msg.get("usage")
        if usage is None:
            return []
        usage = as_dict(usage)
        model = msg.get("model")
        if d.get("isApiErrorMessage") or model == "<synthetic>":
            return []
        if not isinstance(model, str) or not model:
            model = "unknown"
        cw = count(usage, "cache_creation_input_tokens")
        inp = count(usage, "input_tokens")
        cache_read = count(usage, "cache_read_input_tokens")
        output = count(usage, "output_tokens")
        if not (inp or cache_read or cw or output):
            return []  # an empty or all-zero usage is no request: not a turn, the gauge stays
        cc = usage.get("cache_creation")
        cw_1h = count(cc, "ephemeral_1h_input_tokens") if isinstance(cc, dict) else 0
        session = d.get("sessionId")
        if not isinstance(session, str) or not session:
            session = self.fallback_session
        cwd = d.get("cwd")
        if isinstance(cwd, str) and cwd:
            self.project = cwd
        mid = msg.get("id")
        rid = d.get("requestId")
        if isinstance(mid, str) and mid:
            turn_id = f"{mid}:{rid}" if isinstance(rid, str) and rid else mid
        else:
            uid = d.get("uuid")
            if not isinstance(uid, str) or not uid:
                raise BadLine("assistant line without message.id or uuid")
            turn_id = uid
        return [
            Turn(
                agent="claude",
                session_id=session,
                turn_id=turn_id,
                model=model,
                timestamp=parse_ts(d.get("timestamp")),
                input=inp,
                cache_read=cache_read,
                cache_write=cw,
                cache_write_1h=min(cw_1h, cw),
                output=output,
                project=self.project,
                sidechain=bool(d.get("isSidechain")) or self.subagent,
                merge_max=True,
            )
        ]

    def _boundary(self, d: dict[str, object]) -> None:
        """`{"type":"system","subtype":"compact_boundary","compactMetadata":{trigger, preTokens}}`."""
        if d.get("type") != "system" or d.get("subtype") != "compact_boundary" or self.subagent:
            return
        session = d.get("sessionId")
        if not isinstance(session, str) or not session:
            session = self.fallback_session
        meta = d.get("compactMetadata")
        meta = meta if isinstance(meta, dict) else {}
        trigger = meta.get("trigger")
        uid = d.get("uuid")
        ts = parse_ts(d.get("timestamp"))
        self.observe(
            Compaction(
                "claude",
                session,
                uid if isinstance(uid, str) and uid else repr(d.get("timestamp")),
                ts,
                trigger if trigger in ("auto", "manual") else "",
                _tokens(meta.get("preTokens")),
                _tokens(meta.get("postTokens")),
            )
        )


def _tokens(v: object) -> int | None:
    return v if type(v) is int and 0 <= v < 10**12 else None


def hook_limits(hook: Mapping[str, object], now: float) -> list[Observation]:
    """The plan windows in Claude Code's status-line input (`rate_limits.five_hour/seven_day`
    `{used_percentage, resets_at}`, from 2.1.80, subscribers only, after the first response):
    a checked `LimitSample` per window, a `Refused` for each garbage one; nothing when absent."""
    limits = hook.get("rate_limits")
    if limits is None:
        return []
    if not isinstance(limits, dict):
        return [Refused("claude", "limit")]
    sid = hook.get("session_id")
    out: list[Observation] = []
    for name, minutes in HOOK_WINDOWS:
        w = limits.get(name)
        if w is None:
            continue
        sample: LimitSample | None = None
        if isinstance(w, dict):
            sample = limit_sample(
                agent="claude",
                provider="anthropic",
                source="statusline",
                limit_id="claude",
                minutes=minutes,
                used=w.get("used_percentage"),
                resets_at=w.get("resets_at"),
                observed_at=now,
                session_id=sid[:200] if isinstance(sid, str) else "",
            )
        out.append(sample if sample is not None else Refused("claude", "limit"))
    return out


class Claude(Agent):
    name = "claude"
    needles = (b'"assistant"', b'"compact_boundary"')
    provider = "anthropic"
    default_context_window = WINDOW
    sniff_priority = 90  # its sniff is the loosest
    compact_rule = "the window less a 20k output reserve and a 13k buffer (Claude Code >= 2.1.21)"

    def compact_threshold(self, model: str, window: int) -> int | None:
        if window <= OUTPUT_RESERVE + AUTOCOMPACT_BUFFER:
            return None
        return window - OUTPUT_RESERVE - AUTOCOMPACT_BUFFER

    # what Claude Code gives the MCP servers it starts (2.1.332 does; 2.1.112 gave none of them)
    mcp_marker_env = ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID")
    mcp_session_env = "CLAUDE_CODE_SESSION_ID"
    mcp_project_env = "CLAUDE_PROJECT_DIR"

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        bases = env_paths(env, "CLAUDE_CONFIG_DIR") or [home / ".config" / "claude", home / ".claude"]
        return [b / "projects" for b in bases]

    def owns_path(self, path: Path) -> bool:
        return path.suffix == ".jsonl" and "projects" in path.parts[:-1]

    def sniff(self, head: bytes) -> bool:
        return (b'"sessionId"' in head and (b'"type":"' in head or b'"type": "' in head)) or (
            b'"file-history-snapshot"' in head or b'"leafUuid"' in head
        )

    def parser(self, path: Path) -> LogParser:
        return ClaudeParser(path)

    def context_window(self, model: str, max_prompt: int) -> int:
        if "[1m]" in model or max_prompt > WINDOW:
            return WINDOW_1M
        return WINDOW


AGENT = Claude()
