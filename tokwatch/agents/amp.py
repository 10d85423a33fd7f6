"""Amp (Sourcegraph): `~/.local/share/amp/threads/T-<uuid>.json`, one JSON document per thread.

The thread document (`{v, id, created, title, env, messages[], usageLedger?}`) is REWRITTEN in full
on every update, so it is read whole each time it changes and every turn is re-emitted: the store
replaces turns by id, so only changed messages change anything.

A billed request is an assistant message with `usage{model, inputTokens, outputTokens,
cacheCreationInputTokens, cacheReadInputTokens, totalInputTokens, credits, timestamp?}`
(Anthropic's convention: `inputTokens` EXCLUDES the cache; `totalInputTokens` is the whole prompt).
turn_id = the message's `messageId` (its index in the thread). Older threads kept usage only in
`usageLedger.events[]` (`tokens{input, output}`, no cache split): read when no message has usage.

Amp versions from early 2026 on keep threads on the server only and write no local file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from tokwatch.agents.base import Agent, BadLine, LogParser, count, env_paths, load_object, parse_ts
from tokwatch.core.models import Turn

_THREAD_ID = re.compile(rb'"id"\s*:\s*"T-[0-9a-fA-F]{8}-')
_THREAD_FILE = re.compile(r"^T-[0-9A-Za-z-]+\.json$")


def _project(d: Mapping[str, object]) -> str:
    """The first workspace tree of the thread (`env.initial.trees[0].uri`, a file:// URI)."""
    env = d.get("env")
    initial = env.get("initial") if isinstance(env, dict) else None
    trees = initial.get("trees") if isinstance(initial, dict) else None
    if isinstance(trees, list) and trees and isinstance(trees[0], dict):
        uri = trees[0].get("uri")
        if isinstance(uri, str) and uri:
            return unquote(urlparse(uri).path) if uri.startswith("file:") else uri
        name = trees[0].get("displayName")
        if isinstance(name, str):
            return name
    return ""


class AmpParser(LogParser):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.thread_id = path.stem

    def parse_document(self, data: bytes) -> list[Turn]:
        d = load_object(data)
        tid = d.get("id")
        thread = tid if isinstance(tid, str) and tid else self.thread_id
        created = parse_ts(d.get("created"))
        project = _project(d)
        messages = d.get("messages")
        if messages is not None and not isinstance(messages, list):
            raise BadLine("messages is not a list")
        turns: list[Turn] = []
        self.skipped = 0
        for i, m in enumerate(messages or []):
            if not isinstance(m, dict) or m.get("role") != "assistant":
                continue
            usage = m.get("usage")
            if not isinstance(usage, dict):
                continue
            try:
                t = self._turn(thread, project, created, i, m, usage)
            except BadLine:  # one malformed message: skipped and counted, the rest count
                self.skipped += 1
                continue
            if t is not None:
                turns.append(t)
        if not turns:  # older threads: usage only in the ledger
            turns = self._ledger(thread, project, d.get("usageLedger"))
        return turns

    def _turn(
        self, thread: str, project: str, created: float, index: int, m: dict, usage: dict
    ) -> Turn | None:
        raw_in = count(usage, "inputTokens")
        cache_write = count(usage, "cacheCreationInputTokens")
        cache_read = count(usage, "cacheReadInputTokens")
        total_in = count(usage, "totalInputTokens")
        out = count(usage, "outputTokens")
        if (cache_read or cache_write) and total_in and total_in == raw_in:
            # an OpenAI-style count that already holds the cache
            cache_read = min(cache_read, raw_in)
            cache_write = min(cache_write, raw_in - cache_read)
            raw_in -= cache_read + cache_write
        if not (raw_in or cache_read or cache_write or out):
            return None
        mid = m.get("messageId")
        turn_id = str(mid) if type(mid) is int or (isinstance(mid, str) and mid) else str(index)
        model = usage.get("model")
        ts = parse_ts(usage.get("timestamp")) or parse_ts(m.get("timestamp")) or created
        return Turn(
            agent="amp",
            session_id=thread,
            turn_id=turn_id,
            model=model if isinstance(model, str) and model else "unknown",
            timestamp=ts,
            input=raw_in,
            cache_read=cache_read,
            cache_write=cache_write,
            output=out,
            project=project,
        )

    def _ledger(self, thread: str, project: str, ledger: object) -> list[Turn]:
        events = ledger.get("events") if isinstance(ledger, dict) else None
        if not isinstance(events, list):
            return []
        turns = []
        for i, e in enumerate(events):
            if not isinstance(e, dict):
                continue
            tokens = e.get("tokens")
            if not isinstance(tokens, dict):
                continue
            try:
                inp, out = count(tokens, "input"), count(tokens, "output")
            except BadLine:
                self.skipped += 1
                continue
            if not (inp or out):
                continue
            eid = e.get("id")
            model = e.get("model")
            turns.append(
                Turn(
                    agent="amp",
                    session_id=thread,
                    turn_id=f"ledger:{eid}" if isinstance(eid, str) and eid else f"ledger#{i}",
                    model=model if isinstance(model, str) and model else "unknown",
                    timestamp=parse_ts(e.get("timestamp")),
                    input=inp,
                    output=out,
                    project=project,
                )
            )
        return turns


class Amp(Agent):
    name = "amp"
    mode = "document"
    sniff_priority = 40
    suffixes = (".json",)

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        bases = env_paths(env, "AMP_DATA_HOME") or env_paths(env, "AMP_DATA_DIR")
        if bases is None:
            xdg = env_paths(env, "XDG_DATA_HOME")
            bases = [p / "amp" for p in xdg] if xdg else [home / ".local" / "share" / "amp"]
        return [b / "threads" for b in bases]

    def owns_path(self, path: Path) -> bool:
        return path.parent.name == "threads" and _THREAD_FILE.match(path.name) is not None

    def sniff(self, head: bytes) -> bool:
        # The thread id is among the document's first keys ({"v": .., "id": "T-..", "created": ..}).
        return _THREAD_ID.search(head[:256]) is not None and (b'"messages"' in head or b'"created"' in head)

    def parser(self, path: Path) -> LogParser:
        return AmpParser(path)


AGENT = Amp()
