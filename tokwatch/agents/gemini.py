"""Gemini CLI: `~/.gemini/tmp/<project>/chats/session-*.json` (rewritten whole) or `*.jsonl`.

Traps handled here (docs/agents.md): the same message id is re-appended whenever it changes (the
store lets the last copy win); `$rewindTo` drops messages from the conversation but their requests
were billed, so turns are never removed; `cached` is inside `input`, `thoughts` are outside
`output`, `tool` tokens are prompt tokens; all-zero messages are not requests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents.base import Agent, BadLine, LogParser, Record, as_dict, count, load_object, parse_ts
from tokwatch.core.models import Turn
from tokwatch.fsio import read_regular

WINDOW = 1_048_576
#: The fields a JSONL record's `feed` reads; message content and tool calls are never built.
RECORD = Record(
    dict.fromkeys(("sessionId", "projectHash", "type", "tokens", "id", "model", "timestamp"))
    | {"$set": dict.fromkeys(("sessionId", "projectHash"))}
)


def _project_names(home: Path) -> dict[str, str]:
    """`~/.gemini/projects.json` maps project paths to the slugs used as folder names (v0.29+)."""
    try:
        data = json.loads(read_regular(home / ".gemini" / "projects.json"))
    except (OSError, ValueError):
        return {}
    projects = data.get("projects", data) if isinstance(data, dict) else {}
    if not isinstance(projects, dict):
        return {}
    return {str(slug): str(path) for path, slug in projects.items() if isinstance(slug, str)}


class GeminiParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.session_id = path.stem
        self.sidechain = False
        parent = path.parent
        if parent.name != "chats" and parent.parent.name == "chats":
            # chats/<parentSessionId>/<id>.jsonl: a subagent billed to its parent session.
            self.session_id = parent.name
            self.sidechain = True
            parent = parent.parent
        self.project = parent.parent.name if parent.name == "chats" else ""

    def state(self) -> dict[str, object]:
        return {"session_id": self.session_id, "project": self.project}

    def restore(self, state: Mapping[str, object]) -> None:
        self.session_id = str(state.get("session_id") or self.session_id)
        self.project = str(state.get("project") or self.project)

    def _meta(self, d: dict[str, object]) -> None:
        sid = d.get("sessionId")
        if isinstance(sid, str) and sid and not self.sidechain:
            self.session_id = sid
        if not self.project:
            ph = d.get("projectHash")
            if isinstance(ph, str):
                self.project = ph

    def _turn(self, m: dict[str, object]) -> Turn | None:
        if m.get("type") != "gemini":
            return None
        tokens = m.get("tokens")
        if tokens is None:
            return None
        tokens = as_dict(tokens)
        raw_in = count(tokens, "input")
        cached = min(count(tokens, "cached"), raw_in)
        out = count(tokens, "output")
        thoughts = count(tokens, "thoughts")
        tool = count(tokens, "tool")
        if not (raw_in or out or thoughts or tool):
            return None
        mid = m.get("id")
        if not isinstance(mid, str) or not mid:
            raise BadLine("gemini message without id")
        model = m.get("model")
        return Turn(
            agent="gemini",
            session_id=self.session_id,
            turn_id=mid,
            model=model if isinstance(model, str) and model else "unknown",
            timestamp=parse_ts(m.get("timestamp")),
            input=raw_in - cached + tool,
            cache_read=cached,
            output=out + thoughts,
            reasoning=thoughts,
            project=self.project,
            sidechain=self.sidechain,
        )

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line, RECORD)
        if "$set" in d:
            s = d["$set"]
            if isinstance(s, dict):
                self._meta(s)
            return []
        if "sessionId" in d and "type" not in d:
            self._meta(d)
            return []
        t = self._turn(d)
        return [t] if t else []

    def parse_document(self, data: bytes) -> list[Turn]:
        d = load_object(data)
        self._meta(d)
        messages = d.get("messages")
        if not isinstance(messages, list):
            raise BadLine("no messages list")
        turns = []
        self.skipped = 0
        for m in messages:
            if isinstance(m, dict):
                try:
                    t = self._turn(m)
                except BadLine:  # one malformed message: skipped and counted, the rest count
                    self.skipped += 1
                    continue
                if t:
                    turns.append(t)
        return turns


class Gemini(Agent):
    name = "gemini"
    mode = "document"
    needles = (b'"gemini"', b'"sessionId"', b'"$set"')
    provider = "google"
    default_context_window = WINDOW
    mcp_marker_env = ("GEMINI_CLI",)  # set for its MCP servers (and its shell commands)

    def __init__(self) -> None:
        self._slugs: dict[str, str] | None = None

    @staticmethod
    def _base(env: Mapping[str, str], home: Path) -> Path:
        return Path(env["GEMINI_CLI_HOME"]).expanduser() if env.get("GEMINI_CLI_HOME") else home

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        base = self._base(env, home)
        self._slugs = _project_names(base)
        return [base / ".gemini" / "tmp"]

    def slugs(self) -> dict[str, str]:
        """Loaded on first use too: a backfill worker process never calls `roots()`."""
        if self._slugs is None:
            self._slugs = _project_names(self._base(os.environ, Path.home()))
        return self._slugs

    def owns_path(self, path: Path) -> bool:
        if path.suffix not in (".json", ".jsonl"):
            return False
        return "chats" in path.parts[-3:-1] and ".gemini" in path.parts

    def sniff(self, head: bytes) -> bool:
        return b'"sessionId"' in head and (b'"projectHash"' in head or b'"messages"' in head)

    def is_document(self, path: Path) -> bool:
        return path.suffix == ".json"

    def parser(self, path: Path) -> LogParser:
        p = GeminiParser(path)
        p.project = self.slugs().get(p.project, p.project)
        return p


AGENT = Gemini()
