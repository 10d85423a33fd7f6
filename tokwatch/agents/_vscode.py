"""Cline, Roo Code and Kilo Code (≤ 5.x) task folders, shared by their three plug-ins.

Where: `<user data>/User/globalStorage/<extension id>/tasks/<taskId>/ui_messages.json` under every
VS Code fork (Code, Insiders, VSCodium, Cursor, Windsurf, …, and `~/.vscode-server`), or a folder
the extension's `customStoragePath` setting names. `ui_messages.json` is a JSON array of
ClineMessage REWRITTEN whole on every change, so it is read whole and every request is
re-emitted: the store replaces turns by id (the message's `ts`), so only changed ones count.

What is counted (docs/agents.md), as Cline's `getApiMetrics` counts it:
* every `say: api_req_started`, with whatever usage it carries (its values are the request's
  running totals: the last write wins). Cancelled requests (`cancelReason`) were billed: counted.
  A very old `api_req_finished` is merged into the request before it.
* `deleted_api_reqs` (Cline) / `api_req_deleted` (Roo, Kilo): the aggregate a checkpoint restore
  leaves for the requests it removed. When tokwatch had counted those requests before they
  vanished, the aggregate only adds what they do not already account for (a residual), so a warm
  and a cold read give the same total.
* `subagent_usage` (Cline): one batch of in-process subagents, which have no request of their own.
* Roo/Kilo `condense_context`: the condensing call's cost (no tokens are recorded).

`tokensIn` means different things per agent, version and provider (normalized here):
* Cline classic: per provider (`modelInfo.providerId`, else `task_metadata.json`): uncached for
  Anthropic-style providers, cache-INCLUSIVE for OpenAI-compatible ones, and DeepSeek's cache
  MISSES reported as `cacheWrites` with `tokensIn` 0.
* Roo ≥ 3.29.5 / Kilo ≥ 4.119.0: the whole prompt (cache included); older builds: the provider's
  own figure (uncached for the Anthropic protocol). No version is recorded: see `_roo_counts`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson

from tokwatch.agents.base import Agent, BadLine, LogParser, count, load_object
from tokwatch.core.models import SUM_MARK, Turn

# ---------------------------------------------------------------------------- where

#: VS Code and its forks: the folder name of their user data (Linux ~/.config/<name>, macOS
#: ~/Library/Application Support/<name>). Any other folder holding `User/globalStorage` is found too.
FORKS = (
    "Code",
    "Code - Insiders",
    "Code - OSS",
    "VSCodium",
    "VSCodium - Insiders",
    "Cursor",
    "Windsurf",
    "Windsurf - Next",
    "Positron",
    "Antigravity",
    "Trae",
    "Kiro",
    "Void",
)
#: Remote / server installs keep their user data under `<home>/<name>/data`.
SERVERS = (
    ".vscode-server",
    ".vscode-server-insiders",
    ".vscodium-server",
    ".cursor-server",
    ".windsurf-server",
)


def user_data_dirs(env: Mapping[str, str], home: Path) -> list[Path]:
    """Every existing VS Code-style user data folder (the one holding `User/`)."""
    bases: list[Path] = []
    if sys.platform == "darwin":
        bases.append(home / "Library" / "Application Support")
    elif sys.platform == "win32":
        appdata = env.get("APPDATA", "").strip()
        if appdata:
            bases.append(Path(appdata))
    else:
        xdg = env.get("XDG_CONFIG_HOME", "").strip()
        bases.append(Path(os.path.expanduser(xdg)) if xdg else home / ".config")
    out: list[Path] = []
    for base in bases:
        named = [base / f for f in FORKS]
        with contextlib.suppress(OSError):
            named += sorted(p.parent.parent for p in base.glob("*/User/globalStorage"))
        for d in named:
            if d not in out and (d / "User").is_dir():
                out.append(d)
    for s in SERVERS:
        d = home / s / "data"
        if (d / "User").is_dir():
            out.append(d)
    return out


def global_storage(env: Mapping[str, str], home: Path, ext_id: str) -> list[Path]:
    """`<user data>/User/globalStorage/<ext_id>` for every fork installed (it may not exist yet)."""
    return [d / "User" / "globalStorage" / ext_id for d in user_data_dirs(env, home)]


def custom_storage(env: Mapping[str, str], home: Path, setting: str) -> list[Path]:
    """Folders named by a `<ext>.customStoragePath` setting in any fork's `User/settings.json`
    (JSON with comments: the one key is found by pattern, not by parsing)."""
    pattern = re.compile(rb'"' + re.escape(setting.encode()) + rb'"\s*:\s*"((?:[^"\\]|\\.)*)"')
    out: list[Path] = []
    for d in user_data_dirs(env, home):
        try:
            raw = (d / "User" / "settings.json").read_bytes()
        except OSError:
            continue
        m = pattern.search(raw)
        if m and m.group(1):
            try:
                value = orjson.loads(b'"' + m.group(1) + b'"')
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, str) and value.strip():
                p = Path(os.path.expanduser(value.strip()))
                if p.is_absolute() and p not in out:
                    out.append(p)
    return out


def is_task_file(path: Path) -> bool:
    """`…/tasks/<taskId>/ui_messages.json` (the storage folder is checked by each agent)."""
    return path.name == "ui_messages.json" and len(path.parts) >= 4 and path.parent.parent.name == "tasks"


# ---------------------------------------------------------------------------- normalization

#: Roo 3.29.5 (2025-11-01 UTC) and Kilo Code 4.119.0 (2025-11-12 UTC): from these releases on,
#: `tokensIn` holds the whole prompt for every protocol (`costResult.totalInputTokens`).
ROO_NEW_ERA_MS = 1761955200000
KILO_NEW_ERA_MS = 1762905600000

# Cline classic: what each provider handler reports as `tokensIn` / `cacheWrites` (@v3.89.2).
_CLINE_INCLUSIVE_MISS = frozenset({"openai", "xai", "doubao", "qwen", "fireworks", "hicap"})
_CLINE_INCLUSIVE = frozenset({"litellm", "requesty", "openai-codex", "zai", "lmstudio", "oca", "sapaicore"})


def _cline_counts(tin: int, cr: int, cw: int, provider: str | None) -> tuple[int, int, int]:
    """(input, cache_read, cache_write) from a Cline classic record, per its provider."""
    if provider == "deepseek":
        # tokensIn is always 0 and `cacheWrites` holds DeepSeek's cache MISSES: the uncached prompt
        return tin + cw, cr, 0
    if provider in _CLINE_INCLUSIVE_MISS:
        # prompt_tokens (cache included); `cacheWrites` is a miss count when present, not writes
        return max(0, tin - cr), cr, 0
    if provider in _CLINE_INCLUSIVE:
        return max(0, tin - cr - cw), cr, cw
    # Anthropic-style handlers (anthropic, bedrock, vertex, cline, openrouter, gemini, …), those
    # reporting no cache at all, and records with no provider: tokensIn is the uncached input
    return tin, cr, cw


def _roo_counts(
    tin: int, cr: int, cw: int, protocol: object, ts: int, new_era_ms: int
) -> tuple[int, int, int]:
    """(input, cache_read, cache_write) from a Roo / Kilo record: the version rule of the notes.

    OpenAI protocol: cache-inclusive in every era. Anthropic protocol (or none): a `tokensIn`
    smaller than the cache it reports cannot hold it (an old build); before the release that
    changed it, old; otherwise the whole prompt. Left ambiguous (docs/agents.md): an old build
    run after that date whose uncached input is at least its cache.
    """
    if protocol == "openai":
        return max(0, tin - cr - cw), cr, cw
    if tin < cr + cw or ts < new_era_ms:
        return tin, cr, cw
    return tin - cr - cw, cr, cw


# ---------------------------------------------------------------------------- reading

_USAGE_SAYS = frozenset(
    {
        "api_req_started",
        "api_req_finished",
        "deleted_api_reqs",
        "api_req_deleted",
        "subagent_usage",
        "condense_context",
    }
)
_CWD = re.compile(rb"# Current (?:Working|Workspace) Directory \(((?:[^)\\\"]|\\.)+)\) Files")
_MODEL_TAG = re.compile(r"<model>([^<]{1,200})</model>")
PROJECT_HEAD = 256 << 10  # the first user message names the folder: read no further for it


_NEEDLES = tuple(b'"say":"' + say.encode() + b'"' for say in sorted(_USAGE_SAYS))
_START, _NEXT = b'{"ts":', b'},{"ts":'


def usage_messages(data: bytes) -> list[dict[str, object]] | None:
    """The usage-bearing messages of a compact `ui_messages.json`, each parsed alone.

    The file is mostly text (tool output, file contents, reasoning); its few usage messages are
    found by their `"say":"…"` bytes, which cannot occur inside a JSON string (a quote there is
    escaped), and cut out between their `{"ts":` and the next message's `},{"ts":`. Anything not
    laid out that way (pretty-printed, other key order, a nested object with a `ts`) makes a cut
    fail to parse as that one message: None, and the caller parses the whole file.
    """
    if not data.startswith(b'[{"ts":') or b'": "' in data[:4096]:
        return None
    hits = sorted(i for needle in _NEEDLES for i in _find_all(data, needle))
    out: list[dict[str, object]] = []
    for pos in hits:
        start = data.rfind(_START, 0, pos)
        end = data.find(_NEXT, pos)
        chunk = data[start : end + 1] if end >= 0 else data[start:].rstrip().removesuffix(b"]")
        try:
            m = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return None
        if (
            not isinstance(m, dict)
            or m.get("type") != "say"
            or b'"say":"' + str(m.get("say")).encode() + b'"' not in data[pos : pos + 40]
        ):
            return None
        out.append(m)
    return out


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + len(needle))
    return out


def _json_text(v: object) -> dict[str, object] | None:
    if not isinstance(v, str) or not v.startswith("{"):
        return None
    try:
        d = orjson.loads(v)
    except orjson.JSONDecodeError:
        return None
    return d if isinstance(d, dict) else None


def _stamp(path: Path) -> list[int]:
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def _unescape(raw: bytes) -> str:
    try:
        v = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
    return v if isinstance(v, str) else ""


class TaskParser(LogParser):
    """One task's `ui_messages.json`; `flavor` is "cline", "roo" or "kilo"."""

    def __init__(self, path: Path, agent: str, flavor: str) -> None:
        super().__init__(path)
        self.agent = agent
        self.flavor = flavor
        self.task_id = path.parent.name
        self.project = ""
        #: turn id -> [input, cache_read, cache_write, output, cost or None, ts ms] as last emitted:
        #: what tokwatch holds of this task, for the deleted-requests residual.
        self.held: dict[str, list[object]] = {}
        #: Roo/Kilo: (user message ts, model) where the model named in the prompt changes.
        self.models: list[list[object]] = []
        self.history_stamp: list[int] = []  # api_conversation_history.json when last read
        #: Cline before 3.37: task_metadata.json `model_usage` as (ts, model, provider).
        self.usage_log: list[list[object]] = []
        self.meta_stamp: list[int] = []

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, object]:
        return {
            "held": self.held,
            "project": self.project,
            "models": self.models,
            "history_stamp": self.history_stamp,
            "usage_log": self.usage_log,
            "meta_stamp": self.meta_stamp,
        }

    def restore(self, state: Mapping[str, object]) -> None:
        held = state.get("held")
        if isinstance(held, dict):
            self.held = {
                k: v
                for k, v in held.items()
                if isinstance(k, str) and isinstance(v, list) and len(v) == 6 and type(v[5]) is int
            }
        project = state.get("project")
        self.project = project if isinstance(project, str) else ""
        for name in ("models", "usage_log"):
            v = state.get(name)
            if isinstance(v, list):
                setattr(self, name, [x for x in v if isinstance(x, list) and x and type(x[0]) is int])
        for name in ("history_stamp", "meta_stamp"):
            v = state.get(name)
            if isinstance(v, list) and all(type(x) is int for x in v):
                setattr(self, name, v)

    # ------------------------------------------------------------------ side files
    def _side_files(self) -> None:
        """The project (and for Roo/Kilo the models) from the prompt history; Cline's model log."""
        folder = self.path.parent
        if self.flavor != "cline":
            if not self.project:
                with contextlib.suppress(OSError, BadLine):
                    ws = load_object((folder / "history_item.json").read_bytes()).get("workspace")
                    if isinstance(ws, str):
                        self.project = ws
            history = folder / "api_conversation_history.json"
            stamp = _stamp(history)
            if stamp and stamp != self.history_stamp:
                self._read_models(history)
                self.history_stamp = stamp
        elif not self.project:
            history = folder / "api_conversation_history.json"
            stamp = _stamp(history)
            if stamp and stamp != self.history_stamp:
                self.history_stamp = stamp
                with contextlib.suppress(OSError), open(history, "rb") as f:
                    m = _CWD.search(f.read(PROJECT_HEAD))
                    if m:
                        self.project = _unescape(m.group(1))
        if self.flavor == "cline":
            meta = folder / "task_metadata.json"
            stamp = _stamp(meta)
            if stamp and stamp != self.meta_stamp:
                self.meta_stamp = stamp
                with contextlib.suppress(OSError, BadLine):
                    usage = load_object(meta.read_bytes()).get("model_usage")
                    if isinstance(usage, list):
                        self.usage_log = [
                            [u["ts"], u.get("model_id") or "", u.get("model_provider_id") or ""]
                            for u in usage
                            if isinstance(u, dict) and type(u.get("ts")) is int
                        ]

    def _read_models(self, history: Path) -> None:
        try:
            messages = orjson.loads(history.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return  # mid-write or gone: kept as it was, read again on the next change
        if not isinstance(messages, list):
            return
        points: list[list[object]] = []
        for m in messages:
            if not isinstance(m, dict) or m.get("role") != "user" or type(m.get("ts")) is not int:
                continue
            content = m.get("content")
            texts = [content] if isinstance(content, str) else []
            if isinstance(content, list):
                texts = [
                    c.get("text") for c in content if isinstance(c, dict) and isinstance(c.get("text"), str)
                ]
            for text in texts:
                if not self.project:
                    cwd = _CWD.search(text.encode())
                    if cwd:
                        self.project = _unescape(cwd.group(1))
                tag = _MODEL_TAG.findall(text)
                if tag:
                    model = tag[-1].strip()
                    if not points or points[-1][1] != model:
                        points.append([m["ts"], model])
                    break
        self.models = points

    def _roo_model(self, next_ts: float) -> str:
        """The model named by the last prompt written before the next request (the user message
        follows its request's placeholder); the first one seen when none is that early."""
        model = ""
        for ts, name in self.models:
            if ts < next_ts:  # type: ignore[operator]
                model = str(name)
            else:
                break
        if not model and self.models:
            model = str(self.models[0][1])
        return model or "unknown"

    def _cline_model(self, msg: Mapping[str, object], ts: int) -> tuple[str, str | None]:
        info = msg.get("modelInfo")
        if isinstance(info, dict):
            model, provider = info.get("modelId"), info.get("providerId")
            if isinstance(model, str) and model:
                return model, provider if isinstance(provider, str) and provider else None
        best: list[object] | None = None
        for entry in self.usage_log:
            if best is None or entry[0] <= ts:  # type: ignore[operator]
                best = entry
            if entry[0] > ts:  # type: ignore[operator]
                break
        if best is not None:
            return str(best[1] or "unknown"), str(best[2]) or None
        return "unknown", None

    # ------------------------------------------------------------------ parsing
    def parse_document(self, data: bytes) -> list[Turn]:
        messages = usage_messages(data)
        if messages is None:
            try:
                messages = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise BadLine(str(e)) from None
            if not isinstance(messages, list):
                raise BadLine("ui_messages.json is not a list")
        self._side_files()
        records: list[tuple[str, int, dict[str, object], Mapping[str, object]]] = []
        last_request: dict[str, object] | None = None
        for m in messages:
            if not isinstance(m, dict) or m.get("type") != "say":
                continue
            say = m.get("say")
            if say not in _USAGE_SAYS:
                continue
            ts = m.get("ts")
            if type(ts) is not int or ts <= 0:
                continue
            if say == "condense_context":
                info = m.get("contextCondense")
                if isinstance(info, dict):
                    records.append(("condense", ts, info, m))
                continue
            info = _json_text(m.get("text"))
            if info is None:
                continue
            if say == "api_req_finished":  # very old builds: merged into the request before it
                if last_request is not None:
                    last_request.update(info)
                continue
            kind = {"api_req_started": "request", "subagent_usage": "subagents"}.get(say, "deleted")
            if kind == "request":
                last_request = info
            records.append((kind, ts, info, m))
        return self._turns(records)

    def _counts(
        self, info: Mapping[str, object], ts: int, msg: Mapping[str, object]
    ) -> tuple[int, int, int, int]:
        tin, out = count(info, "tokensIn"), count(info, "tokensOut")
        cr, cw = count(info, "cacheReads"), count(info, "cacheWrites")
        if self.flavor == "cline":
            inp, cr, cw = _cline_counts(tin, cr, cw, self._cline_model(msg, ts)[1])
        else:
            era = KILO_NEW_ERA_MS if self.flavor == "kilo" else ROO_NEW_ERA_MS
            inp, cr, cw = _roo_counts(tin, cr, cw, info.get("apiProtocol"), ts, era)
        return inp, cr, cw, out

    def _turns(self, records: list[tuple[str, int, dict[str, object], Mapping[str, object]]]) -> list[Turn]:
        request_ts = [ts for kind, ts, _, _ in records if kind == "request"]
        turns: list[Turn] = []
        aggregates: list[tuple[Turn, int]] = []  # deleted-request aggregates, with their ts
        model = "unknown"
        nxt = 0  # index into request_ts of the next request after the current record
        missing: set[str] = set()  # Kilo requests whose usage never came
        for kind, ts, info, msg in records:
            while nxt < len(request_ts) and request_ts[nxt] <= ts:
                nxt += 1
            if self.flavor == "cline":
                model = self._cline_model(msg, ts)[0]
            else:
                model = self._roo_model(request_ts[nxt] if nxt < len(request_ts) else float("inf"))
            try:
                t = self._turn(kind, ts, info, msg, model)
            except BadLine:
                continue  # one odd record must not hide the others
            if t is None:
                continue
            if kind == "request" and info.get("usageMissing") is True:
                missing.add(t.turn_id)
            if kind == "deleted":
                aggregates.append((t, ts))
            turns.append(t)
        if aggregates:
            self._residuals({t.turn_id for t in turns}, aggregates)
        # placeholders (no usage yet) and failed first chunks (all zero) are not counted, unless
        # tokwatch holds earlier numbers for them (Cline zeroes a request before auto-retrying it)
        turns = [
            t
            for t in turns
            if t.total or t.cost_usd or t.context_tokens or t.turn_id in missing or t.turn_id in self.held
        ]
        for t in turns:
            self.held[t.turn_id] = [
                t.input,
                t.cache_read,
                t.cache_write,
                t.output,
                t.cost_usd,
                int(t.timestamp * 1000 + 0.5),
            ]
        return turns

    def _turn(
        self, kind: str, ts: int, info: Mapping[str, object], msg: Mapping[str, object], model: str
    ) -> Turn | None:
        cost = info.get("cost")
        cost_usd = float(cost) if isinstance(cost, int | float) and 0 < cost < 1e6 else None
        if kind == "condense":
            new = count(info, "newContextTokens")
            return Turn(
                agent=self.agent,
                session_id=self.task_id,
                turn_id=str(ts),
                model=model,  # the condensing profile is not recorded: the task's model
                timestamp=ts / 1000.0,
                project=self.project,
                cost_usd=cost_usd if cost_usd is not None else (0.0 if new else None),
                context_tokens=new,  # Roo's own gauge after a condense
                sidechain=not new,
            )
        inp, cr, cw, out = self._counts(info, ts, msg)
        if kind == "request" and info.get("usageMissing") is True:
            # Kilo: the request finished but its usage never came: tokens unknown, never $0
            return Turn(
                agent=self.agent,
                session_id=self.task_id,
                turn_id=str(ts),
                model="unknown",
                timestamp=ts / 1000.0,
                project=self.project,
                sidechain=True,
            )
        turn_id = str(ts) if kind == "request" else f"{SUM_MARK}{ts}:{kind}"
        context = inp + cr + cw
        return Turn(
            agent=self.agent,
            session_id=self.task_id,
            turn_id=turn_id,
            model=model,
            timestamp=ts / 1000.0,
            input=inp,
            cache_read=cr,
            cache_write=cw,
            output=out,
            project=self.project,
            # aggregates and requests with no prompt recorded never move the context gauge
            sidechain=kind != "request" or not context,
            cost_usd=cost_usd,
        )

    def _residuals(self, present: set[str], aggregates: list[tuple[Turn, int]]) -> None:
        """A deleted-requests aggregate stands for requests that vanished from the file. Those
        tokwatch already holds (counted before the restore) stay counted; the aggregate keeps only
        what they do not account for, so warm and cold reads give the same totals."""
        vanished = sorted(
            (v[5], k, v) for k, v in self.held.items() if k not in present and type(v[5]) is int
        )
        low = -1
        for t, ts in aggregates:
            covered = [v for vts, _, v in vanished if low < vts < ts]  # type: ignore[operator]
            low = ts
            if not covered:
                continue
            t.input = max(0, t.input - sum(int(v[0]) for v in covered))  # type: ignore[call-overload]
            t.cache_read = max(0, t.cache_read - sum(int(v[1]) for v in covered))  # type: ignore[call-overload]
            t.cache_write = max(0, t.cache_write - sum(int(v[2]) for v in covered))  # type: ignore[call-overload]
            t.output = max(0, t.output - sum(int(v[3]) for v in covered))  # type: ignore[call-overload]
            if t.cost_usd is not None:
                rest = t.cost_usd - sum(float(v[4]) for v in covered if isinstance(v[4], int | float))
                t.cost_usd = rest if rest > 1e-9 and t.total else (0.0 if not t.total else None)


class TaskFolderAgent(Agent):
    """A VS Code extension that keeps Roo-style task folders (`<storage>/tasks/<id>/ui_messages.json`)
    in its `globalStorage` under every VS Code fork, or where its custom-storage setting says.
    A subclass names the extension, the setting, the family its counts follow, and any other
    storage folders."""

    mode = "document"
    sniff_priority = 40
    suffixes = (".json",)
    extension = ""  # the extension id: its globalStorage folder's name
    setting = ""  # its `customStoragePath` setting
    family = ""  # whose counting rules its `tokensIn` follows (`TaskParser`)

    def __init__(self) -> None:
        self._storages: set[Path] | None = None

    def extra_storages(self, home: Path) -> set[Path]:
        return set()

    def _known(self, env: Mapping[str, str], home: Path) -> set[Path]:
        found = {
            *self.extra_storages(home),
            *global_storage(env, home, self.extension),
            *custom_storage(env, home, self.setting),
        }
        self._storages = (self._storages or set()) | found
        return found

    def storages(self) -> set[Path]:
        """Computed on first use too: a backfill worker process never calls `roots()`."""
        if self._storages is None:
            return self._known(os.environ, Path(os.environ.get("HOME") or Path.home()))
        return self._storages

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        return sorted(s / "tasks" for s in self._known(env, home))

    def owns_path(self, path: Path) -> bool:
        if not is_task_file(path):
            return False
        storage = path.parents[2]
        return storage.name == self.extension or storage in self.storages()

    def parser(self, path: Path) -> LogParser:
        return TaskParser(path, self.name, self.family)
