#!/usr/bin/env python3
"""Generate a realistic, deterministic corpus of agent logs with exact expected totals.

    python bench/make_corpus.py --size-mb 260 --out bench/corpus/260mb [--seed 1]

Layout (each folder stands in for the agent's home):

    DIR/claude/projects/<cwd-slug>/<session>.jsonl
    DIR/claude/projects/<cwd-slug>/<session>/subagents/agent-<id>.jsonl
    DIR/codex/sessions/YYYY/MM/DD/rollout-<local time>-<uuid>.jsonl
    DIR/gemini/tmp/<project hash>/chats/session-<time>-<id8>.json   (one pretty-printed document)
    DIR/gemini/tmp/<project hash>/chats/session-<time>-<id8>.jsonl  (v0.39+ append-only records)
    DIR/MANIFEST.json

Bytes are split roughly 70% Claude, 22% Codex, 8% Gemini. Lines are compact JSON in the agents' own
key order (Gemini's single-document format is indented by 2, as Gemini CLI writes it). Every trap of
docs/log-formats.md is present: Claude streaming duplicates (2-5 lines per message.id + requestId,
placeholder output_tokens on all but the last), `progress` lines embedding a subagent's usage, Task
results carrying usage roll-ups, sidechain replays of a parent message, `<synthetic>` API-error
lines, compaction; Codex `token_count` events written twice, `info: null`, all-zero events after
compaction and cumulative totals that jump; Gemini all-zero messages, re-appended JSONL records
(last copy wins) and `$rewindTo`.

MANIFEST.json records, per agent, the exact totals in tokwatch's normalized convention (input
excludes cache; Claude: each message.id + requestId once with its final numbers; Codex: input =
input_tokens - cached_input_tokens; Gemini: input = input - cached + tool, output = output +
thoughts), the number of billed turns, files and bytes. Everything derives from `--seed`: the same
arguments give byte-identical files. Files are streamed out; only one Gemini document is ever held.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loglines

GENERATOR_VERSION = 1
MB = 1_000_000
SHARES = {"claude": 0.70, "codex": 0.22, "gemini": 0.08}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEX = "0123456789abcdef"
#: 2026-01-05T00:00:00Z: sessions are spread over the following ~60 days.
EPOCH_MS = 1_767_571_200_000

Json = dict[str, Any]


# --------------------------------------------------------------------------- bookkeeping
@dataclass
class Totals:
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    turns: int = 0

    def add(self, input: int, cache_read: int, cache_write: int, output: int) -> None:
        self.input += input
        self.cache_read += cache_read
        self.cache_write += cache_write
        self.output += output
        self.turns += 1


@dataclass
class AgentStats:
    totals: Totals = field(default_factory=Totals)
    files: int = 0
    bytes: int = 0
    lines: int = 0


class Sink:
    """One output file: counts bytes and lines into the agent's stats."""

    def __init__(self, path: Path, stats: AgentStats) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self.stats = stats
        stats.files += 1

    def line(self, obj: Json) -> None:
        data = orjson.dumps(obj) + b"\n"
        self.f.write(data)
        self.stats.bytes += len(data)
        self.stats.lines += 1

    def raw(self, data: bytes) -> None:
        self.f.write(data)
        self.stats.bytes += len(data)

    def close(self) -> None:
        self.f.close()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Clock:
    """A session's wall clock in integer milliseconds (deterministic, monotonic)."""

    def __init__(self, rng: random.Random, start_ms: int) -> None:
        self.rng = rng
        self.ms = start_ms

    def tick(self, lo: int = 1, hi: int = 900) -> str:
        self.ms += self.rng.randint(lo, hi)
        return iso(self.ms)

    def now(self) -> str:
        return iso(self.ms)


# --------------------------------------------------------------------------- text
_WORDS = [
    "self",
    "return",
    "def",
    "class",
    "import",
    "from",
    "if",
    "else",
    "for",
    "while",
    "try",
    "except",
    "with",
    "as",
    "None",
    "True",
    "False",
    "async",
    "await",
    "yield",
    "lambda",
    "data",
    "value",
    "result",
    "items",
    "config",
    "path",
    "file",
    "line",
    "count",
    "index",
    "error",
    "message",
    "response",
    "request",
    "session",
    "token",
    "model",
    "cache",
    "input",
    "output",
    "user",
    "tool",
    "agent",
    "stream",
    "buffer",
    "offset",
    "cursor",
    "event",
    "watch",
    "parse",
    "json",
    "load",
    "dump",
    "write",
    "read",
    "open",
    "close",
    "total",
    "usage",
    "cost",
    "price",
    "window",
    "context",
    "turn",
    "store",
    "engine",
    "render",
    "table",
    "widget",
    "update",
    "refresh",
    "backfill",
    "follow",
    "tail",
    "append",
    "status",
    "ready",
    "skip",
    "merge",
    "apply",
    "snapshot",
    "export",
    "format",
    "column",
    "row",
    "header",
    "width",
    "height",
]
_EXTS = ("py", "ts", "tsx", "rs", "go", "md", "json", "toml", "yaml", "css", "sql", "sh")
_DIRS = ("src", "lib", "app", "tests", "docs", "components", "internal", "pkg", "scripts", "api")


