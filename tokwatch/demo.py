"""Replay the bundled sample logs into a scratch folder so a first run shows a moving dashboard.

The replayer writes the way the agents do: JSONL files grow by appending whole turns (a Claude
response's streaming duplicates and a Codex re-emitted `token_count` land in one write, so the
dashboard never shows half a turn), and Gemini's single-document `.json` sessions are rewritten
atomically with one more message. Timestamps are shifted so replayed turns look recent.

Stdlib only (plus orjson): the UI imports this, never the other way round.
"""

from __future__ import annotations

import importlib.resources
import itertools
import logging
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

AGENT_DIRS = ("claude", "codex", "gemini")
# A quoted ISO-8601 UTC instant anywhere in a line (top-level `timestamp`, nested thought times, ...).
_TS_RE = re.compile(rb'"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)"')
# Codex's plan windows reset at an epoch second (`"resets_at":1795185600`): moved with the rest.
_RESETS_RE = re.compile(rb'"resets_at":(\d{9,11})\b')
_UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Claude message/request/tool ids: fresh ones keep a cloned session from deduplicating against the original.
_CLAUDE_ID_RE = re.compile(rb"(msg_01|req_011C|toolu_01)[A-Za-z0-9]{16,30}")
_B62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class SamplesMissing(FileNotFoundError):
    """The sample sessions are not installed (a broken or partial installation)."""


def default_source() -> Path:
    """The sample sessions the demo replays, and nothing else.

    An installed package carries them as package data (`tokwatch/sample_logs`, copied from the
    repository's top-level `sample_logs/` when the wheel is built); a checkout (an editable
    install) reads that folder itself.
    """
    packaged = importlib.resources.files("tokwatch").joinpath("sample_logs")
    candidates = [Path(str(packaged))] if isinstance(packaged, Path) else []
    candidates.append(Path(__file__).resolve().parents[1] / "sample_logs")
    for folder in candidates:
        if any((folder / agent).is_dir() for agent in AGENT_DIRS):
            return folder
    raise SamplesMissing("the sample sessions are missing from this installation of tokwatch")


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_ts(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))


