"""Generate the synthetic agent logs in this folder (`claude/`, `codex/`, `gemini/`).

The logs are invented but copy the exact record shapes of the real ones in the shared fixtures, so
parsers, the demo and screenshots can run on them without anyone's private history. Everything is
seeded: running `python sample_logs/make_samples.py` again rewrites byte-identical files. Edit this
script, never the generated files.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import string
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))
import loglines  # noqa: E402  (bench/loglines.py: the log-line factory shared with the benchmark corpus)

SEED = 20261120
AGENT_DIRS = ("claude", "codex", "gemini")
B62 = string.ascii_letters + string.digits

Json = dict[str, Any]


def iso(t: datetime) -> str:
    """UTC ISO-8601 with milliseconds and `Z`, as all three agents write it."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def compact(record: Json) -> str:
    """One JSONL line the way `JSON.stringify` / serde write it: no spaces, raw UTF-8."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: Path, records: list[Json]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(compact(r) + "\n" for r in records), encoding="utf-8")


class Ids:
    """Deterministic look-alikes of the ids each agent writes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def uuid7(self, when: datetime) -> str:
        """Codex session ids are UUIDv7: the first 48 bits are the creation time in ms."""
        ms = int(when.timestamp() * 1000) & ((1 << 48) - 1)
        value = (ms << 80) | (0x7 << 76) | (self.rng.getrandbits(12) << 64)
        value |= (0b10 << 62) | self.rng.getrandbits(62)
        return str(uuid.UUID(int=value))

    def b62(self, n: int) -> str:
        return "".join(self.rng.choice(B62) for _ in range(n))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def msg(self) -> str:
        return "msg_01" + self.b62(22)

    def req(self) -> str:
        return "req_011C" + self.b62(20)

    def toolu(self) -> str:
        return "toolu_01" + self.b62(22)

    def call(self) -> str:
        return "call_" + self.b62(24)


