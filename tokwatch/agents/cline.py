"""Cline: classic task folders (VS Code extension ≤ 4.0.x and the 4.1 "Legacy" bundle, the
pre-SDK CLI) and SDK sessions (extension 4.0.0 and the 4.1 "Next" bundle, the SDK CLI).

Classic: `<globalStorage>/saoudrizwan.claude-dev/tasks/<taskId>/ui_messages.json` under every VS
Code fork, and `(CLINE_DIR or ~/.cline)/data/tasks/` for the standalone CLI (`_vscode.py` reads
them). When the Next bundle resumes a classic task, it writes its new turns back into that task's
`ui_messages.json` (after the original messages, `sdk_writeback.json` records where): those copies
are skipped here, the SDK session counts them.

SDK: `<sessions>/<sessionId>/<sessionId>.messages.json` (subagents and team tasks:
`<sessionId>/<agentId>[__<teamTaskId>].messages.json`), `<sessions>` = `$CLINE_SESSION_DATA_DIR`,
else `$CLINE_DATA_DIR/sessions`, else `(CLINE_DIR or ~/.cline)/data/sessions`. Rewritten whole.
Each assistant message carrying `metrics` is one model call (`inputTokens` INCLUDES the cache).

Traps handled here (docs/agents.md):
* Forks copy messages, ids and metrics included, into a new session: turns carry the message id
  as `dedup_key`, so a request is counted once across sessions.
* Compaction strips `metrics` from every message and keeps their running sum in the first
  message's `metadata.usageBefore`: one aggregate turn holds what the turns tokwatch already
  counted from this file do not (recomputed on every read: warm and cold give the same totals).
* A classic task resumed by the Next bundle is seeded with the classic history, its LAST assistant
  message carrying the whole classic task's totals; those seeded metrics (before Cline's "legacy
  conversation" warning) are not counted: the classic folder counts those requests one by one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from tokwatch.agents._vscode import TaskParser, global_storage, is_task_file
from tokwatch.agents.base import Agent, BadLine, LogParser, count, load_object
from tokwatch.core.models import SUM_MARK, Turn

EXTENSION = "saoudrizwan.claude-dev"
LEGACY_RESUME_WARNING = "Warning: this is a legacy conversation, which means tool names may have changed."
WRITEBACK = "sdk_writeback.json"


def _data_dir(env: Mapping[str, str], home: Path) -> Path:
    explicit = env.get("CLINE_DATA_DIR", "").strip()
    if explicit:
        return Path(os.path.expanduser(explicit))
    cline_dir = env.get("CLINE_DIR", "").strip()
    return (Path(os.path.expanduser(cline_dir)) if cline_dir else home / ".cline") / "data"


def _sessions_dir(env: Mapping[str, str], home: Path) -> Path:
    explicit = env.get("CLINE_SESSION_DATA_DIR", "").strip()
    return Path(os.path.expanduser(explicit)) if explicit else _data_dir(env, home) / "sessions"


class ClineTaskParser(TaskParser):
    """A classic task; messages Cline Next wrote back into it are the SDK session's (not counted)."""

    def parse_document(self, data: bytes) -> list[Turn]:
        try:
            base = load_object((self.path.parent / WRITEBACK).read_bytes()).get("baseUiMessageCount")
        except (OSError, BadLine):
            base = None
        if type(base) is int and base >= 0:
            try:
                messages = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise BadLine(str(e)) from None
            if isinstance(messages, list) and len(messages) > base:
                data = orjson.dumps(messages[:base])
        return super().parse_document(data)


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(c["text"] for c in content if isinstance(c, dict) and isinstance(c.get("text"), str))
    return ""