def _format_ts(ts: datetime) -> bytes:
    ts = ts.astimezone(UTC)
    return (ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z").encode()


def latest_timestamp(data: bytes) -> datetime | None:
    """The latest ISO timestamp found in `data`, or None."""
    found = [_parse_ts(m.group(1)) for m in _TS_RE.finditer(data)]
    return max(found) if found else None


def shift_timestamps(
    data: bytes, delta: timedelta, floor: datetime | None = None
) -> tuple[bytes, datetime | None]:
    """Move every timestamp in `data` by `delta`, never earlier than `floor`; returns the text and its latest time.

    Works on raw text so everything but the timestamps stays byte-identical to the sample.
    """
    latest: list[datetime] = []

    def repl(m: re.Match[bytes]) -> bytes:
        ts = _parse_ts(m.group(1)) + delta
        if floor is not None and ts < floor:
            ts = floor
        latest.append(ts)
        return b'"' + _format_ts(ts) + b'"'

    out = _TS_RE.sub(repl, data)
    seconds = round(delta.total_seconds())
    out = _RESETS_RE.sub(lambda m: b'"resets_at":%d' % (int(m.group(1)) + seconds), out)
    return out, (max(latest) if latest else None)


def usage_key(record: Any) -> str | None:
    """Which billed turn a parsed log record reports usage for, or None if it reports none.

    Records with the same key are copies of one turn (Claude's streaming duplicates share
    message.id + requestId, Codex re-emits identical totals, Gemini re-appends the same message id),
    so the replayer writes them in one step.
    """
    if not isinstance(record, dict):
        return None
    msg = record.get("message")
    if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
        return f"claude:{msg.get('id')}:{record.get('requestId')}"
    payload = record.get("payload")
    if (
        record.get("type") == "event_msg"
        and isinstance(payload, dict)
        and payload.get("type") == "token_count"
        and isinstance(payload.get("info"), dict)
    ):
        total = payload["info"].get("total_token_usage")
        return "codex:" + orjson.dumps(total, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(record.get("tokens"), dict) and isinstance(record.get("id"), str):
        return f"gemini:{record['id']}"
    return None


def _line_key(line: bytes) -> str | None:
    try:
        return usage_key(orjson.loads(line))
    except orjson.JSONDecodeError:
        return None


def split_units(lines: list[bytes]) -> list[list[bytes]]:
    """Cut JSONL lines into replay units, each ending with (all copies of) one usage-carrying turn.

    Lines before a turn's first copy (user prompt, tool results, progress) belong to that turn's
    unit, as do lines between its copies; lines after the last turn join the last unit, so every unit
    carries usage when the file has any.
    """
    keys = [_line_key(line) for line in lines]
    usage_idx = [i for i, k in enumerate(keys) if k is not None]
    if not usage_idx:
        return [lines] if lines else []
    ends: list[int] = []
    j = 0
    while j < len(usage_idx):
        key, end = keys[usage_idx[j]], usage_idx[j]
        j += 1
        while j < len(usage_idx) and keys[usage_idx[j]] == key:
            end = usage_idx[j]
            j += 1
        ends.append(end)
    ends[-1] = len(lines) - 1
    units, start = [], 0
    for end in ends:
        units.append(lines[start : end + 1])
        start = end + 1
    return units


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` in one rename, as Gemini CLI's readers expect a whole document at any instant."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class _JsonlTrack:
    """An append-only JSONL file being replayed unit by unit."""

    path: Path
    units: list[list[bytes]]
    written: int = 0
    last_ts: datetime | None = None

    @property
    def done(self) -> bool:
        return self.written >= len(self.units)

    def write_history(self, count: int, now: datetime) -> None:
        """Write the first `count` units in one go, shifted so the last written line is `now`."""
        data = b"".join(line + b"\n" for unit in self.units[:count] for line in unit)
        latest = latest_timestamp(data)
        if latest is not None:
            data, self.last_ts = shift_timestamps(data, now - latest)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as f:
            f.write(data)
        self.written = count

    def advance(self, now: datetime) -> None:
        """Append the next unit; its lines keep their spacing and end at `now`, never before earlier lines."""
        data = b"".join(line + b"\n" for line in self.units[self.written])
        latest = latest_timestamp(data)
        if latest is not None:
            data, last = shift_timestamps(data, now - latest, self.last_ts)
            self.last_ts = last or self.last_ts
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
        self.written += 1


@dataclass
class _DocTrack:
    """A single-document Gemini session (`ConversationRecord`) rewritten with one more message per step."""

    path: Path
    meta: dict[str, Any]
    messages: list[dict[str, Any]]
    shown: list[Any] = field(default_factory=list)
    last_ts: datetime | None = None

    @property
    def done(self) -> bool:
        return len(self.shown) >= len(self.messages)

    def _flush(self) -> None:
        doc = {k: v for k, v in self.meta.items() if k != "messages"}
        if self.last_ts is not None:
            doc["lastUpdated"] = _format_ts(self.last_ts).decode()
        doc["messages"] = self.shown
        # Gemini CLI writes JSON.stringify(record, null, 2).
        _write_atomic(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def write_history(self, count: int, now: datetime) -> None:
        # The stored lastUpdated is the END of the whole session: leave it out, it is set from what is shown.
        meta = {k: v for k, v in self.meta.items() if k != "lastUpdated"}
        head = orjson.dumps({"meta": meta, "messages": self.messages[:count]})
        latest = latest_timestamp(head)
        delta = now - latest if latest is not None else timedelta(0)
        shifted, self.last_ts = shift_timestamps(head, delta)
        parsed = orjson.loads(shifted)
        self.meta, self.shown = parsed["meta"], parsed["messages"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._flush()

    def advance(self, now: datetime) -> None:
        raw = orjson.dumps(self.messages[len(self.shown)])
        latest = latest_timestamp(raw)
        if latest is not None:
            raw, last = shift_timestamps(raw, now - latest, self.last_ts)
            self.last_ts = last or self.last_ts
        self.shown.append(orjson.loads(raw))
        self._flush()


_Track = _JsonlTrack | _DocTrack


class DemoReplayer:
    """Writes sample sessions into `dest` progressively."""

    def __init__(
        self,
        dest: Path,
        source: Path | None = None,
        interval: float = 1.5,
        history_fraction: float = 0.6,
        loop: bool = True,
    ) -> None:
        self.dest = Path(dest)
        self.source = Path(source) if source is not None else default_source()
        self.interval = interval
        self.history_fraction = min(max(history_fraction, 0.0), 1.0)
        self.loop = loop
        self._tracks: list[_Track] = []
        self._cursor = 0
        self._prepared = False
        self._templates: itertools.cycle[Path] | None = None

    def roots(self) -> list[Path]:
        """The agent folders under `dest` (stand-ins for ~/.claude, ~/.codex, ~/.gemini)."""
        return [self.dest / name for name in AGENT_DIRS if (self.source / name).is_dir()]

    def prepare(self) -> list[Path]:
        """Copy the layout under `dest`, write the first `history_fraction` of every session; return the roots.

        Raises `SamplesMissing` when there is nothing to replay: the demo never falls back to
        watching anything else (an empty list of roots would mean "every agent's home").
        """
        if not self.roots():
            raise SamplesMissing(f"no sample sessions in {self.source}")
        now = _now()
        self._tracks = []
        self._cursor = 0
        for name in AGENT_DIRS:
            src_root = self.source / name
            if not src_root.is_dir():
                continue
            (self.dest / name).mkdir(parents=True, exist_ok=True)
            for src in sorted(p for p in src_root.rglob("*") if p.is_file()):
                target = self.dest / src.relative_to(self.source)
                track = self._load(src, target)
                if track is None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                    continue
                track.write_history(self._history_count(track), now)
                self._tracks.append(track)
        self._prepared = True
        return self.roots()

    def step(self) -> bool:
        """Append the next turn to one file (round-robin); False once all is written and `loop` is off.

        With `loop` on, a finished replay starts a fresh Claude session so the demo never runs dry.
        """
        if not self._prepared:
            self.prepare()
        now = _now()
        n = len(self._tracks)
        for offset in range(n):
            idx = (self._cursor + offset) % n
            track = self._tracks[idx]
            if not track.done:
                track.advance(now)
                self._cursor = idx + 1
                return True
        if not self.loop:
            return False
        fresh = self._new_claude_session()
        if fresh is None:
            return False
        self._tracks = [fresh]
        self._cursor = 0
        fresh.advance(now)
        self._cursor = 1
        return True

    def run(self, stop: threading.Event) -> None:
        """Call step() every `interval` seconds until `stop` is set (or, without loop, until all is written)."""
        try:
            while not stop.is_set():
                if not self.step():
                    return
                stop.wait(self.interval)
        except OSError as exc:  # the scratch folder vanished (app exiting): stop quietly
            log.warning("demo replay stopped: %s", exc)

    # ----------------------------------------------------------------------------------------------

    def _load(self, src: Path, target: Path) -> _Track | None:
        if src.suffix == ".jsonl":
            lines = [ln for ln in src.read_bytes().splitlines() if ln.strip()]
            return _JsonlTrack(target, split_units(lines))
        if src.suffix == ".json":
            try:
                doc = orjson.loads(src.read_bytes())
            except orjson.JSONDecodeError:
                return None
            if isinstance(doc, dict) and isinstance(doc.get("messages"), list):
                meta = {k: v for k, v in doc.items() if k != "messages"}
                return _DocTrack(target, meta, doc["messages"])
        return None

    def _history_count(self, track: _Track) -> int:
        """How many units (or messages) make up the first `history_fraction` of a file."""
        if isinstance(track, _DocTrack):
            return int(len(track.messages) * self.history_fraction)
        budget = self.history_fraction * sum(len(u) for u in track.units)
        count, used = 0, 0
        for unit in track.units:
            if used + len(unit) > budget:
                break
            used += len(unit)
            count += 1
        if count == 0 and self.history_fraction > 0 and track.units:
            count = 1
        return count

    def _new_claude_session(self) -> _JsonlTrack | None:
        """Clone a sample Claude session under a new sessionId (ids refreshed) to replay from scratch."""
        if self._templates is None:
            projects = self.source / "claude" / "projects"
            found = sorted(p for p in projects.glob("*/*.jsonl")) if projects.is_dir() else []
            if not found:
                return None
            self._templates = itertools.cycle(found)
        template = next(self._templates)
        session_id = str(uuid.uuid4())
        mapping: dict[bytes, bytes] = {template.stem.encode(): session_id.encode()}

        def new_uuid(m: re.Match[bytes]) -> bytes:
            return mapping.setdefault(m.group(0), str(uuid.uuid4()).encode())

        def new_id(m: re.Match[bytes]) -> bytes:
            fresh = (
                m.group(1)
                + "".join(_B62[b % 62] for b in os.urandom(len(m.group(0)) - len(m.group(1)))).encode()
            )
            return mapping.setdefault(m.group(0), fresh)

        data = _CLAUDE_ID_RE.sub(new_id, _UUID_RE.sub(new_uuid, template.read_bytes()))
        lines = [ln for ln in data.splitlines() if ln.strip()]
        target = self.dest / template.relative_to(self.source).with_name(f"{session_id}.jsonl")
        return _JsonlTrack(target, split_units(lines))