class Clock:
    """A wall clock that only moves forward, in random human/agent-sized steps."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.now = start

    def tick(self, lo: float = 0.3, hi: float = 2.0) -> str:
        self.now += timedelta(milliseconds=int(self.rng.uniform(lo, hi) * 1000))
        return iso(self.now)

    def jump_to(self, when: datetime) -> str:
        self.now = max(self.now, when)
        return self.tick(0.0, 0.9)


def ramp(rng: random.Random, start: int, end: int, n: int) -> list[int]:
    """`n` increasing values from start to end with uneven steps (big file reads, small edits)."""
    if n == 1:
        return [start]
    steps = [rng.uniform(0.4, 1.6) for _ in range(n - 1)]
    scale = (end - start) / sum(steps)
    out = [start]
    for s in steps:
        out.append(out[-1] + int(s * scale))
    out[-1] = end
    return out


# --------------------------------------------------------------------------------------------------
# Claude Code
# --------------------------------------------------------------------------------------------------


@dataclass
class Tool:
    """A tool call Claude makes and the (tiny, invented) result it gets back."""

    name: str
    input: Json
    result: str
    tool_use_result: Json | str | None = None


@dataclass
class ClaudeTurn:
    """One billed request: its content blocks and its prompt size. Blocks: ("thinking"|"text", str) or Tool."""

    blocks: list[tuple[str, str] | Tool]
    context: int
    output: int
    cold: bool = False
    base_cached: int | None = None
    cw_1h: str = "none"  # "none" | "all" | "split"


@dataclass
class ClaudeSession:
    """Builds one Claude Code transcript (main chain or a subagent's sidechain) line by line."""

    ids: Ids
    clock: Clock
    session_id: str
    cwd: str
    branch: str
    slug: str
    model: str
    version: str = "2.1.283"
    agent_id: str | None = None
    geo: str = "global"
    records: list[Json] = field(default_factory=list)
    parent: str | None = None
    prev_context: int = 0
    last_usage: Json | None = None
    turns: int = 0

    def _base(self) -> Json:
        return loglines.claude_header(
            session_id=self.session_id,
            cwd=self.cwd,
            parent_uuid=self.parent,
            sidechain=self.agent_id is not None,
            version=self.version,
            git_branch=self.branch,
            agent_id=self.agent_id,
            slug=self.slug,
        )

    def _push(self, rec: Json) -> Json:
        self.records.append(rec)
        if "uuid" in rec:
            self.parent = rec["uuid"]
        return rec

    def snapshot(self) -> None:
        mid = self.ids.uuid4()
        self.records.append(
            {
                "type": "file-history-snapshot",
                "messageId": mid,
                "snapshot": {"messageId": mid, "trackedFileBackups": {}, "timestamp": iso(self.clock.now)},
                "isSnapshotUpdate": False,
            }
        )

    def hook(self, event: str, name: str, command: str, tool_use_id: str) -> None:
        rec = self._base()
        rec.update(
            type="progress",
            data={"type": "hook_progress", "hookEvent": event, "hookName": name, "command": command},
            parentToolUseID=tool_use_id,
            toolUseID=tool_use_id,
            timestamp=self.clock.tick(0.001, 0.01),
            uuid=self.ids.uuid4(),
        )
        self._push(rec)

    def user(self, text: str, *, first: bool = False) -> None:
        rec = self._base()
        if first:
            rec["parentUuid"] = None
        rec.update(type="user", message={"role": "user", "content": text}, uuid=self.ids.uuid4())
        rec["timestamp"] = iso(self.clock.now)
        if self.agent_id is None:
            rec.update(thinkingMetadata={"maxThinkingTokens": 31999}, todos=[], permissionMode="default")
        self._push(rec)

    def system(self, subtype: str, **extra: Any) -> None:
        rec = self._base()
        rec.update(type="system", subtype=subtype, **extra)
        rec.update(timestamp=self.clock.tick(0.01, 0.08), uuid=self.ids.uuid4(), isMeta=False)
        self._push(rec)

    def queue(self, operation: str, content: str) -> None:
        self.records.append(
            {
                "type": "queue-operation",
                "operation": operation,
                "timestamp": self.clock.tick(0.01, 0.2),
                "sessionId": self.session_id,
                "content": content,
            }
        )

    def _usage(self, turn: ClaudeTurn, output: int) -> Json:
        inp = self.ids.rng.choice([1, 1, 2, 3, 3, 3, 5, 6])
        if turn.cold:
            read = 0
        elif turn.base_cached is not None:
            read = turn.base_cached
        else:
            read = self.prev_context
        write = turn.context - read - inp
        assert write > 0, (turn.context, read)
        one_h = {"none": 0, "all": write, "split": write // 3}[turn.cw_1h]
        return loglines.claude_usage(inp, read, write, output, cache_write_1h=one_h, geo=self.geo)

    def assistant(self, turn: ClaudeTurn, *, gap: tuple[float, float] = (3.0, 15.0)) -> list[Json]:
        """Write one API response as Claude Code does: one line per content block, same id and usage,
        a small placeholder `output_tokens` on every line but the last; tools run (and their results
        are logged) between the blocks of the same response."""
        mid, rid = self.ids.msg(), self.ids.req()
        placeholder = self.ids.rng.choice([1, 2, 3, 8, 9, 10])
        usage = self._usage(turn, placeholder)
        self.clock.tick(*gap)
        lines: list[Json] = []
        for i, block in enumerate(turn.blocks):
            last = i == len(turn.blocks) - 1
            if isinstance(block, Tool):
                content: Json = {
                    "type": "tool_use",
                    "id": self.ids.toolu(),
                    "name": block.name,
                    "input": block.input,
                    "caller": {"type": "direct"},
                }
            elif block[0] == "thinking":
                content = {"type": "thinking", "thinking": block[1], "signature": self.ids.b62(44)}
            else:
                content = {"type": "text", "text": block[1]}
            rec = loglines.claude_assistant(
                self._base(),
                model=self.model,
                message_id=mid,
                request_id=rid,
                content=[content],
                usage=dict(usage, output_tokens=turn.output if last else placeholder),
                uuid=self.ids.uuid4(),  # (before the clock: the same random draws, in the same order)
                timestamp=self.clock.tick(0.4, 1.5),
            )
            lines.append(self._push(rec))
            if isinstance(block, Tool):
                self.tool_result(content["id"], block, rec["uuid"])
        self.prev_context = turn.context
        self.last_usage = lines[-1]["message"]["usage"]
        self.turns += 1
        return lines

    def tool_result(self, tool_use_id: str, tool: Tool, source: str) -> None:
        if tool.name in ("Bash", "Edit", "Write") and self.agent_id is None:
            self.hook("PreToolUse", f"PreToolUse:{tool.name}", "~/.claude/hooks/guard.sh", tool_use_id)
        rec = self._base()
        rec.update(
            type="user",
            message={
                "role": "user",
                "content": [{"tool_use_id": tool_use_id, "type": "tool_result", "content": tool.result}],
            },
            uuid=self.ids.uuid4(),
            timestamp=self.clock.tick(0.05, 1.2),
            toolUseResult=tool.tool_use_result if tool.tool_use_result is not None else tool.result,
            sourceToolAssistantUUID=source,
        )
        self._push(rec)

    def api_error(self, resets_at: datetime) -> None:
        """A `<synthetic>` line: Claude Code's own error message, all-zero usage, not a billed turn."""
        rec = self._base()
        rec.update(type="assistant", uuid=self.ids.uuid4(), timestamp=self.clock.tick(1.0, 3.0))
        rec["message"] = {
            "id": self.ids.uuid4(),
            "container": None,
            "model": "<synthetic>",
            "role": "assistant",
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": None,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            },
            "content": [{"type": "text", "text": "You've hit your session limit · resets 12pm (UTC)"}],
            "context_management": None,
        }
        rec.update(
            requestId=self.ids.req(),
            quotaLimits={
                "status": "rejected",
                "resetsAt": int(resets_at.timestamp()),
                "rateLimitType": "five_hour",
                "overageStatus": "rejected",
                "isUsingOverage": False,
            },
            error="rate_limit",
            isApiErrorMessage=True,
            apiErrorStatus=429,
        )
        self._push(rec)

    def compact(self, summary: str) -> int:
        """The compact_boundary + isCompactSummary pair; returns preTokens (context before compaction)."""
        assert self.last_usage is not None
        u = self.last_usage
        pre = (
            u["input_tokens"]
            + u["cache_creation_input_tokens"]
            + u["cache_read_input_tokens"]
            + u["output_tokens"]
        )
        rec = {"parentUuid": None, "logicalParentUuid": self.parent}
        rec.update((k, v) for k, v in self._base().items() if k != "parentUuid")
        ts = self.clock.tick(40.0, 70.0)
        rec.update(
            type="system",
            subtype="compact_boundary",
            content="Conversation compacted",
            isMeta=False,
            timestamp=ts,
            uuid=self.ids.uuid4(),
            level="info",
            compactMetadata={"trigger": "auto", "preTokens": pre},
        )
        self._push(rec)
        rec = self._base()
        rec.update(
            type="user",
            message={"role": "user", "content": summary},
            isVisibleInTranscriptOnly=True,
            isCompactSummary=True,
            uuid=self.ids.uuid4(),
            timestamp=ts,
        )
        self._push(rec)
        return pre


def _read(path: str, text: str, lines: int = 40) -> Tool:
    return Tool(
        "Read",
        {"file_path": path},
        text,
        {
            "type": "text",
            "file": {
                "filePath": path,
                "content": text,
                "numLines": lines,
                "startLine": 1,
                "totalLines": lines,
            },
        },
    )


def _bash(command: str, description: str, stdout: str) -> Tool:
    return Tool(
        "Bash",
        {"command": command, "description": description},
        stdout,
        {"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False},
    )


def _edit(path: str, old: str, new: str) -> Tool:
    return Tool(
        "Edit",
        {"file_path": path, "old_string": old, "new_string": new},
        f"The file {path} has been updated.",
        {"filePath": path, "oldString": old, "newString": new, "replaceAll": False},
    )


def _grep(pattern: str, files: list[str]) -> Tool:
    return Tool(
        "Grep",
        {"pattern": pattern, "output_mode": "files_with_matches"},
        "\n".join(files),
        {"mode": "files_with_matches", "filenames": files, "numFiles": len(files)},
    )


WEB = "/home/dev/projects/webshop"
WEBSHOP_TOOLS: list[Tool] = [
    _read(f"{WEB}/src/cart/totals.ts", "export function computeTotals(cart: Cart): Totals {", 118),
    _read(f"{WEB}/src/cart/discounts.ts", "export const applyDiscounts = (lines, codes) =>", 64),
    _read(f"{WEB}/src/cart/tax.ts", "export function applyTax(amount: Money, region: Region)", 52),
    _grep("computeTotals", [f"{WEB}/src/cart/totals.ts", f"{WEB}/src/checkout/summary.tsx"]),
    _edit(
        f"{WEB}/src/cart/totals.ts", "const taxed = applyTax(subtotal)", "const taxed = applyTax(discounted)"
    ),
    _edit(f"{WEB}/src/cart/discounts.ts", "return lines", "return lines.map(roundCents)"),
    _bash("npm test -- cart", "Run cart tests", "Tests: 41 passed, 41 total"),
    _bash("npx tsc --noEmit", "Type-check", ""),
    _read(f"{WEB}/test/cart/totals.test.ts", "describe('computeTotals', () => {", 210),
    _edit(f"{WEB}/test/cart/totals.test.ts", "it.todo('stacked coupons')", "it('stacked coupons', () => {"),
    _bash("npm test -- discounts", "Run discount tests", "Tests: 12 passed, 12 total"),
    _read(f"{WEB}/src/checkout/summary.tsx", "export function OrderSummary({ totals }: Props) {", 96),
    _edit(f"{WEB}/src/checkout/summary.tsx", "{totals.tax}", "{formatMoney(totals.tax)}"),
    _bash("git diff --stat", "Show diff summary", " 4 files changed, 73 insertions(+), 21 deletions(-)"),
]

THOUGHTS = [
    "Tax is applied before discounts in computeTotals; the order must flip.",
    "The rounding happens per line, so totals drift by a cent on large carts.",
    "Tests cover single coupons only; stacked coupons are untested.",
    "The summary component formats raw numbers; it should use formatMoney.",
    "Let me check the callers before changing the signature.",
]

SAYS = [
    "Let me look at how totals are computed.",
    "I'll run the cart tests to confirm.",
    "Now updating the discount order.",
    "Checking the checkout summary next.",
    "Type-check before running the suite.",
]


def claude_tool_turn(rng: random.Random, context: int, **kw: Any) -> ClaudeTurn:
    """A typical mid-task response: maybe a thought, maybe a sentence, one to three tool calls."""
    blocks: list[tuple[str, str] | Tool] = []
    if rng.random() < 0.6:
        blocks.append(("thinking", rng.choice(THOUGHTS)))
    if rng.random() < 0.5:
        blocks.append(("text", rng.choice(SAYS)))
    blocks.extend(rng.sample(WEBSHOP_TOOLS, rng.choice([1, 1, 2, 3])))
    return ClaudeTurn(blocks, context, rng.randint(90, 1400), **kw)


def claude_final(rng: random.Random, text: str, context: int, **kw: Any) -> ClaudeTurn:
    return ClaudeTurn([("text", text)], context, rng.randint(250, 900), **kw)


def make_claude_subagent(rng: random.Random, ids: Ids, parent: ClaudeSession, prompt: str) -> ClaudeSession:
    """A Task (Explore) subagent: its own sidechain file, the parent's sessionId, its own context."""
    sub = ClaudeSession(
        ids,
        Clock(rng, parent.clock.now + timedelta(seconds=1.2)),
        session_id=parent.session_id,
        cwd=parent.cwd,
        branch=parent.branch,
        slug=parent.slug,
        model="claude-sonnet-4-5-20250929",
        agent_id=ids.hex(7),
        geo="not_available",
    )
    sub.user(prompt, first=True)
    contexts = ramp(rng, 14_106, 35_870, 5)
    tools = [
        _grep("computeTotals", [f"{WEB}/src/cart/totals.ts", f"{WEB}/src/checkout/summary.tsx"]),
        _read(f"{WEB}/src/checkout/summary.tsx", "const totals = computeTotals(cart)", 96),
        _grep("applyTax\\(", [f"{WEB}/src/cart/totals.ts", f"{WEB}/src/api/quote.ts"]),
        _read(f"{WEB}/src/api/quote.ts", "router.post('/quote', (req, res) => {", 40),
        _read(f"{WEB}/src/cart/tax.ts", "export function applyTax(amount: Money, region: Region)", 52),
    ]
    sub.assistant(ClaudeTurn([("text", "Searching for callers."), tools[0]], contexts[0], 156, base_cached=0))
    sub.assistant(ClaudeTurn([tools[1], tools[2]], contexts[1], 211), gap=(1.0, 3.0))
    sub.assistant(ClaudeTurn([tools[3]], contexts[2], 97), gap=(1.0, 3.0))
    sub.assistant(ClaudeTurn([("thinking", "quote.ts computes tax itself."), tools[4]], contexts[3], 388))
    sub.assistant(
        ClaudeTurn(
            [
                (
                    "text",
                    "computeTotals is called from checkout/summary.tsx and api/quote.ts (tax applied twice).",
                )
            ],
            contexts[4],
            642,
        )
    )
    return sub


def make_webshop(rng: random.Random, ids: Ids, root: Path) -> list[Path]:
    """The long Claude session: ~25 turns, a subagent, an API error, a compaction, a next-day resume."""
    sid = ids.uuid4()
    s = ClaudeSession(
        ids,
        Clock(rng, at("2026-11-20T09:05:12.418")),
        session_id=sid,
        cwd=WEB,
        branch="feature/cart-totals",
        slug="tidy-orbiting-lantern",
        model="claude-opus-4-6",
    )
    s.snapshot()
    for name in ("~/.claude/hooks/session-start.sh", "direnv export json"):
        s.hook("SessionStart", "SessionStart:startup", name, ids.uuid4())
    s.clock.tick(1.0, 2.0)
    s.user("Refactor the cart totals so discounts apply before tax.", first=True)

    # Prompt 1: 7 turns, a Task subagent on turn 5. Warm cache throughout.
    ctx = ramp(rng, 21_350, 58_900, 7)
    s.assistant(claude_tool_turn(rng, ctx[0], base_cached=12_018))
    for c in ctx[1:4]:
        s.assistant(claude_tool_turn(rng, c))

    task_prompt = "List every caller of computeTotals and say where tax is applied."
    task = Tool(
        "Task",
        {"description": "Find computeTotals callers", "prompt": task_prompt, "subagent_type": "Explore"},
        "",
    )
    mid, rid = ids.msg(), ids.req()
    s.clock.tick(3.0, 6.0)
    task_id = ids.toolu()
    usage = s._usage(ClaudeTurn([task], ctx[4], 0), 0)
    usage["output_tokens"] = 187
    rec = s._base()
    rec["message"] = {
        "model": s.model,
        "id": mid,
        "type": "message",
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": task_id,
                "name": "Task",
                "input": task.input,
                "caller": {"type": "direct"},
            }
        ],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    rec.update(requestId=rid, type="assistant", uuid=ids.uuid4(), timestamp=s.clock.tick(0.4, 1.2))
    task_line = s._push(rec)
    s.prev_context, s.last_usage, s.turns = ctx[4], usage, s.turns + 1

    sub_start = s.clock.now
    sub = make_claude_subagent(rng, ids, s, task_prompt)
    # The parent logs `progress` lines that embed the subagent's own assistant lines, usage included.
    for emb in [r for r in sub.records if r.get("type") == "assistant"][:2]:
        prog = s._base()
        prog.update(
            type="progress",
            data={
                "message": {
                    "type": "assistant",
                    "timestamp": emb["timestamp"],
                    "message": emb["message"],
                    "requestId": emb["requestId"],
                    "uuid": emb["uuid"],
                },
                "normalizedMessages": [],
                "type": "agent_progress",
                "prompt": task_prompt,
                "agentId": sub.agent_id,
            },
            toolUseID="agent_" + mid,
            parentToolUseID=task_id,
            uuid=ids.uuid4(),
            timestamp=emb["timestamp"],
        )
        s._push(prog)
    s.clock.jump_to(sub.clock.now)
    assert sub.last_usage is not None
    lu = sub.last_usage
    final_text = sub.records[-1]["message"]["content"][0]["text"]
    task.result = final_text
    task.tool_use_result = {
        "status": "completed",
        "prompt": task_prompt,
        "agentId": sub.agent_id,
        "content": [{"type": "text", "text": final_text}],
        "totalDurationMs": int((sub.clock.now - sub_start).total_seconds() * 1000),
        "totalTokens": lu["input_tokens"]
        + lu["cache_creation_input_tokens"]
        + lu["cache_read_input_tokens"]
        + lu["output_tokens"],
        "totalToolUseCount": 7,
        "usage": lu,
    }
    s.tool_result(task_id, task, task_line["uuid"])

    s.assistant(claude_tool_turn(rng, ctx[5]))
    s.assistant(claude_final(rng, "Discounts now apply before tax; cart tests pass.", ctx[6]))
    s.system(
        "turn_duration", durationMs=int((s.clock.now - at("2026-11-20T09:05:14")).total_seconds() * 1000)
    )

    # Prompt 2, two minutes later (cache still warm): 6 turns, then the five-hour limit hits.
    s.clock.tick(100, 130)
    s.user("Add unit tests for the discount edge cases.")
    s.queue("enqueue", "also cover stacked coupons")
    ctx = ramp(rng, 63_400, 98_200, 6)
    for c in ctx[:-1]:
        s.assistant(claude_tool_turn(rng, c))
    s.queue("dequeue", "also cover stacked coupons")
    s.assistant(claude_tool_turn(rng, ctx[-1]))
    s.api_error(at("2026-11-20T12:00:00"))

    # Prompt 3 after the reset: the cache expired, the whole prompt is written again.
    s.clock.jump_to(at("2026-11-20T12:04:37.120"))
    s.user("continue")
    ctx = ramp(rng, 104_300, 156_100, 6)
    s.assistant(claude_tool_turn(rng, ctx[0], cold=True))
    for c in ctx[1:-1]:
        s.assistant(claude_tool_turn(rng, c))
    s.assistant(
        claude_final(rng, "Added 9 edge-case tests (stacked coupons, zero totals, rounding).", ctx[-1])
    )
    s.system("turn_duration", durationMs=912_400)

    # Auto-compaction: the next prompt is far smaller; totals keep growing, the gauge falls back.
    s.compact("This session is being continued from a previous conversation. Summary: cart totals refactor.")
    s.clock.tick(2.0, 4.0)
    s.user("Run the whole suite once more.")
    s.assistant(claude_tool_turn(rng, 33_240, base_cached=12_018))
    s.assistant(claude_final(rng, "All 214 tests pass.", 38_910))

    # Next morning: same session, cold cache again.
    s.clock.jump_to(at("2026-11-21T08:52:03.551"))
    s.user("Now show the discount line in the checkout summary.")
    ctx = ramp(rng, 41_800, 60_400, 4)
    s.assistant(claude_tool_turn(rng, ctx[0], cold=True))
    for c in ctx[1:-1]:
        s.assistant(claude_tool_turn(rng, c))
    s.assistant(claude_final(rng, "The summary shows the discount line; screenshot tests updated.", ctx[-1]))
    s.system("turn_duration", durationMs=301_050)

    proj = root / "projects" / "-home-dev-projects-webshop"
    main = proj / f"{sid}.jsonl"
    agent = proj / sid / "subagents" / f"agent-{sub.agent_id}.jsonl"
    write_jsonl(main, s.records)
    write_jsonl(agent, sub.records)
    print(f"claude webshop: {s.turns} turns, subagent {sub.turns} turns")
    return [main, agent]


def make_api_gateway(rng: random.Random, ids: Ids, root: Path) -> list[Path]:
    """A shorter Sonnet session whose first turns write 1-hour cache entries (billed 2x input)."""
    sid = ids.uuid4()
    cwd = "/home/dev/projects/api-gateway"
    s = ClaudeSession(
        ids,
        Clock(rng, at("2026-11-21T14:02:40.007")),
        session_id=sid,
        cwd=cwd,
        branch="main",
        slug="quiet-copper-heron",
        model="claude-sonnet-4-5-20250929",
    )
    s.snapshot()
    s.hook("SessionStart", "SessionStart:startup", "~/.claude/hooks/session-start.sh", ids.uuid4())
    s.clock.tick(1.0, 3.0)
    s.user("Add per-client rate limiting to the gateway.", first=True)
    tools = [
        _read(f"{cwd}/internal/limit/bucket.go", "type Bucket struct {", 88),
        _read(f"{cwd}/internal/server/middleware.go", "func Chain(h http.Handler, mws ...Middleware)", 61),
        _edit(
            f"{cwd}/internal/server/middleware.go",
            "return Chain(h, logging)",
            "return Chain(h, logging, limiter)",
        ),
        _bash("go test ./internal/...", "Run unit tests", "ok  gateway/internal/limit 0.412s"),
        _bash("go vet ./...", "Vet", ""),
    ]
    ctx = ramp(rng, 18_240, 44_700, 4)
    s.assistant(
        ClaudeTurn(
            [("thinking", "A token bucket per API key."), tools[0]], ctx[0], 212, cold=True, cw_1h="all"
        )
    )
    s.assistant(ClaudeTurn([tools[1]], ctx[1], 140, cw_1h="all"))
    s.assistant(
        ClaudeTurn([("text", "Wiring the limiter in."), tools[2], tools[3]], ctx[2], 1_310, cw_1h="all")
    )
    s.assistant(ClaudeTurn([("text", "Limiter added; tests pass.")], ctx[3], 380, cw_1h="all"))
    s.system("turn_duration", durationMs=95_220)

    # 25 minutes later: a 5-minute entry would have expired, the 1-hour one is still read.
    s.clock.tick(1_480, 1_540)
    s.user("Make the limit configurable per route.")
    ctx = ramp(rng, 47_100, 63_900, 5)
    s.assistant(
        ClaudeTurn([("thinking", "Config lives in routes.yaml."), tools[1]], ctx[0], 260, cw_1h="split")
    )
    s.assistant(ClaudeTurn([tools[2]], ctx[1], 905))
    s.assistant(ClaudeTurn([tools[4], tools[3]], ctx[2], 118))
    s.assistant(ClaudeTurn([tools[3]], ctx[3], 96))
    s.assistant(ClaudeTurn([("text", "Routes can now set `rate_limit: 50/s`.")], ctx[4], 455))
    s.system("turn_duration", durationMs=71_800)

    path = root / "projects" / "-home-dev-projects-api-gateway" / f"{sid}.jsonl"
    write_jsonl(path, s.records)
    print(f"claude api-gateway: {s.turns} turns")
    return [path]


# --------------------------------------------------------------------------------------------------
# Codex CLI
# --------------------------------------------------------------------------------------------------


def make_codex(rng: random.Random, ids: Ids, root: Path) -> list[Path]:
    """A Codex rollout: every token_count written twice, `info: null` first, window 272000."""
    start = at("2026-11-20T10:12:03.284")
    clock = Clock(rng, start)
    sid = ids.uuid7(start)
    cwd = WEB
    model = "gpt-5.1-codex-max"
    recs: list[Json] = []

    def emit(kind: str, payload: Json, ts: str | None = None) -> None:
        recs.append({"timestamp": ts or iso(clock.now), "type": kind, "payload": payload})

    total = {
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_output_tokens": 0,
        "total_tokens": 0,
    }
    used = [3.0, 21.0]
    resets = (int(at("2026-11-20T14:40:00").timestamp()), int(at("2026-11-24T08:00:00").timestamp()))

    def rate_limits() -> Json:
        return {
            "primary": {"used_percent": round(used[0], 1), "window_minutes": 300, "resets_at": resets[0]},
            "secondary": {"used_percent": round(used[1], 1), "window_minutes": 10080, "resets_at": resets[1]},
            "credits": {"has_credits": False, "unlimited": False, "balance": None},
        }

    def token_count(last: Json | None) -> None:
        info = None
        if last is not None:
            info = {
                "total_token_usage": dict(total),
                "last_token_usage": last,
                "model_context_window": 272_000,
            }
        emit("event_msg", {"type": "token_count", "info": info, "rate_limits": rate_limits()})

    emit(
        "session_meta",
        {
            "id": sid,
            "timestamp": iso(start - timedelta(milliseconds=19)),
            "cwd": cwd,
            "originator": "codex_cli_rs",
            "cli_version": "0.63.0",
            "instructions": None,
            "source": "cli",
            "model_provider": "openai",
            "git": {
                "commit_hash": ids.hex(40),
                "branch": "feature/cart-totals",
                "repository_url": "git@example.com:dev/webshop.git",
            },
        },
    )
    env = (
        f"<environment_context>\n  <cwd>{cwd}</cwd>\n  <approval_policy>on-request</approval_policy>\n"
        "  <sandbox_mode>workspace-write</sandbox_mode>\n  <network_access>restricted</network_access>\n"
        "  <shell>bash</shell>\n</environment_context>"
    )
    emit(
        "response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": env}]}
    )

    commands = [
        ("rg -n 'formatMoney' src", "src/lib/money.ts:12:export function formatMoney("),
        ("sed -n '1,80p' src/lib/money.ts", "export function formatMoney(value: number, currency = 'EUR') {"),
        ("npm test -- money", "Tests: 8 passed, 8 total"),
        ("rg -n 'toFixed\\(2\\)' src", "src/checkout/summary.tsx:41:  price.toFixed(2)"),
        ("npx tsc --noEmit", ""),
        ("git status --short", " M src/lib/money.ts"),
    ]
    patches = ["src/lib/money.ts", "src/checkout/summary.tsx", "test/lib/money.test.ts"]
    prompts = [
        ("Replace the ad-hoc toFixed(2) calls with formatMoney.", 8, "high", 9_870, 41_000, 7_936),
        ("Handle currencies without minor units (JPY).", 7, "high", 44_100, 71_500, None),
        ("Write a short note for the changelog.", 5, "medium", 73_200, 88_600, 7_936),
    ]
    first = True
    prev_input = 0
    for text, n, effort, lo, hi, cold_cached in prompts:
        if first:
            clock.tick(20, 60)
        elif cold_cached is None:
            clock.tick(150, 170)  # warm: the provider's prompt cache still holds the prefix
        else:
            clock.tick(2400, 2700)  # 40+ minutes later: only the shared prefix is cached
        emit(
            "response_item",
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        )
        emit("event_msg", {"type": "user_message", "message": text, "images": []})
        turn_id = ids.uuid7(clock.now)
        emit("event_msg", {"type": "task_started", "turn_id": turn_id, "model_context_window": 272_000})
        emit(
            "turn_context",
            {
                "turn_id": turn_id,
                "cwd": cwd,
                "approval_policy": "on-request",
                "sandbox_policy": {"type": "workspace-write", "network_access": False},
                "model": model,
                "effort": effort,
                "summary": "auto",
            },
        )
        emit(
            "response_item",
            {"type": "ghost_snapshot", "ghost_commit": {"id": ids.hex(40), "parent": ids.hex(40)}},
        )
        if first:
            clock.tick(0.1, 0.3)
            token_count(None)
            first = False
        inputs = ramp(rng, lo, hi, n)
        for i, inp in enumerate(inputs):
            final = i == n - 1
            cached = cold_cached if (i == 0 and cold_cached is not None) else (prev_input // 128) * 128
            reasoning = rng.choice([0, 64, 64, 128, 192, 256, 448, 576])
            visible = rng.randint(300, 900) if final else rng.randint(25, 420)
            last = {
                "input_tokens": inp,
                "cached_input_tokens": min(cached, inp - 100),
                "output_tokens": reasoning + visible,
                "reasoning_output_tokens": reasoning,
                "total_tokens": inp + reasoning + visible,
            }
            for k in total:
                total[k] += last[k]
            used[0] += rng.uniform(0.1, 0.5)
            used[1] += rng.uniform(0.0, 0.1)
            clock.tick(2.0, 14.0)
            summary = rng.choice(
                ["**Scanning money helpers**", "**Planning currency handling**", "**Checking call sites**"]
            )
            if reasoning:
                emit("event_msg", {"type": "agent_reasoning", "text": summary})
            answer = f"Done: {text.rstrip('.').lower()}. Tests pass." if final else ""
            if final:
                emit("event_msg", {"type": "agent_message", "message": answer})
            token_count(last)
            if reasoning:
                emit(
                    "response_item",
                    {
                        "type": "reasoning",
                        "summary": [{"type": "summary_text", "text": summary}],
                        "content": None,
                        "encrypted_content": "gAAAAAB" + ids.b62(96),
                    },
                )
            if final:
                emit(
                    "response_item",
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": answer}],
                    },
                )
            elif i % 3 == 2:
                call_id = ids.call()
                patch = f"*** Begin Patch\n*** Update File: {rng.choice(patches)}\n@@\n-  price.toFixed(2)\n+  formatMoney(price)\n*** End Patch"
                emit(
                    "response_item",
                    {
                        "type": "custom_tool_call",
                        "status": "completed",
                        "call_id": call_id,
                        "name": "apply_patch",
                        "input": patch,
                    },
                )
                out = '{"output":"Success. Updated the following files:\\nM src/lib/money.ts\\n","metadata":{"exit_code":0,"duration_seconds":0.0}}'
                emit("response_item", {"type": "custom_tool_call_output", "call_id": call_id, "output": out})
            else:
                call_id = ids.call()
                cmd, out = rng.choice(commands)
                args = json.dumps(
                    {"command": cmd, "workdir": cwd, "timeout_ms": 120000}, separators=(",", ":")
                )
                emit(
                    "response_item",
                    {"type": "function_call", "name": "shell_command", "arguments": args, "call_id": call_id},
                )
                clock.tick(0.1, 0.4)
                emit(
                    "response_item",
                    {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": f"Exit code: 0\nWall time: 0.3 seconds\nOutput:\n{out}\n",
                    },
                )
            # Codex re-emits the same token_count ~0.6 s later with a fresh timestamp.
            clock.tick(0.5, 0.75)
            token_count(last)
            prev_input = inp
        clock.tick(0.05, 0.2)
        emit("event_msg", {"type": "task_complete", "turn_id": turn_id, "last_agent_message": answer})

    name = f"rollout-{start.strftime('%Y-%m-%dT%H-%M-%S')}-{sid}.jsonl"
    path = root / "sessions" / start.strftime("%Y/%m/%d") / name
    write_jsonl(path, recs)
    print(f"codex: {sum(p[1] for p in prompts)} turns")
    return [path]


