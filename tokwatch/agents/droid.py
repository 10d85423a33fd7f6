"""Factory Droid CLI: `~/.factory/sessions/<-cwd-with-dashes>/<sessionId>.settings.json` (and older
sessions directly in `~/.factory/sessions/`), beside the transcript `<sessionId>.jsonl`.

Droid keeps only a RUNNING TOTAL per session (`tokenUsage`, rewritten in place whenever it
spends tokens), so each turn here is an OBSERVED STEP (`_steps.Steps`, docs/agents.md): what the
total grew by since tokwatch last read the file, timed by the file's mtime.

* Only `tokenUsage` is counted: `inclusiveTokenUsage` adds the children's usage (subagents,
  mission workers), and each child has its own settings file, counted as its own session.
* `inputTokens` excludes the cache (`cacheReadTokens`, `cacheCreationTokens` apart);
  `output = outputTokens`, `reasoning = thinkingTokens` (whether Droid's output includes thinking
  is not known: it is closed source). `factoryCredits` are Factory credits, never dollars.
* The model is the session's current `model` (the router's choice for `auto` sessions): a switch
  mid-session re-attributes the session's later steps only.
* A session moved from the old flat folder into a project folder exists twice: the old copy is
  skipped when a project folder holds the same id.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from tokwatch.agents._steps import Steps
from tokwatch.agents.base import Agent, BadLine, LogParser, as_dict, count, load_object
from tokwatch.core.models import Turn
from tokwatch.core.tailer import Cursor

SUFFIX = ".settings.json"
_BYOK = re.compile(r"^custom:|\[[^\]]*\]|-\d+$")


def model_name(settings: Mapping[str, object]) -> str:
    """`custom:<Name>-[Provider]-<n>` (a bring-your-own-key alias) -> `<Name>`; the router's
    concrete choice for an `auto` session."""
    model = settings.get("model")
    router = settings.get("effectiveFactoryRouterModel")
    routed = router.get("modelId") if isinstance(router, dict) else None
    if (
        isinstance(routed, str)
        and routed
        and (not isinstance(model, str) or not model or model.startswith("auto"))
    ):
        model = routed
    if not isinstance(model, str) or not model:
        return "unknown"
    if model.startswith("custom:"):
        model = _BYOK.sub("", model).strip("-") or model
    return model


class DroidParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.session_id = path.name[: -len(SUFFIX)]
        self.steps = Steps()
        self.project = ""

    def state(self) -> dict[str, object]:
        return {"steps": self.steps.state(), "project": self.project}

    def restore(self, state: Mapping[str, object]) -> None:
        self.steps.restore(state.get("steps"))
        project = state.get("project")
        self.project = project if isinstance(project, str) else ""

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        """The file, read whole; the cursor keeps its identity but no fingerprint of its bytes,
        so a warm start resumes this parser's state (what was already counted) after Droid
        rewrote the file in place, instead of reading it as new."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError:
            return None
        cursor.dev, cursor.ino, cursor.size, cursor.mtime_ns = (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        )
        return self._parse(data, st.st_mtime_ns)

    def parse_document(self, data: bytes) -> list[Turn]:
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
        except OSError:
            mtime_ns = 0
        return self._parse(data, mtime_ns)

    def _parse(self, data: bytes, mtime_ns: int) -> list[Turn]:
        folder = self.path.parent
        if folder.name == "sessions" and any(folder.glob(f"*/{self.session_id}{SUFFIX}")):
            return []  # moved into a project folder: counted from there
        d = load_object(data)
        usage = d.get("tokenUsage")
        if usage is None:
            return []
        usage = as_dict(usage)
        counts = (
            count(usage, "inputTokens"),
            count(usage, "cacheReadTokens"),
            count(usage, "cacheCreationTokens"),
            count(usage, "outputTokens"),
            count(usage, "thinkingTokens"),
        )
        when = datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC) if mtime_ns else None
        step = self.steps.observe(self.session_id, when.isoformat() if when else "", counts)
        if step is None:
            return []
        if not self.project:
            self.project = self._cwd()
        return [
            Turn(
                agent="droid",
                session_id=self.session_id,
                turn_id=step.turn_id,
                model=model_name(d),
                timestamp=when.timestamp() if when else 0.0,
                input=step.input,
                cache_read=step.cache_read,
                cache_write=step.cache_write,
                output=step.output,
                reasoning=step.reasoning,
                project=self.project,
                sidechain=True,  # a step is not one request: the context in use is not known
            )
        ]

    def _cwd(self) -> str:
        """The transcript's `session_start.cwd`; else the folder name (`-home-me-app`, lossy)."""
        with (
            contextlib.suppress(OSError, BadLine),
            open(self.path.parent / f"{self.session_id}.jsonl", "rb") as f,
        ):
            cwd = load_object(f.readline(1 << 16)).get("cwd")
            if isinstance(cwd, str) and cwd:
                return cwd
        name = self.path.parent.name
        return "/" + name[1:].replace("-", "/") if name.startswith("-") else ""


class Droid(Agent):
    name = "droid"
    mode = "document"
    sniff_priority = 40
    suffixes = (SUFFIX,)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        return [home / ".factory" / "sessions"]

    def owns_path(self, path: Path) -> bool:
        if not path.name.endswith(SUFFIX) or len(path.name) == len(SUFFIX):
            return False
        folder = path.parent
        if folder.name != "sessions":
            folder = folder.parent
        return folder.name == "sessions" and folder.parent.name == ".factory"

    def parser(self, path: Path) -> LogParser:
        return DroidParser(path)


AGENT = Droid()
