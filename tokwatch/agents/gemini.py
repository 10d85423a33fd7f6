"""Gemini CLI: `~/.gemini/tmp/<project>/chats/session-*.json` (rewritten whole) or `*.jsonl`.

Traps handled here (docs/agents.md): the same message id is re-appended whenever it changes (the
store lets the last copy win); `$rewindTo` drops messages from the conversation but their requests
were billed, so turns are never removed; `cached` is inside `input`, `thoughts` are outside
`output`, `tool` tokens are prompt tokens; all-zero messages are not requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
#: Gemini CLI v0.29+ writes the project's folder into `tmp/<slug>/.project_root`.
PROJECT_ROOT_FILE = ".project_root"
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def project_folder(path: Path) -> Path | None:
    """`tmp/<project>/` of a session file (`chats/x.json`, or a subagent's `chats/<parent>/x.jsonl`)."""
    parent = path.parent
    if parent.name != "chats" and parent.parent.name == "chats":
        parent = parent.parent
    return parent.parent if parent.name == "chats" else None


def recorded_root(folder: Path) -> str | None:
    """The project folder Gemini CLI recorded for `tmp/<slug>/` (its `.project_root` marker)."""
    try:
        with open(folder / PROJECT_ROOT_FILE, "rb") as f:
            text = f.read(4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and "\n" not in text else None


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
        folder = project_folder(path)
        #: the folder's name (a slug or a sha256): what the project is called until it is resolved
        self.folder = folder.name if folder is not None else ""
        self.project = self.folder

    def state(self) -> dict[str, object]:
        return {"session_id": self.session_id, "project": self.project}

    def restore(self, state: Mapping[str, object]) -> None:
        self.session_id = str(state.get("session_id") or self.session_id)
        if self.project == self.folder:  # (a name resolved from Gemini's own files wins)
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
    compact_rule = "half the model's limit (model.compressionThreshold, 0.5 since Gemini CLI 0.17)"

    def compact_threshold(self, model: str, window: int) -> int | None:
        return window // 2 if window > 0 else None

    mcp_marker_env = ("GEMINI_CLI",)  # set for its MCP servers (and its shell commands)

    def __init__(self) -> None:
        self._slugs: dict[str, str] | None = None
        self._roots: dict[Path, str | None] = {}

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
        folder = project_folder(path)
        if folder is not None:
            p.project = self.project_of(folder)
        return p

    def project_of(self, folder: Path) -> str:
        """The project folder behind `tmp/<name>/`, from Gemini CLI's own records: the folder's
        `.project_root` (v0.29+), `~/.gemini/projects.json` (path -> slug), or a path there
        whose sha256 is the folder's name (older hash-named folders); else the name itself."""
        if folder not in self._roots:
            name = folder.name
            found = recorded_root(folder) or self.slugs().get(name)
            if found is None and _SHA256.fullmatch(name):
                found = self._hashes().get(name)
            self._roots[folder] = found
        return self._roots[folder] or folder.name

    def _hashes(self) -> dict[str, str]:
        return {hashlib.sha256(p.encode()).hexdigest(): p for p in self.slugs().values()}


AGENT = Gemini()
