"""Kimi Code (`kimi`, MoonshotAI/kimi-code): `${KIMI_CODE_HOME:-~/.kimi-code}/sessions/<workspace>/<session>/agents/<agent>/wire.jsonl`.

Each line is a flat record `{type, ..., time (ms)}`. A billed request is a `usage.record`:
`{model, usage{inputOther, output, inputCacheRead, inputCacheCreation}, usageScope?, time}`; the
concrete model id of the request is in the `llm.request` that precedes it (`model`, e.g.
`kimi-k2.7-code`; the record's `model` is the alias). `state.json` beside `agents/` names the
work directory.

Traps handled here (docs/agents.md):
* The same step's usage is repeated in `context.append_loop_event` / `step.end`: not read.
* `usageScope: "session"` records are real requests made outside a turn (the full-compaction
  summarizer; Kimi Code's own source records them with that scope): counted, but marked sidechain,
  so their pre-compaction prompt does not move the gauge. A record without a scope is counted.
* Subagents write `agents/agent-<n>/wire.jsonl` (their usage is not repeated in `main`): counted
  in the same session, marked sidechain.
* A fork copies the whole session folder (then may truncate and rewrite the wires): the agent,
  `time`, alias and the four raw counts are the turn id and `Turn.dedup_key`, so copies and
  rewrites count once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from tokwatch.agents.base import Agent, LogParser, as_dict, clamp_count, count, load_object, parse_ts
from tokwatch.core.models import MAX_TS, MIN_TS, Turn
from tokwatch.core.observations import Compaction

_USAGE = ("inputOther", "output", "inputCacheRead", "inputCacheCreation")


def _work_dir(session_dir: Path) -> str:
    try:
        state = orjson.loads((session_dir / "state.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return ""
    wd = state.get("workDir") if isinstance(state, dict) else None
    return wd if isinstance(wd, str) else ""


class KimiCodeParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.agent_id = path.parent.name
        self.session_dir = path.parents[2] if len(path.parents) > 2 else path.parent
        self.session_id = self.session_dir.name
        self.subagent = self.agent_id != "main"
        self.project = _work_dir(self.session_dir)
        self.model = ""  # the concrete model of the latest llm.request
        self.compaction_source = ""  # `full_compaction.begin.source` of the compaction under way

    def state(self) -> dict[str, object]:
        return {"project": self.project, "model": self.model}

    def restore(self, state: Mapping[str, object]) -> None:
        for name in ("project", "model"):
            v = state.get(name)
            if isinstance(v, str) and v:
                setattr(self, name, v)

    def feed(self, line: bytes) -> list[Turn]:
        d = load_object(line)
        kind = d.get("type")
        if kind == "usage.record":
            t = self._usage(d)
            return [t] if t is not None else []
        if kind == "llm.request":
            model = d.get("model")
            if isinstance(model, str) and model:
                self.model = model
        elif kind == "full_compaction.begin":
            source = d.get("source")
            self.compaction_source = source if source in ("manual", "auto") else ""
        elif kind == "context.apply_compaction" and not self.subagent:
            self._compaction(d)
        elif kind == "config.update" and not self.project:
            cwd = d.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.project = cwd
        return []

    def _compaction(self, d: dict[str, object]) -> None:
        """`context.apply_compaction{tokensBefore, tokensAfter, time}`: a compaction mark. Its
        token figures are Kimi's estimates of the compacted messages and of their summary, not
        the whole prompt (system prompt and tools are outside them): kept as logged, and the
        gauge is left to the next request."""
        time = d.get("time")
        stamp = parse_ts(time)

        def tokens(v: object) -> int | None:
            return v if type(v) is int and 0 <= v < 10**12 else None

        self.observe(
            Compaction(
                "kimi-code",
                self.session_id,
                repr(time),
                stamp if MIN_TS <= stamp <= MAX_TS else 0.0,
                self.compaction_source,
                tokens(d.get("tokensBefore")),
                tokens(d.get("tokensAfter")),
            )
        )
        self.compaction_source = ""

    def _usage(self, d: dict[str, object]) -> Turn | None:
        usage = as_dict(d.get("usage"))
        inp = clamp_count(usage, "inputOther")
        out = count(usage, "output")
        cache_read = count(usage, "inputCacheRead")
        cache_write = count(usage, "inputCacheCreation")
        if not (inp or out or cache_read or cache_write):
            return None
        alias = d.get("model")
        model = self.model or (alias if isinstance(alias, str) and alias else "unknown")
        if model.startswith("kimi-code/"):
            model = model[len("kimi-code/") :]
        time = d.get("time")
        key = f"{self.agent_id}|{time!r}|{alias}|" + "|".join(str(usage.get(k)) for k in _USAGE)
        stamp = parse_ts(time)
        compaction = d.get("usageScope") == "session"
        return Turn(
            agent="kimi-code",
            session_id=self.session_id,
            turn_id=key,
            model=model,
            timestamp=stamp if MIN_TS <= stamp <= MAX_TS else 0.0,
            input=inp,
            cache_read=cache_read,
            cache_write=cache_write,
            output=out,
            project=self.project,
            sidechain=self.subagent or compaction,
            dedup_key=key,
        )


class KimiCode(Agent):
    name = "kimi-code"
    needles = (
        b'"usage.record"',
        b'"llm.request"',
        b'"config.update"',
        b'"full_compaction.begin"',
        b'"context.apply_compaction"',
    )
    provider = "moonshotai"
    sniff_priority = 46
    suffixes = (".jsonl",)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        custom = env.get("KIMI_CODE_HOME", "").strip()
        base = Path(os.path.expanduser(custom)) if custom else home / ".kimi-code"
        return [base / "sessions"]

    def owns_path(self, path: Path) -> bool:
        return path.name == "wire.jsonl" and path.parent.parent.name == "agents"

    def sniff(self, head: bytes) -> bool:
        return b'"protocol_version"' in head and (
            b'"usage.record"' in head or b'"config.update"' in head or b'"turn.prompt"' in head
        )

    def parser(self, path: Path) -> LogParser:
        return KimiCodeParser(path)


AGENT = KimiCode()