class ClineSdkParser(LogParser):
    """One SDK messages file (the lead agent's, or a subagent's billed to the same session)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.session_id = path.parent.name
        stem = path.name[: -len(".messages.json")]
        self.sidechain = stem != self.session_id  # a subagent / teammate of the session
        self.project = ""
        self.model = ""
        self.manifest_stamp: list[int] = []
        #: message id -> [input, cache_read, cache_write, output, cost or None] as last emitted
        self.held: dict[str, list[object]] = {}

    def state(self) -> dict[str, object]:
        return {"held": self.held, "project": self.project, "model": self.model}

    def restore(self, state: Mapping[str, object]) -> None:
        held = state.get("held")
        if isinstance(held, dict):
            self.held = {
                k: v for k, v in held.items() if isinstance(k, str) and isinstance(v, list) and len(v) == 5
            }
        for name in ("project", "model"):
            v = state.get(name)
            if isinstance(v, str):
                setattr(self, name, v)

    def _manifest(self) -> None:
        path = self.path.parent / f"{self.session_id}.json"
        try:
            st = os.stat(path)
        except OSError:
            return
        stamp = [st.st_size, st.st_mtime_ns]
        if stamp == self.manifest_stamp:
            return
        self.manifest_stamp = stamp
        with contextlib.suppress(OSError, BadLine):
            d = load_object(path.read_bytes())
            cwd = d.get("cwd") or d.get("workspace_root")
            if isinstance(cwd, str) and cwd:
                self.project = cwd
            model = d.get("model")
            if isinstance(model, str) and model:
                self.model = model

    def parse_document(self, data: bytes) -> list[Turn]:
        d = load_object(data)
        messages = d.get("messages")
        if not isinstance(messages, list):
            raise BadLine("no messages list")
        self._manifest()
        seeded = 0  # messages before the legacy-resume warning carry the classic task's totals
        for i, m in enumerate(messages):
            if (
                isinstance(m, dict)
                and m.get("role") == "user"
                and LEGACY_RESUME_WARNING in _text_of(m.get("content"))
            ):
                seeded = i + 1
                break
        turns: list[Turn] = []
        for m in messages[seeded:]:
            if not isinstance(m, dict) or m.get("role") != "assistant":
                continue
            metrics = m.get("metrics")
            mid = m.get("id")
            if not isinstance(metrics, dict) or not isinstance(mid, str) or not mid:
                continue
            try:
                t = self._turn(mid, metrics, m)
            except BadLine:
                continue
            if t is not None:
                turns.append(t)
        first = messages[0] if messages else None
        compacted = self._compacted(first, {t.turn_id for t in turns})
        if compacted is not None:
            turns.append(compacted)
        for t in turns:
            self.held[t.turn_id] = [t.input, t.cache_read, t.cache_write, t.output, t.cost_usd]
        return turns

    def _counts(self, metrics: Mapping[str, object]) -> tuple[int, int, int, int]:
        cr, cw = count(metrics, "cacheReadTokens"), count(metrics, "cacheWriteTokens")
        # the SDK's inputTokens is the whole prompt, cache reads and writes included
        return max(0, count(metrics, "inputTokens") - cr - cw), cr, cw, count(metrics, "outputTokens")

    def _turn(self, mid: str, metrics: Mapping[str, object], m: Mapping[str, object]) -> Turn | None:
        inp, cr, cw, out = self._counts(metrics)
        cost = metrics.get("cost")
        if not (inp or cr or cw or out) and mid not in self.held:
            return None
        info = m.get("modelInfo")
        model = info.get("id") if isinstance(info, dict) else None
        ts = m.get("ts")
        return Turn(
            agent="cline",
            session_id=self.session_id,
            turn_id=mid,
            model=model if isinstance(model, str) and model else self.model or "unknown",
            timestamp=ts / 1000.0 if type(ts) is int and ts > 0 else 0.0,
            input=inp,
            cache_read=cr,
            cache_write=cw,
            output=out,
            project=self.project,
            sidechain=self.sidechain or not (inp or cr or cw),
            cost_usd=float(cost) if isinstance(cost, int | float) and 0 < cost < 1e6 else None,
            dedup_key=mid,  # a fork copies the message, id and metrics included
        )

    def _compacted(self, first: object, present: set[str]) -> Turn | None:
        """What compaction folded into `usageBefore`, less what tokwatch still holds of it."""
        meta = first.get("metadata") if isinstance(first, dict) else None
        usage = (
            meta.get("usageBefore") if isinstance(meta, dict) and meta.get("kind") == "compaction" else None
        )
        turn_id = f"{SUM_MARK}compacted"
        if not isinstance(usage, dict):
            return None
        try:
            inp, cr, cw, out = self._counts(usage)
        except BadLine:
            return None
        gone = [v for k, v in self.held.items() if k not in present and k != turn_id]
        inp = max(0, inp - sum(int(v[0]) for v in gone))  # type: ignore[call-overload]
        cr = max(0, cr - sum(int(v[1]) for v in gone))  # type: ignore[call-overload]
        cw = max(0, cw - sum(int(v[2]) for v in gone))  # type: ignore[call-overload]
        out = max(0, out - sum(int(v[3]) for v in gone))  # type: ignore[call-overload]
        cost = usage.get("cost")
        rest = None
        if isinstance(cost, int | float) and cost > 0:
            rest = cost - sum(float(v[4]) for v in gone if isinstance(v[4], int | float))
        if not (inp or cr or cw or out) and turn_id not in self.held:
            return None
        ts = first.get("ts") if isinstance(first, dict) else None
        return Turn(
            agent="cline",
            session_id=self.session_id,
            turn_id=turn_id,
            model=self.model or "unknown",
            timestamp=ts / 1000.0 if type(ts) is int and ts > 0 else 0.0,
            input=inp,
            cache_read=cr,
            cache_write=cw,
            output=out,
            project=self.project,
            sidechain=True,
            cost_usd=(rest if rest is not None and rest > 1e-9 else None)
            if (inp or cr or cw or out)
            else 0.0,
        )


class Cline(Agent):
    name = "cline"
    mode = "document"
    sniff_priority = 40
    suffixes = (".json",)

    def __init__(self) -> None:
        self._dirs: tuple[set[Path], set[Path]] | None = None  # (task storage dirs, session dirs)

    def _known(self, env: Mapping[str, str], home: Path) -> tuple[set[Path], set[Path]]:
        data = _data_dir(env, home)
        # (the extension has no storage-path setting; its standalone host keeps tasks in the data dir)
        storages = {data, *global_storage(env, home, EXTENSION)}
        found = (storages, {_sessions_dir(env, home)})
        old = self._dirs or (set(), set())
        self._dirs = (old[0] | found[0], old[1] | found[1])
        return found

    def dirs(self) -> tuple[set[Path], set[Path]]:
        """Computed on first use too: a backfill worker process never calls `roots()`."""
        if self._dirs is None:
            return self._known(os.environ, Path(os.environ.get("HOME") or Path.home()))
        return self._dirs

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        storages, sessions = self._known(env, home)
        return sorted(s / "tasks" for s in storages) + sorted(sessions)

    def owns_path(self, path: Path) -> bool:
        if is_task_file(path):
            storage = path.parents[2]
            return storage.name == EXTENSION or storage in self.dirs()[0]
        if path.name.endswith(".messages.json") and len(path.parts) >= 3:
            sessions = path.parent.parent
            return (
                sessions.name == "sessions"
                and sessions.parent.name == "data"
                and sessions.parent.parent.name == ".cline"
            ) or sessions in self.dirs()[1]
        return False

    def parser(self, path: Path) -> LogParser:
        if path.name == "ui_messages.json":
            return ClineTaskParser(path, "cline", "cline")
        return ClineSdkParser(path)


AGENT = Cline()