class Text:
    """A pool of code-, log- and prose-like text to slice realistic tool outputs from."""

    def __init__(self, rng: random.Random, size: int = 3 * MB) -> None:
        self.rng = rng
        parts: list[str] = []
        n = 0
        w = _WORDS
        r = rng.random
        ri = rng.randrange
        while n < size:
            k = r()
            ind = "    " * ri(4)
            if k < 0.35:
                s = f'{ind}{w[ri(len(w))]}_{w[ri(len(w))]} = {w[ri(len(w))]}({w[ri(len(w))]}, "{w[ri(len(w))]}")'
            elif k < 0.5:
                s = f"{ind}def {w[ri(len(w))]}_{w[ri(len(w))]}(self, {w[ri(len(w))]}: int) -> str:"
            elif k < 0.6:
                s = f"{ind}# {' '.join(w[ri(len(w))] for _ in range(ri(3, 12)))}"
            elif k < 0.7:
                s = (
                    f"2026-01-{ri(1, 29):02d} {ri(24):02d}:{ri(60):02d}:{ri(60):02d},{ri(1000):03d} "
                    f"{('INFO', 'DEBUG', 'WARNING', 'ERROR')[ri(4)]} {w[ri(len(w))]}: "
                    f"{' '.join(w[ri(len(w))] for _ in range(ri(4, 14)))}"
                )
            elif k < 0.78:
                s = f"{_DIRS[ri(len(_DIRS))]}/{w[ri(len(w))]}/{w[ri(len(w))]}_{w[ri(len(w))]}.{_EXTS[ri(len(_EXTS))]}:{ri(1, 900)}:{ri(1, 80)}: {w[ri(len(w))]}"
            elif k < 0.85:
                s = f'{ind}"{w[ri(len(w))]}": {{"{w[ri(len(w))]}": [{ri(1000)}, {ri(1000)}], "path": "C:\\\\{w[ri(len(w))]}\\\\{w[ri(len(w))]}"}},'
            elif k < 0.9:
                s = f"{ind}\tif {w[ri(len(w))]} != {w[ri(len(w))]}: raise ValueError(f'bad {{x!r}} — {w[ri(len(w))]} ✓')"
            elif k < 0.93:
                s = ""
            else:
                s = " ".join(w[ri(len(w))] for _ in range(ri(8, 30))).capitalize() + "."
            parts.append(s)
            n += len(s) + 1
        self.pool = "\n".join(parts)
        self.b64 = base64.b64encode(rng.randbytes(400_000)).decode()

    def chunk(self, n: int) -> str:
        pool = self.pool
        if n >= len(pool):
            return (pool * (n // len(pool) + 1))[:n]
        start = self.rng.randrange(len(pool) - n)
        return pool[start : start + n]

    def sentence(self, lo: int = 6, hi: int = 30) -> str:
        w = _WORDS
        ri = self.rng.randrange
        return " ".join(w[ri(len(w))] for _ in range(ri(lo, hi))).capitalize() + "."

    def prose(self, n: int) -> str:
        out: list[str] = []
        size = 0
        while size < n:
            s = self.sentence()
            out.append(s)
            size += len(s) + 1
        return " ".join(out)[:n]

    def blob(self, n: int) -> str:
        """Base64 like Codex's encrypted reasoning."""
        pool = self.b64
        n = min(n, len(pool) - 1)
        start = self.rng.randrange(len(pool) - n)
        return "gAAAAAB" + pool[start : start + n]

    def path(self, root: str) -> str:
        ri = self.rng.randrange
        w = _WORDS
        return f"{root}/{_DIRS[ri(len(_DIRS))]}/{w[ri(len(w))]}_{w[ri(len(w))]}.{_EXTS[ri(len(_EXTS))]}"


# --------------------------------------------------------------------------- generator
class Gen:
    def __init__(self, out: Path, size_mb: float, seed: int) -> None:
        self.out = out
        self.seed = seed
        self.size_mb = size_mb
        self.rng = random.Random(seed)
        self.text = Text(random.Random(seed * 7919 + 1))
        self.stats = {a: AgentStats() for a in SHARES}
        self.targets = {a: int(size_mb * MB * share) for a, share in SHARES.items()}

    # ids ------------------------------------------------------------------
    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, k: int) -> str:
        return "".join(self.rng.choices(BASE62, k=k))

    def hexs(self, k: int) -> str:
        return "".join(self.rng.choices(HEX, k=k))

    def uuid7(self, ms: int) -> str:
        h = f"{ms:012x}" + self.hexs(20)
        return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{'89ab'[self.rng.randrange(4)]}{h[17:20]}-{h[20:32]}"

    def size(self, lo: int, hi: int) -> int:
        """Log-uniform integer in [lo, hi]."""
        return int(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def tool_output_size(self, big_p: float = 0.003, mid_p: float = 0.05) -> int:
        """Most tool outputs are small; some are tens of KB; a few are 100 KB-2 MB."""
        r = self.rng.random()
        if r < big_p:
            return self.size(100_000, 2_000_000)
        if r < big_p + mid_p:
            return self.size(8_000, 50_000)
        return self.size(40, 5_000)

    def done(self, agent: str) -> bool:
        return self.stats[agent].bytes >= self.targets[agent]

    def start_ms(self) -> int:
        return EPOCH_MS + self.rng.randrange(60 * 86_400_000)

    # run ------------------------------------------------------------------
    def run(self) -> Json:
        t0 = time.perf_counter()
        projects = [ClaudeProject(self) for _ in range(max(3, int(self.size_mb / 6)))]
        while not self.done("claude"):
            ClaudeSession(self, self.rng.choice(projects)).run()
        cwds = [p.cwd for p in projects]
        while not self.done("codex"):
            CodexSession(self, self.rng.choice(cwds)).run()
        hashes = [hashlib.sha256(c.encode()).hexdigest() for c in cwds[: max(2, len(cwds) // 2)]]
        while not self.done("gemini"):
            GeminiSession(self, self.rng.choice(hashes)).run()
        manifest: Json = {
            "generator": "bench/make_corpus.py",
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "size_mb": self.size_mb,
            "convention": (
                "input excludes cache; claude: each message.id+requestId once with its final numbers; "
                "codex: input = input_tokens - cached_input_tokens; gemini: input = input - cached + "
                "tool, output = output + thoughts"
            ),
            "agents": {
                a: {**asdict(s.totals), "files": s.files, "bytes": s.bytes, "lines": s.lines}
                for a, s in self.stats.items()
            },
        }
        total = Totals()
        for s in self.stats.values():
            for k in ("input", "cache_read", "cache_write", "output", "turns"):
                setattr(total, k, getattr(total, k) + getattr(s.totals, k))
        manifest["all"] = {
            **asdict(total),
            "files": sum(s.files for s in self.stats.values()),
            "bytes": sum(s.bytes for s in self.stats.values()),
        }
        manifest["generate_seconds"] = round(time.perf_counter() - t0, 2)
        return manifest


# --------------------------------------------------------------------------- Claude
CLAUDE_MODELS = (
    "claude-opus-4-6",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-6",
)
CLAUDE_SUB_MODELS = ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-6")
CLAUDE_VERSIONS = ("2.0.76", "2.1.14", "2.1.39", "2.1.59", "2.1.112")
TOOLS = ("Bash", "Read", "Read", "Edit", "Grep", "Glob", "Write", "Bash", "TodoWrite", "WebFetch")
SLUG_WORDS = ("radiant", "floating", "music", "quiet", "amber", "lucky", "swift", "cosmic", "gentle", "river")


class ClaudeProject:
    def __init__(self, g: Gen) -> None:
        name = "-".join(g.rng.sample(_WORDS, 2))
        base = g.rng.choice(("/home/dev/projects", "/Users/sam/code", "/home/dev/work/worktrees"))
        self.cwd = f"{base}/{name}"
        self.dir = g.out / "claude" / "projects" / self.cwd.replace("/", "-").replace(".", "-")
        self.branch = g.rng.choice(("main", "main", "dev", f"feat/{name}"))


@dataclass
class Usage:
    input: int
    cache_read: int
    cache_write: int
    output: int
    one_hour: bool

    def placeholder(self, out: int) -> Json:
        one_h = self.cache_write if self.one_hour else 0
        return loglines.claude_usage(self.input, self.cache_read, self.cache_write, out, cache_write_1h=one_h)

    def final(self) -> Json:
        one_h = self.cache_write if self.one_hour else 0
        return loglines.claude_usage_final(
            self.input, self.cache_read, self.cache_write, self.output, cache_write_1h=one_h
        )


class Chain:
    """One Claude transcript file (main chain or a subagent) and its prompt-cache state."""

    def __init__(
        self, sess: ClaudeSession, path: Path, model: str, agent_id: str | None, base_prompt: int
    ) -> None:
        self.s = sess
        self.sink = Sink(path, sess.g.stats["claude"])
        self.model = model
        self.agent_id = agent_id
        self.sidechain = agent_id is not None
        self.parent: str | None = None
        self.prompt = base_prompt  # full prompt of the next request, in tokens
        self.cached = 0  # prefix already in the cache
        self.system = base_prompt
        self.one_hour = sess.g.rng.random() < 0.3
        self.last_line: Json | None = None  # the last assistant line written (for progress mirrors)

    def common(self) -> Json:
        s = self.s
        return loglines.claude_header(
            session_id=s.sid,
            cwd=s.project.cwd,
            parent_uuid=self.parent,
            sidechain=self.sidechain,
            version=s.version,
            git_branch=s.project.branch,
            agent_id=self.agent_id or None,
            slug=s.slug or None,
        )

    def emit(self, d: Json) -> None:
        self.sink.line(d)
        kind = d.get("type")
        u = d.get("uuid")
        if isinstance(u, str) and kind != "progress":
            self.parent = u
        if kind == "assistant":
            self.last_line = d

    def next_usage(self, model: str) -> Usage:
        rng = self.s.g.rng
        if rng.random() < 0.04 or self.cached == 0:  # cache miss: only the shared system prompt hits
            cache_read = self.system if self.cached else 0
        else:
            cache_read = min(self.cached, self.prompt)
        inp = rng.choice((1, 1, 3, 3, 3, 5, 6, 8, 10)) if rng.random() > 0.03 else rng.randint(50, 6000)
        cache_write = max(0, self.prompt - cache_read - inp)
        out = max(1, min(32_000, int(rng.lognormvariate(5.2, 1.15))))
        self.cached = cache_read + cache_write
        self.prompt += out + rng.randint(0, 60)
        return Usage(inp, cache_read, cache_write, out, self.one_hour)


class ClaudeSession:
    def __init__(self, g: Gen, project: ClaudeProject) -> None:
        self.g = g
        rng = g.rng
        self.project = project
        self.sid = g.uuid4()
        self.version = rng.choice(CLAUDE_VERSIONS)
        self.slug = ""
        self.clock = Clock(rng, g.start_ms())
        self.hooks = rng.random() < 0.5
        self.suggestions = self.version >= "2.1"
        self.n_requests = int(50 * 40 ** (rng.random() ** 5))  # 50..2000 requests, long tail
        self.main = Chain(
            self,
            project.dir / f"{self.sid}.jsonl",
            rng.choice(CLAUDE_MODELS),
            None,
            rng.randint(11_000, 24_000),
        )
        self.sub_dir = project.dir / self.sid / "subagents"
        self.last_main_final: Json | None = None

    # lines ---------------------------------------------------------------
    def assistant(
        self, c: Chain, model: str, mid: str, rid: str, content: Json, usage: Json, stop: str | None
    ) -> Json:
        return loglines.claude_assistant(
            c.common(),
            model=model,
            message_id=mid,
            request_id=rid,
            content=[content],
            stop_reason=stop,
            usage=usage,
            uuid=self.g.uuid4(),  # (before the clock: the same random draws, in the same order)
            timestamp=self.clock.tick(300, 4000),
        )

    def user_prompt(self, c: Chain, text: str, first: bool) -> None:
        d = c.common()
        d["type"] = "user"
        d["message"] = {"role": "user", "content": text}
        d["uuid"] = self.g.uuid4()
        d["timestamp"] = self.clock.tick(5_000, 400_000)
        if first:
            d["thinkingMetadata"] = {"maxThinkingTokens": 31999}
            d["todos"] = []
            d["permissionMode"] = self.g.rng.choice(("default", "acceptEdits", "bypassPermissions"))
        c.emit(d)

    def snapshot(self, c: Chain, mid: str) -> None:
        g = self.g
        backups: Json = {}
        for _ in range(g.rng.randrange(0, 12)):
            backups[g.text.path(self.project.cwd)] = {
                "backupFileName": f"{g.hexs(16)}@v{g.rng.randint(1, 9)}",
                "version": g.rng.randint(1, 9),
                "backupTime": self.clock.now(),
            }
        c.sink.line(
            {
                "type": "file-history-snapshot",
                "messageId": mid,
                "snapshot": {"messageId": mid, "trackedFileBackups": backups, "timestamp": self.clock.now()},
                "isSnapshotUpdate": g.rng.random() < 0.3,
            }
        )

    def hook(self, c: Chain, event: str, tool: str, tid: str) -> None:
        d = c.common()
        d["type"] = "progress"
        d["data"] = {
            "type": "hook_progress",
            "hookEvent": event,
            "hookName": f"{event}:{tool}",
            "command": f"$CLAUDE_PROJECT_DIR/.claude/hooks/{self.g.rng.choice(_WORDS)}.sh",
        }
        d["parentToolUseID"] = tid
        d["toolUseID"] = tid
        d["timestamp"] = self.clock.tick(1, 30)
        d["uuid"] = self.g.uuid4()
        c.emit(d)

    def system_line(self, c: Chain, extra: Json) -> None:
        d = c.common()
        d["type"] = "system"
        d.update(extra)
        d["timestamp"] = self.clock.tick(1, 50)
        d["uuid"] = self.g.uuid4()
        c.emit(d)

    # tools ---------------------------------------------------------------
    def tool_use(self, name: str, tid: str, sidechain: bool) -> tuple[Json, int]:
        """The tool_use block and the size its result will have."""
        g = self.g
        t = g.text
        cwd = self.project.cwd
        size = g.tool_output_size(big_p=0.001) if sidechain else g.tool_output_size()
        if name == "Bash":
            inp: Json = {
                "command": t.chunk(g.rng.randint(10, 160)).replace("\n", " && "),
                "description": t.sentence(3, 8),
            }
        elif name == "Read":
            inp = {"file_path": t.path(cwd)}
        elif name == "Edit":
            inp = {
                "file_path": t.path(cwd),
                "old_string": t.chunk(g.size(40, 3000)),
                "new_string": t.chunk(g.size(40, 3000)),
            }
        elif name == "Write":
            inp = {"file_path": t.path(cwd), "content": t.chunk(g.size(200, 20_000))}
            size = 120
        elif name == "Grep":
            inp = {"pattern": g.rng.choice(_WORDS), "path": cwd, "output_mode": "content", "-n": True}
        elif name == "Glob":
            inp = {"pattern": f"**/*.{g.rng.choice(_EXTS)}"}
            size = min(size, 6000)
        elif name == "TodoWrite":
            inp = {
                "todos": [
                    {"content": t.sentence(3, 10), "status": "pending", "activeForm": t.sentence(2, 6)}
                    for _ in range(g.rng.randint(1, 8))
                ]
            }
            size = 150
        elif name == "WebFetch":
            inp = {"url": f"https://docs.example.com/{g.rng.choice(_WORDS)}", "prompt": t.sentence()}
        else:  # Task
            inp = {
                "description": t.sentence(2, 5),
                "prompt": t.prose(g.size(200, 3000)),
                "subagent_type": g.rng.choice(("general-purpose", "Explore", "Plan")),
            }
        return {"type": "tool_use", "id": tid, "name": name, "input": inp, "caller": {"type": "direct"}}, size

    def tool_result(self, c: Chain, block: Json, size: int, source_uuid: str) -> int:
        """Write the user line carrying a tool's result; return its size in tokens."""
        g = self.g
        name = block["name"]
        tid = block["id"]
        inp = block["input"]
        text = g.text.chunk(size)
        is_error = g.rng.random() < 0.04
        tur: Any
        if name == "Read":
            nl = text.count("\n") + 1
            tur = {
                "type": "text",
                "file": {
                    "filePath": inp["file_path"],
                    "content": text,
                    "numLines": nl,
                    "startLine": 1,
                    "totalLines": nl,
                },
            }
        elif name == "Bash":
            tur = {
                "stdout": text,
                "stderr": "",
                "interrupted": False,
                "isImage": False,
                "noOutputExpected": False,
            }
        elif name == "Edit":
            orig = g.text.chunk(g.size(500, 40_000))
            tur = {
                "filePath": inp["file_path"],
                "oldString": inp["old_string"],
                "newString": inp["new_string"],
                "originalFile": orig,
                "structuredPatch": [
                    {
                        "oldStart": 12,
                        "oldLines": 4,
                        "newStart": 12,
                        "newLines": 6,
                        "lines": [f"-{x}" for x in inp["old_string"].split("\n")[:30]]
                        + [f"+{x}" for x in inp["new_string"].split("\n")[:30]],
                    }
                ],
                "userModified": False,
                "replaceAll": False,
            }
            text = (
                f"The file {inp['file_path']} has been updated. Here's the result of running `cat -n`:\n"
                + text[:4000]
            )
        elif name == "Write":
            tur = {
                "type": "create",
                "filePath": inp["file_path"],
                "content": inp["content"],
                "structuredPatch": [],
                "originalFile": None,
            }
            text = f"File created successfully at: {inp['file_path']}"
        elif name == "Grep" or name == "Glob":
            tur = {
                "mode": "content",
                "numFiles": g.rng.randint(1, 40),
                "filenames": [],
                "content": text,
                "numLines": text.count("\n") + 1,
            }
        else:
            tur = text[:200]
        if is_error:
            text = "<tool_use_error>" + text[:300] + "</tool_use_error>"
            tur = "Error: " + text[:120]
        d = c.common()
        d["type"] = "user"
        d["message"] = {
            "role": "user",
            "content": [{"tool_use_id": tid, "type": "tool_result", "content": text, "is_error": is_error}],
        }
        d["uuid"] = g.uuid4()
        d["timestamp"] = self.clock.tick(20, 3000)
        d["toolUseResult"] = tur
        d["sourceToolAssistantUUID"] = source_uuid
        c.emit(d)
        return min(len(text) // 4, 25_000)

    # requests ------------------------------------------------------------
    def request(self, c: Chain, final: bool, allow_task: bool) -> None:
        """One billed API request: 2-5 streamed lines sharing message.id + requestId."""
        g = self.g
        rng = g.rng
        model = c.model if rng.random() > 0.05 else "claude-haiku-4-5-20251001"
        u = c.next_usage(model)
        c.s.g.stats["claude"].totals.add(u.input, u.cache_read, u.cache_write, u.output)
        mid = "msg_01" + g.b62(22)
        rid = "req_011C" + g.b62(18)
        plan: list[str] = []
        if rng.random() < 0.6:
            plan.append("thinking")
        if final:
            plan.append("text")
        else:
            if rng.random() < 0.5:
                plan.append("text")
            plan.extend("tool_use" for _ in range(rng.choice((1, 1, 1, 2, 2, 3))))
        while len(plan) < 2:
            plan.insert(0, "text" if plan and plan[0] == "thinking" else "thinking")
        plan = plan[:5]
        pending: list[tuple[Json, int, str]] = []
        new_tokens = 0
        for i, kind in enumerate(plan):
            last = i == len(plan) - 1
            if kind == "thinking":
                block: Json = {
                    "type": "thinking",
                    "thinking": g.text.prose(g.size(40, 2000)),
                    "signature": g.text.blob(g.size(200, 1200)),
                }
            elif kind == "text":
                block = {"type": "text", "text": g.text.prose(g.size(20, 2500) if final else g.size(20, 400))}
            else:
                name = "Task" if allow_task and rng.random() < 0.15 else rng.choice(TOOLS)
                block, size = self.tool_use(name, "toolu_01" + g.b62(22), c.sidechain)
            ph = min(u.output, rng.choice((1, 2, 3, 4, 8, 9, 10, 11, 12)))
            usage = u.final() if last else u.placeholder(ph)
            stop = ("end_turn" if final else "tool_use") if last and rng.random() < 0.3 else None
            line = self.assistant(c, model, mid, rid, block, usage, stop)
            c.emit(line)
            if c is self.main and last:
                self.last_main_final = line
            if kind == "tool_use":
                if self.hooks:
                    for _ in range(rng.randint(1, 4)):
                        self.hook(c, "PreToolUse", block["name"], block["id"])
                item = (block, size, line["uuid"])
                if block["name"] == "Task" or rng.random() < 0.6:
                    new_tokens += self.finish_tool(c, *item)
                else:
                    pending.append(item)
        for item in pending:
            new_tokens += self.finish_tool(c, *item)
        c.prompt += new_tokens

    def finish_tool(self, c: Chain, block: Json, size: int, src: str) -> int:
        if block["name"] == "Task":
            return self.subagent(c, block, src)
        if self.hooks:
            for _ in range(self.g.rng.randint(1, 2)):
                self.hook(c, "PostToolUse", block["name"], block["id"])
        return self.tool_result(c, block, size, src)

    def subagent(self, parent: Chain, block: Json, src: str) -> int:
        """A Task: the subagent's own file (counted) mirrored as progress lines (not counted)."""
        g = self.g
        rng = g.rng
        aid = "a" + g.hexs(rng.choice((6, 16)))
        c = Chain(
            self,
            self.sub_dir / f"agent-{aid}.jsonl",
            rng.choice(CLAUDE_SUB_MODELS),
            aid,
            rng.randint(8_000, 16_000),
        )
        c.parent = None
        prompt = block["input"]["prompt"]
        if self.last_main_final is not None and rng.random() < 0.1:
            # A replay of the parent's last message as a sidechain copy: same id, counted once.
            replay = dict(self.last_main_final)
            replay["isSidechain"] = True
            replay["agentId"] = aid
            replay["uuid"] = g.uuid4()
            c.emit(replay)
        self.user_prompt(c, prompt, first=False)
        before = g.stats["claude"].totals
        before_tokens = (before.input, before.cache_read, before.cache_write, before.output)
        n = int(3 * 10 ** (rng.random() ** 2))  # 3..30 requests
        tool_uses = 0
        for i in range(n):
            self.request(c, final=i == n - 1, allow_task=False)
            tool_uses += 1
            if rng.random() < 0.7 and c.parent is not None:
                self.agent_progress(parent, c, block["id"], aid, prompt)
        c.sink.close()
        after = g.stats["claude"].totals
        used = [
            a - b
            for a, b in zip(
                (after.input, after.cache_read, after.cache_write, after.output), before_tokens, strict=True
            )
        ]
        text = g.text.prose(g.size(300, 12_000))
        d = parent.common()
        d["type"] = "user"
        d["message"] = {
            "role": "user",
            "content": [
                {
                    "tool_use_id": block["id"],
                    "type": "tool_result",
                    "content": [{"type": "text", "text": text}],
                }
            ],
        }
        d["uuid"] = g.uuid4()
        d["timestamp"] = self.clock.tick(100, 5000)
        d["toolUseResult"] = {
            "status": "completed",
            "prompt": prompt,
            "agentId": aid,
            "content": [{"type": "text", "text": text}],
            "totalDurationMs": rng.randint(5_000, 600_000),
            "totalTokens": sum(used),
            "totalToolUseCount": tool_uses,
            "usage": {
                "input_tokens": used[0],
                "cache_creation_input_tokens": used[2],
                "cache_read_input_tokens": used[1],
                "output_tokens": used[3],
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard",
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": used[2]},
                "inference_geo": "",
                "iterations": [],
            },
        }
        d["sourceToolAssistantUUID"] = src
        parent.emit(d)
        return len(text) // 4

    def agent_progress(self, parent: Chain, c: Chain, task_id: str, aid: str, prompt: str) -> None:
        """The parent's `progress` copy of the subagent's last assistant line (nested usage)."""
        last = c.last_line
        if last is None:
            return
        d = parent.common()
        d["type"] = "progress"
        msg = dict(last["message"])
        msg["context_management"] = None
        d["data"] = {
            "message": {
                "type": "assistant",
                "timestamp": last["timestamp"],
                "message": msg,
                "requestId": last["requestId"],
                "uuid": last["uuid"],
            },
            "normalizedMessages": [],
            "type": "agent_progress",
            "prompt": prompt,
            "agentId": aid,
        }
        d["toolUseID"] = "agent_" + last["message"]["id"]
        d["parentToolUseID"] = task_id
        d["uuid"] = self.g.uuid4()
        d["timestamp"] = last["timestamp"]
        parent.emit(d)

    def compaction(self) -> None:
        """Auto-compaction: a sidechain summary request (billed), then the boundary and summary."""
        g = self.g
        rng = g.rng
        m = self.main
        aid = "acompact-" + g.hexs(6)
        c = Chain(self, self.sub_dir / f"agent-{aid}.jsonl", m.model, aid, m.prompt)
        for _ in range(rng.randint(1, 3)):
            d = c.common()
            d.update(
                {
                    "type": "user",
                    "message": {"role": "user", "content": g.text.prose(g.size(200, 2000))},
                    "isMeta": True,
                    "uuid": g.uuid4(),
                    "timestamp": self.clock.tick(),
                }
            )
            c.emit(d)
        c.cached = m.cached
        u = c.next_usage(m.model)
        u.output = rng.randint(1500, 9000)
        g.stats["claude"].totals.add(u.input, u.cache_read, u.cache_write, u.output)
        summary = g.text.prose(u.output * 4)
        line = self.assistant(
            c,
            m.model,
            "msg_01" + g.b62(22),
            "req_011C" + g.b62(18),
            {"type": "text", "text": summary},
            u.final(),
            None,
        )
        c.emit(line)
        c.sink.close()
        pre = m.prompt
        d = m.common()
        d["parentUuid"] = None
        d["logicalParentUuid"] = m.parent
        d.update(
            {
                "type": "system",
                "subtype": "compact_boundary",
                "content": "Conversation compacted",
                "isMeta": False,
                "timestamp": self.clock.tick(),
                "uuid": g.uuid4(),
                "level": "info",
                "compactMetadata": {"trigger": "auto", "preTokens": pre},
            }
        )
        m.emit(d)
        d = m.common()
        d.update(
            {
                "type": "user",
                "message": {"role": "user", "content": summary},
                "isVisibleInTranscriptOnly": True,
                "isCompactSummary": True,
                "uuid": g.uuid4(),
                "timestamp": self.clock.now(),
            }
        )
        m.emit(d)
        m.prompt = rng.randint(20_000, 40_000)
        m.cached = m.system

    def prompt_suggestion(self) -> None:
        """Newer Claude Code: a tiny sidechain file per suggested next prompt (one billed request)."""
        g = self.g
        m = self.main
        aid = "aprompt_suggestion-" + g.hexs(6)
        c = Chain(self, self.sub_dir / f"agent-{aid}.jsonl", m.model, aid, m.prompt)
        c.parent = m.parent
        d = c.common()
        d.update(
            {
                "type": "user",
                "message": {"role": "user", "content": g.text.prose(g.size(300, 1500))},
                "isMeta": True,
                "uuid": g.uuid4(),
                "timestamp": self.clock.tick(),
            }
        )
        c.emit(d)
        c.cached = m.cached
        u = c.next_usage(m.model)
        u.output = g.rng.randint(5, 40)
        g.stats["claude"].totals.add(u.input, u.cache_read, u.cache_write, u.output)
        line = self.assistant(
            c,
            m.model,
            "msg_01" + g.b62(22),
            "req_011C" + g.b62(18),
            {"type": "text", "text": g.text.sentence(3, 12)},
            u.final(),
            "end_turn",
        )
        c.emit(line)
        c.sink.close()

    def api_error(self) -> None:
        g = self.g
        m = self.main
        d = {
            "parentUuid": m.parent,
            "isSidechain": False,
            "type": "assistant",
            "uuid": g.uuid4(),
            "timestamp": self.clock.tick(),
            "message": {
                "diagnostics": None,
                "id": g.uuid4(),
                "container": None,
                "model": "<synthetic>",
                "role": "assistant",
                "stop_details": None,
                "stop_reason": "stop_sequence",
                "stop_sequence": "",
                "type": "message",
                "usage": {
                    "output_tokens_details": None,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                    "service_tier": None,
                    "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                    "inference_geo": None,
                    "iterations": None,
                    "speed": None,
                },
                "content": [{"type": "text", "text": "API Error: 529 Overloaded"}],
                "context_management": None,
            },
            "requestId": "req_011C" + g.b62(18),
            "error": "server_error",
            "isApiErrorMessage": True,
            "apiErrorStatus": 529,
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self.project.cwd,
            "sessionId": self.sid,
            "version": self.version,
            "gitBranch": self.project.branch,
        }
        m.emit(d)

    def run(self) -> None:
        g = self.g
        rng = g.rng
        m = self.main
        if rng.random() < 0.15:
            m.sink.line({"type": "summary", "summary": g.text.sentence(3, 9), "leafUuid": g.uuid4()})
        done = 0
        first = True
        while done < self.n_requests and not g.done("claude"):
            pmid = g.uuid4()
            self.snapshot(m, pmid)
            if rng.random() < 0.05:
                m.sink.line(
                    {
                        "type": "queue-operation",
                        "operation": "enqueue",
                        "timestamp": self.clock.now(),
                        "sessionId": self.sid,
                        "content": g.text.sentence(),
                    }
                )
            self.user_prompt(m, g.text.prose(g.size(20, 3000)), first)
            if first and rng.random() < 0.8:
                self.slug = "-".join(rng.sample(SLUG_WORDS, 3))
            first = False
            m.prompt += rng.randint(10, 800)
            n = min(rng.randint(1, 8), self.n_requests - done)
            for i in range(n):
                self.request(m, final=i == n - 1, allow_task=True)
                done += 1
                if m.prompt > rng.randint(150_000, 185_000):
                    self.compaction()
            if rng.random() < 0.01:
                self.api_error()
            if self.suggestions and rng.random() < 0.9:
                self.prompt_suggestion()
            if self.hooks:
                self.system_line(
                    m,
                    {
                        "subtype": "stop_hook_summary",
                        "hookCount": 2,
                        "hookInfos": [{"command": "notify.sh"}, {"command": "lint.sh"}],
                        "hookErrors": [],
                        "preventedContinuation": False,
                        "stopReason": "",
                        "hasOutput": True,
                        "level": "suggestion",
                        "toolUseID": g.uuid4(),
                    },
                )
            self.system_line(
                m, {"subtype": "turn_duration", "durationMs": rng.randint(2000, 900_000), "isMeta": False}
            )
        m.sink.close()


# --------------------------------------------------------------------------- Codex
CODEX_MODELS = ("gpt-5.1-codex-max", "gpt-5.3-codex", "gpt-5-codex", "gpt-5.2")
CODEX_VERSIONS = ("0.47.0", "0.60.1", "0.77.0", "0.104.0")


class CodexSession:
    def __init__(self, g: Gen, cwd: str) -> None:
        self.g = g
        rng = g.rng
        self.cwd = cwd
        start = g.start_ms()
        self.clock = Clock(rng, start)
        self.sid = g.uuid7(start)
        local = datetime.fromtimestamp(start / 1000, UTC)
        day = g.out / "codex" / "sessions" / local.strftime("%Y/%m/%d")
        self.sink = Sink(
            day / f"rollout-{local.strftime('%Y-%m-%dT%H-%M-%S')}-{self.sid}.jsonl", g.stats["codex"]
        )
        self.version = rng.choice(CODEX_VERSIONS)
        self.new = self.version >= "0.77"
        self.model = rng.choice(CODEX_MODELS)
        self.window = 258_400 if self.new else 272_000
        self.n_requests = int(20 * 40 ** (rng.random() ** 4))  # 20..800 requests
        self.total = [0, 0, 0, 0, 0]  # input, cached, output, reasoning, total
        self.prompt = rng.randint(8_000, 15_000)
        self.cached = 0
        self.turn_id = ""

    def line(self, kind: str, payload: Json, ts: str | None = None) -> None:
        self.sink.line({"timestamp": ts or self.clock.tick(1, 400), "type": kind, "payload": payload})

    def rate_limits(self) -> Json:
        rng = self.g.rng
        rl: Json = {
            "primary": {
                "used_percent": float(rng.randint(0, 90)),
                "window_minutes": 300,
                "resets_at": self.clock.ms // 1000 + 9000,
            },
            "secondary": {
                "used_percent": float(rng.randint(0, 90)),
                "window_minutes": 10080,
                "resets_at": self.clock.ms // 1000 + 400_000,
            },
            "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
        }
        if self.new:
            rl = {"limit_id": "codex", "limit_name": None, **rl, "plan_type": None}
        return rl

    def token_count(self, last: list[int]) -> None:
        keys = (
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_output_tokens",
            "total_tokens",
        )
        info = {
            "total_token_usage": dict(zip(keys, self.total, strict=True)),
            "last_token_usage": dict(zip(keys, last, strict=True)),
            "model_context_window": self.window,
        }
        self.line("event_msg", {"type": "token_count", "info": info, "rate_limits": self.rate_limits()})
        self.pending_dup = info

    def dup(self) -> None:
        """The re-emit ~0.6-1 s later: same info, new timestamp."""
        self.line(
            "event_msg",
            {"type": "token_count", "info": self.pending_dup, "rate_limits": self.rate_limits()},
            ts=self.clock.tick(500, 1000),
        )

    def turn_context(self) -> None:
        g = self.g
        p: Json
        if self.new:
            p = {
                "turn_id": self.turn_id,
                "cwd": self.cwd,
                "approval_policy": "on-request",
                "sandbox_policy": {
                    "type": "workspace-write",
                    "writable_roots": [self.cwd],
                    "network_access": False,
                    "exclude_tmpdir_env_var": False,
                    "exclude_slash_tmp": False,
                },
                "model": self.model,
                "personality": "pragmatic",
                "collaboration_mode": {
                    "mode": "default",
                    "settings": {
                        "model": self.model,
                        "reasoning_effort": "medium",
                        "developer_instructions": self.dev,
                    },
                },
                "effort": "medium",
                "summary": "auto",
                "user_instructions": self.user_instr,
                "developer_instructions": self.dev,
                "truncation_policy": {"mode": "tokens", "limit": 10000},
            }
        else:
            p = {
                "cwd": self.cwd,
                "approval_policy": "on-request",
                "sandbox_policy": {
                    "type": "workspace-write",
                    "network_access": False,
                    "exclude_tmpdir_env_var": False,
                    "exclude_slash_tmp": False,
                },
                "model": self.model,
                "effort": g.rng.choice(("low", "medium", "high")),
                "summary": "auto",
            }
        self.line("turn_context", p)

    def request(self, final: bool) -> None:
        g = self.g
        rng = g.rng
        t = g.text
        # usage of this request
        inp = self.prompt
        cached = 0 if self.cached == 0 or rng.random() < 0.03 else min(inp, self.cached // 128 * 128)
        out = max(1, min(30_000, int(rng.lognormvariate(5.4, 1.1))))
        reasoning = int(out * rng.uniform(0.0, 0.8))
        last = [inp, cached, out, reasoning, inp + out]
        self.total = [a + b for a, b in zip(self.total, last, strict=True)]
        g.stats["codex"].totals.add(inp - cached, cached, 0, out)
        self.cached = inp
        self.prompt += out
        title = f"**{t.sentence(2, 6)}**"
        self.line("event_msg", {"type": "agent_reasoning", "text": title}, ts=self.clock.tick(500, 30_000))
        self.token_count(last)
        self.line(
            "response_item",
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": title}],
                "content": None,
                "encrypted_content": t.blob(g.size(300, 12_000)),
            },
        )
        if final:
            msg = t.prose(g.size(40, 3000))
            self.line(
                "response_item",
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": msg}]},
            )
            self.line("event_msg", {"type": "agent_message", "message": msg})
            self.dup()
            return
        call_id = "call_" + g.b62(24)
        size = g.tool_output_size(big_p=0.004)
        if rng.random() < 0.55:
            cmd = t.chunk(rng.randint(10, 200)).replace("\n", " ")
            self.line(
                "response_item",
                {
                    "type": "function_call",
                    "name": "shell",
                    "arguments": orjson.dumps(
                        {"command": ["bash", "-lc", cmd], "workdir": self.cwd}
                    ).decode(),
                    "call_id": call_id,
                },
            )
            body = orjson.dumps(
                {
                    "output": t.chunk(size),
                    "metadata": {
                        "exit_code": rng.choice((0, 0, 0, 1)),
                        "duration_seconds": round(rng.random() * 9, 1),
                    },
                }
            )
            self.line(
                "response_item", {"type": "function_call_output", "call_id": call_id, "output": body.decode()}
            )
        else:
            path = t.path(self.cwd)
            patch = (
                f"*** Begin Patch\n*** Update File: {path}\n@@\n"
                + "\n".join(
                    ("+" if rng.random() < 0.6 else "-") + x for x in t.chunk(g.size(100, 10_000)).split("\n")
                )
                + "\n*** End Patch\n"
            )
            self.line(
                "response_item",
                {
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": "apply_patch",
                    "input": patch,
                },
            )
            body = orjson.dumps(
                {
                    "output": f"Success. Updated the following files:\nM {path}\n",
                    "metadata": {"exit_code": 0, "duration_seconds": 0.0},
                }
            )
            self.line(
                "response_item",
                {"type": "custom_tool_call_output", "call_id": call_id, "output": body.decode()},
            )
            size = 200
        self.prompt += min(size // 4, 20_000)
        self.turn_context()
        self.dup()

    def compaction(self) -> None:
        g = self.g
        rng = g.rng
        hist = [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": g.text.prose(300)}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": g.text.prose(g.size(1000, 8000))}],
                "phase": "final_answer",
            },
        ]
        self.line("compacted", {"message": "", "replacement_history": hist})
        self.line("event_msg", {"type": "context_compacted"})
        # An event whose last usage is all zeros (adds nothing) and whose totals may jump.
        if rng.random() < 0.5:
            jump = rng.randint(10_000, 900_000)
            self.total = [
                self.total[0] + jump,
                self.total[1] + jump // 2,
                self.total[2],
                self.total[3],
                self.total[4] + jump,
            ]
        self.token_count([0, 0, 0, 0, rng.randint(100_000, 1_000_000)])
        self.dup()
        self.prompt = rng.randint(15_000, 50_000)
        self.cached = 0

    def run(self) -> None:
        g = self.g
        rng = g.rng
        t = g.text
        self.dev = t.prose(g.size(300, 6000))
        self.user_instr = t.chunk(g.size(300, 6000))
        meta: Json = {
            "id": self.sid,
            "timestamp": self.clock.now(),
            "cwd": self.cwd,
            "originator": "codex_cli_rs",
            "cli_version": self.version,
            "instructions": None,
            "source": "cli",
            "model_provider": "openai",
        }
        if self.new:
            meta = {
                "id": self.sid,
                "timestamp": self.clock.now(),
                "cwd": self.cwd,
                "originator": "codex_cli_rs",
                "cli_version": self.version,
                "source": "cli",
                "model_provider": "openai",
                "base_instructions": {"text": t.prose(g.size(4000, 14_000))},
                "git": {
                    "commit_hash": g.hexs(40),
                    "branch": "main",
                    "repository_url": f"git@github.com:dev/{Path(self.cwd).name}.git",
                },
            }
        self.line("session_meta", meta)
        env = (
            f"<environment_context>\n  <cwd>{self.cwd}</cwd>\n  <approval_policy>on-request</approval_policy>\n"
            "  <sandbox_mode>workspace-write</sandbox_mode>\n  <network_access>restricted</network_access>\n"
            "  <shell>zsh</shell>\n</environment_context>"
        )
        self.line(
            "response_item",
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": env}]},
        )
        if rng.random() < 0.5:
            self.line("event_msg", {"type": "token_count", "info": None, "rate_limits": self.rate_limits()})
        done = 0
        while done < self.n_requests and not g.done("codex"):
            self.turn_id = g.uuid7(self.clock.ms)
            prompt = t.prose(g.size(20, 2500))
            if self.new:
                self.line(
                    "event_msg",
                    {
                        "type": "task_started",
                        "turn_id": self.turn_id,
                        "model_context_window": self.window,
                        "collaboration_mode_kind": "default",
                    },
                )
            self.line(
                "response_item",
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]},
                ts=self.clock.tick(5_000, 600_000),
            )
            self.line("event_msg", {"type": "user_message", "message": prompt, "images": []})
            self.turn_context()
            if rng.random() < 0.5:
                self.line(
                    "response_item",
                    {
                        "type": "ghost_snapshot",
                        "ghost_commit": {
                            "id": g.hexs(40),
                            "parent": g.hexs(40),
                            "preexisting_untracked_files": [],
                            "preexisting_untracked_dirs": [],
                        },
                    },
                )
            self.prompt += len(prompt) // 4
            n = min(rng.randint(1, 25), self.n_requests - done)
            for i in range(n):
                self.request(final=i == n - 1)
                done += 1
                if self.prompt > self.window * rng.uniform(0.7, 0.9):
                    self.compaction()
            if self.new:
                self.line(
                    "event_msg",
                    {"type": "task_complete", "turn_id": self.turn_id, "last_agent_message": t.sentence()},
                )
        self.sink.close()


# --------------------------------------------------------------------------- Gemini
GEMINI_MODELS = ("gemini-2.5-pro", "gemini-3.1-pro-preview", "gemini-2.5-flash", "gemini-3-flash-preview")
GEMINI_TOOLS = ("read_file", "run_shell_command", "search_file_content", "replace", "write_file", "glob")


class GeminiSession:
    def __init__(self, g: Gen, project_hash: str) -> None:
        self.g = g
        rng = g.rng
        self.hash = project_hash
        start = g.start_ms()
        self.clock = Clock(rng, start)
        self.start = iso(start)
        self.sid = g.uuid4()
        stamp = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H-%M")
        self.jsonl = rng.random() < 0.25
        ext = "jsonl" if self.jsonl else "json"
        self.path = (
            g.out / "gemini" / "tmp" / project_hash / "chats" / f"session-{stamp}-{self.sid[:8]}.{ext}"
        )
        self.model = rng.choice(GEMINI_MODELS)
        self.n_messages = rng.randint(20, 200)
        self.prompt = rng.randint(6_000, 14_000)
        self.cached = 0

    def gemini_message(self, zero: bool) -> Json:
        g = self.g
        rng = g.rng
        t = g.text
        ts = self.clock.tick(2_000, 60_000)
        thoughts = [
            {
                "subject": t.sentence(2, 5),
                "description": t.prose(g.size(100, 1200)),
                "timestamp": self.clock.tick(100, 3000),
            }
            for _ in range(rng.randint(0, 3))
        ]
        inp = self.prompt
        cached = (
            0
            if self.cached == 0 or rng.random() < 0.15
            else int(min(inp, self.cached) * rng.uniform(0.7, 1.0))
        )
        out = max(1, int(rng.lognormvariate(4.8, 1.1)))
        th = int(rng.lognormvariate(5.5, 1.0)) if rng.random() < 0.8 else 0
        tool = rng.randint(20, 3000) if rng.random() < 0.1 else 0
        if zero:
            inp = cached = out = th = tool = 0
        tokens = {
            "input": inp,
            "output": out,
            "cached": cached,
            "thoughts": th,
            "tool": tool,
            "total": inp + out + th + tool,
        }
        m: Json = {
            "id": g.uuid4(),
            "timestamp": ts,
            "type": "gemini",
            "content": t.prose(g.size(20, 1500)),
            "thoughts": thoughts,
            "tokens": tokens,
            "model": self.model,
        }
        if not zero:
            g.stats["gemini"].totals.add(inp - cached + tool, cached, 0, out + th)
            self.cached = inp
            self.prompt += out
        if rng.random() < 0.6:
            calls = []
            for _ in range(rng.randint(1, 3)):
                name = rng.choice(GEMINI_TOOLS)
                cid = f"{name}-{self.clock.ms}-{g.hexs(13)}"
                size = g.tool_output_size(big_p=0.002)
                size = min(size, 400_000)
                output = t.chunk(size)
                self.prompt += min(size // 4, 20_000)
                calls.append(
                    {
                        "id": cid,
                        "name": name,
                        "args": {"file_path": t.path("/home/dev/project")},
                        "result": [
                            {"functionResponse": {"id": cid, "name": name, "response": {"output": output}}}
                        ],
                        "status": "success",
                        "timestamp": self.clock.tick(50, 3000),
                        "resultDisplay": output[:2000] if rng.random() < 0.5 else "",
                        "displayName": name.replace("_", " ").title().replace(" ", ""),
                        "description": t.sentence(2, 6),
                        "renderOutputAsMarkdown": True,
                    }
                )
            m["toolCalls"] = calls
        return m

    def messages(self) -> Iterator[Json]:
        g = self.g
        rng = g.rng
        for i in range(self.n_messages):
            if i == 0 or rng.random() < 0.25:
                text = g.text.prose(g.size(20, 2000))
                self.prompt += len(text) // 4
                yield {
                    "id": g.uuid4(),
                    "timestamp": self.clock.tick(5_000, 300_000),
                    "type": "user",
                    "content": text,
                }
            elif rng.random() < 0.02:
                yield {
                    "id": g.uuid4(),
                    "timestamp": self.clock.tick(),
                    "type": "info",
                    "content": g.text.sentence(),
                }
            else:
                yield self.gemini_message(zero=i == 1 and rng.random() < 0.5)

    def run(self) -> None:
        g = self.g
        rng = g.rng
        stats = g.stats["gemini"]
        if not self.jsonl:
            msgs = list(self.messages())
            doc = {
                "sessionId": self.sid,
                "projectHash": self.hash,
                "startTime": self.start,
                "lastUpdated": self.clock.now(),
                "messages": msgs,
            }
            if rng.random() < 0.5:
                doc["kind"] = "main"
            sink = Sink(self.path, stats)
            sink.raw(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            sink.close()
            return
        sink = Sink(self.path, stats)
        sink.line(
            {
                "sessionId": self.sid,
                "projectHash": self.hash,
                "startTime": self.start,
                "lastUpdated": self.start,
                "kind": "main",
            }
        )
        for m in self.messages():
            if m["type"] == "gemini" and rng.random() < 0.5:
                # First written while streaming (no tool results yet, partial output), re-appended later.
                early = dict(m)
                early.pop("toolCalls", None)
                tk = dict(m["tokens"])
                if tk["output"] > 1:
                    tk["output"] = tk["output"] // 2
                    tk["total"] = tk["input"] + tk["output"] + tk["thoughts"] + tk["tool"]
                early["tokens"] = tk
                sink.line(early)
            sink.line(m)
            if rng.random() < 0.1:
                sink.line({"$set": {"lastUpdated": self.clock.now()}})
            if m["type"] == "user" and rng.random() < 0.03:
                sink.line({"$rewindTo": m["id"]})
        sink.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=float, required=True, help="approximate corpus size (1 MB = 10^6 bytes)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    args = p.parse_args(argv)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            print(f"make_corpus: {out} is not empty (use --force)", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = Gen(out, args.size_mb, args.seed)
    manifest = gen.run()
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    a = manifest["all"]
    print(
        f"make_corpus: {a['bytes'] / MB:.1f} MB in {a['files']} files, {a['turns']} turns, "
        f"{manifest['generate_seconds']} s -> {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