# --------------------------------------------------------------------------------------------------
# Gemini CLI
# --------------------------------------------------------------------------------------------------


def gemini_tokens(rng: random.Random, inp: int, cached: int, *, tool: int = 0, final: bool = False) -> Json:
    """`cached` is part of `input`; `thoughts` are not part of `output`; total = input+output+thoughts+tool."""
    out = rng.randint(180, 700) if final else rng.randint(20, 260)
    thoughts = rng.randint(60, 900)
    return {
        "input": inp,
        "output": out,
        "cached": cached,
        "thoughts": thoughts,
        "tool": tool,
        "total": inp + out + thoughts + tool,
    }


GEMINI_DISPLAY = {
    "read_file": "ReadFile",
    "replace": "Edit",
    "write_file": "WriteFile",
    "list_directory": "ReadFolder",
    "run_shell_command": "Shell",
}


def gemini_tool(
    ids: Ids, clock: Clock, name: str, display: str, args: Json, output: str, *, done: bool
) -> Json:
    ms = int(clock.now.timestamp() * 1000)
    call: Json = {"id": f"{name}_{ms}_0", "name": name, "args": args}
    if done:
        call["result"] = [
            {"functionResponse": {"id": call["id"], "name": name, "response": {"output": output}}}
        ]
    call.update(
        status="success" if done else "executing",
        timestamp=iso(clock.now),
        resultDisplay=output if done else "",
        displayName=display,
        description=next(iter(args.values())),
        renderOutputAsMarkdown=display != "Shell",
    )
    return call


def make_gemini_jsonl(rng: random.Random, ids: Ids, root: Path) -> list[Path]:
    """Gemini CLI >= 0.39: append-only JSONL with re-appended messages, `$set` and one `$rewindTo`."""
    project = "/home/dev/projects/docs-site"
    phash = hashlib.sha256(project.encode()).hexdigest()
    start = at("2026-11-21T09:30:41.905")
    clock = Clock(rng, start)
    sid = ids.uuid4()
    recs: list[Json] = [
        {
            "sessionId": sid,
            "projectHash": phash,
            "startTime": iso(start),
            "lastUpdated": iso(start),
            "kind": "main",
        }
    ]
    model = "gemini-2.5-pro"
    state = {"input": 9_412, "cached": 0}

    def touch() -> None:
        recs.append({"$set": {"lastUpdated": iso(clock.now)}})

    def user(text: str) -> str:
        clock.tick(20, 90)
        mid = ids.uuid4()
        recs.append({"id": mid, "timestamp": iso(clock.now), "type": "user", "content": [{"text": text}]})
        touch()
        return mid

    def gemini(
        content: str,
        tool: tuple[str, str, Json, str] | None = None,
        *,
        final: bool = False,
        tool_tokens: int = 0,
        mode: str = "",
    ) -> None:
        clock.tick(3, 12)
        thought = {"subject": "Planning the change", "description": content[:60], "timestamp": iso(clock.now)}
        clock.tick(0.5, 3)
        tokens = gemini_tokens(rng, state["input"], state["cached"], tool=tool_tokens, final=final)
        msg: Json = {
            "id": ids.uuid4(),
            "timestamp": iso(clock.now),
            "type": "gemini",
            "content": content,
            "thoughts": [thought],
        }
        if tool is not None:
            # recordToolCalls: appended while the tool runs, re-appended with its result (same tokens).
            name, display, args, output = tool
            msg.update(
                tokens=tokens,
                model=model,
                toolCalls=[gemini_tool(ids, clock, name, display, args, output, done=False)],
            )
            recs.append(json.loads(json.dumps(msg)))
            clock.tick(0.2, 2.5)
            msg["toolCalls"] = [gemini_tool(ids, clock, name, display, args, output, done=True)]
            recs.append(msg)
        elif mode == "late":
            # recordMessage before the usage arrived: tokens null, then the same id again with tokens.
            msg.update(tokens=None, model=model)
            recs.append(dict(msg))
            touch()
            recs.append(dict(msg, tokens=tokens))
        elif mode == "updated":
            # The same id re-appended with larger numbers: the last copy wins.
            partial = dict(tokens, output=tokens["output"] // 3, thoughts=tokens["thoughts"] // 2)
            partial["total"] = partial["input"] + partial["output"] + partial["thoughts"] + partial["tool"]
            recs.append(dict(msg, tokens=partial, model=model))
            recs.append(dict(msg, tokens=tokens, model=model))
        else:
            recs.append(dict(msg, tokens=tokens, model=model))
        if mode != "late":
            touch()
        state["cached"] = int(state["input"] * rng.uniform(0.72, 0.93))
        state["input"] += tokens["output"] + rng.randint(600, 4_800)

    user("Restructure the docs sidebar into Guides and Reference.")
    gemini(
        "Let me see the current layout.",
        ("list_directory", "ReadFolder", {"dir_path": "docs"}, "Listed 14 item(s)."),
    )
    gemini(
        "",
        (
            "read_file",
            "ReadFile",
            {"file_path": "docs/sidebar.json"},
            '{"items": ["intro", "install", "api"]}',
        ),
    )
    gemini(
        "Updating the sidebar.",
        ("replace", "Edit", {"file_path": "docs/sidebar.json"}, "Successfully modified file."),
    )
    gemini("The sidebar now has Guides and Reference sections.", final=True, mode="late")
    user("Add a page on API keys under Reference.")
    gemini(
        "",
        (
            "write_file",
            "WriteFile",
            {"file_path": "docs/reference/api-keys.md"},
            "Successfully created file.",
        ),
    )
    gemini("Added docs/reference/api-keys.md and linked it.", final=True, mode="updated")
    rewound = user("Also translate the sidebar labels to German.")
    gemini("", ("read_file", "ReadFile", {"file_path": "docs/i18n/de.json"}, '{"intro": "Einleitung"}'))
    gemini("I can add German labels in docs/i18n/de.json.", final=True)
    clock.tick(15, 40)
    recs.append({"$rewindTo": rewound})
    user("Instead, add a changelog page linking the release notes.")
    gemini(
        "",
        ("write_file", "WriteFile", {"file_path": "docs/changelog.md"}, "Successfully created file."),
        tool_tokens=214,
    )
    gemini("", ("replace", "Edit", {"file_path": "docs/sidebar.json"}, "Successfully modified file."))
    gemini("", ("run_shell_command", "Shell", {"command": "npm run docs:build"}, "Build finished in 3.1s"))
    gemini("Changelog page added; the docs build passes.", final=True)

    # v0.29+ names the folder by a slug, records the project in it (`.project_root`) and maps
    # path -> slug in ~/.gemini/projects.json (this folder stands in for ~/.gemini).
    slug = "docs-site"
    (root / "tmp" / slug).mkdir(parents=True, exist_ok=True)
    (root / "tmp" / slug / ".project_root").write_text(project, encoding="utf-8")
    (root / "projects.json").write_text(json.dumps({"projects": {project: slug}}, indent=2), encoding="utf-8")
    chats = root / "tmp" / slug / "chats"
    path = chats / f"session-{start.strftime('%Y-%m-%dT%H-%M')}-{sid[:8]}.jsonl"
    write_jsonl(path, recs)
    n = len({r["id"] for r in recs if r.get("type") == "gemini"})
    print(f"gemini jsonl: {n} model messages")
    return [path]


def make_gemini_json(rng: random.Random, ids: Ids, root: Path) -> list[Path]:
    """Gemini CLI <= 0.38: one ConversationRecord document, rewritten in full on every update."""
    project = "/home/dev/projects/infra-scripts"
    phash = hashlib.sha256(project.encode()).hexdigest()
    start = at("2026-11-22T16:05:09.330")
    clock = Clock(rng, start)
    sid = ids.uuid4()
    messages: list[Json] = []
    inp = 7_905

    def user(text: str) -> None:
        clock.tick(15, 60)
        messages.append({"id": ids.uuid4(), "timestamp": iso(clock.now), "type": "user", "content": text})

    def gemini(
        content: str, *, zero: bool = False, final: bool = False, tool: tuple[str, Json] | None = None
    ) -> None:
        nonlocal inp
        clock.tick(2, 6)
        thought = {
            "subject": "Considering the script",
            "description": content[:50] or "Reading first.",
            "timestamp": iso(clock.now),
        }
        clock.tick(0.5, 2)
        if zero:
            tokens = {"input": 0, "output": 0, "cached": 0, "thoughts": 0, "tool": 0, "total": 0}
        else:
            cached = int(inp * rng.uniform(0.6, 0.9)) if messages and len(messages) > 2 else 0
            tokens = gemini_tokens(rng, inp, cached, final=final)
            inp += tokens["output"] + rng.randint(900, 5_200)
        msg: Json = {
            "id": ids.uuid4(),
            "timestamp": iso(clock.now),
            "type": "gemini",
            "content": content,
            "thoughts": [thought],
            "tokens": tokens,
            "model": "gemini-2.5-pro",
        }
        if tool is not None:
            msg["toolCalls"] = [
                gemini_tool(
                    ids,
                    clock,
                    tool[0],
                    GEMINI_DISPLAY[tool[0]],
                    tool[1],
                    "ok",
                    done=True,
                )
            ]
        messages.append(msg)

    user("Make backup.sh skip unchanged files.")
    gemini("", zero=True, tool=("read_file", {"file_path": "backup.sh"}))
    gemini("", tool=("read_file", {"file_path": "lib/rsync_opts.sh"}))
    gemini(
        "Switching to rsync --checksum and adding a dry-run flag.",
        tool=("replace", {"file_path": "backup.sh"}),
    )
    gemini("backup.sh now skips unchanged files.", final=True)
    user("Add a --verbose flag.")
    gemini("", tool=("run_shell_command", {"command": "shellcheck backup.sh"}))
    gemini("Added --verbose; shellcheck is clean.", final=True)
    user("Thanks, that's all.")
    gemini("You're welcome.", final=True)

    doc = {
        "sessionId": sid,
        "projectHash": phash,
        "startTime": iso(start),
        "lastUpdated": messages[-1]["timestamp"],
        "messages": messages,
    }
    path = root / "tmp" / phash / "chats" / f"session-{start.strftime('%Y-%m-%dT%H-%M')}-{sid[:8]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Gemini CLI writes JSON.stringify(record, null, 2): two-space indent, no trailing newline.
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"gemini json: {sum(1 for m in messages if m['type'] == 'gemini')} model messages")
    return [path]


def main() -> None:
    rng = random.Random(SEED)
    ids = Ids(rng)
    for name in AGENT_DIRS:
        shutil.rmtree(HERE / name, ignore_errors=True)
    written: list[Path] = []
    written += make_webshop(rng, ids, HERE / "claude")
    written += make_api_gateway(rng, ids, HERE / "claude")
    written += make_codex(rng, ids, HERE / "codex")
    written += make_gemini_jsonl(rng, ids, HERE / "gemini")
    written += make_gemini_json(rng, ids, HERE / "gemini")
    total = 0
    for p in written:
        size = p.stat().st_size
        total += size
        print(f"{size:>8}  {p.relative_to(HERE)}")
    print(f"{total:>8}  total")


if __name__ == "__main__":
    main()
