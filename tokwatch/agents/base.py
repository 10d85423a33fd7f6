"""The plug-in contract every agent module fulfils.

An agent module in `tokwatch.agents` exposes `AGENT`, an `Agent` instance. The rest of tokwatch
only ever talks to agents through this class: where their logs live, which files are theirs, and
how a file's lines (or whole document) become `Turn`s. Adding an agent is one new module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict, Union

import msgspec
import orjson

from tokwatch.core.models import Turn
from tokwatch.core.observations import Observation
from tokwatch.core.tailer import Cursor


class BadLine(ValueError):
    """A line that should have carried usage but is malformed: skipped and counted by the caller."""


class LogParser:
    """Per-file state; one instance per followed file, recreated when the file is truncated/replaced."""

    #: Document agents: how many records (messages) the last `parse_document` skipped as malformed.
    #: One bad message costs only itself; the engine shows the count with the skipped lines.
    skipped: int = 0
    #: What the lines read so far reported besides turns, until `observations()` takes it.
    _observed: list[Observation] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path

    def observe(self, o: Observation) -> None:
        """Report a limit sample, a compaction, a context size or a refused value (not a turn)."""
        if self._observed is None:
            self._observed = []
        self._observed.append(o)

    def observations(self) -> list[Observation]:
        """What was observed since the last call: the reader drains it after each read and the
        store records it with the same batch's turns. Agents that observe nothing never call
        `observe`, and this returns nothing."""
        out = self._observed
        if out is None:
            return []
        self._observed = None
        return out

    def feed(self, line: bytes) -> list[Turn]:
        """Turn one complete JSONL line into zero or more turns; raise `BadLine` when malformed."""
        raise NotImplementedError

    def parse_document(self, data: bytes) -> list[Turn]:
        """Turn a whole rewritten-in-place document into all its turns (document agents only)."""
        raise NotImplementedError

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        """Document agents: the turns after a change (None when the file is gone).

        The default re-reads the whole file; an agent whose store is not a text document (a
        SQLite database) overrides this to query only what changed.
        """
        data = cursor.read_all()
        if data is None:
            return None
        return self.parse_document(data)

    def state(self) -> dict[str, object]:
        """Parser state worth persisting with a byte offset (so a warm start can resume mid-file)."""
        return {}

    def restore(self, state: Mapping[str, object]) -> None:
        return None


class Agent:
    """Static description of one agent's logs."""

    name: ClassVar[str] = ""
    #: "lines": append-only JSONL tailed by byte offset; "document": one JSON rewritten in place.
    #: A document agent may still hold some JSONL files: `is_document(path)` decides per file.
    mode: ClassVar[Literal["lines", "document"]] = "lines"
    #: A line that contains none of these byte strings cannot matter: skipped without parsing.
    needles: ClassVar[tuple[bytes, ...]] = ()
    #: Provider hint for the price lookup.
    provider: ClassVar[str | None] = None
    #: Context window when the log does not say, unless the pricing config overrides it.
    default_context_window: ClassVar[int] = 0
    #: True when that default is our assumption rather than the agent's own figure: views then
    #: mark it (`~272k`).
    window_assumed: ClassVar[bool] = False
    #: Sniffing order among agents (lower first): generic sniffs should go last.
    sniff_priority: ClassVar[int] = 50
    #: File name endings discovery should consider for this agent.
    suffixes: ClassVar[tuple[str, ...]] = (".jsonl", ".json")
    #: How the agent shows itself to an MCP server it starts (`tokwatch mcp`, docs/mcp.md), besides
    #: its `name` as a word of the `clientInfo.name` it sends: environment variables only it sets
    #: for its servers, and those holding its session id and its project folder.
    mcp_marker_env: ClassVar[tuple[str, ...]] = ()
    mcp_session_env: ClassVar[str] = ""
    mcp_project_env: ClassVar[str] = ""

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        """The folders to watch when the user names no paths (they may not exist yet)."""
        return []

    def owns_path(self, path: Path) -> bool:
        """True when the path alone says this agent wrote the file (its layout and file name)."""
        return False

    def sniff(self, head: bytes) -> bool:
        """True when the first bytes of a file look like this agent's log (fallback to owns_path)."""
        return False

    def companion_of(self, path: Path) -> Path | None:
        """A file whose change means a followed file changed (e.g. a SQLite `-wal` -> its database)."""
        return None

    def is_document(self, path: Path) -> bool:
        return self.mode == "document"

    def parser(self, path: Path) -> LogParser:
        raise NotImplementedError

    def context_window(self, model: str, max_prompt: int) -> int:
        """The window for the gauge when the log does not state it."""
        return self.default_context_window

    #: How the agent decides to compact on its own, in words (docs/limits.md has the sources);
    #: empty when tokwatch does not know its rule.
    compact_rule: ClassVar[str] = ""

    def compact_threshold(self, model: str, window: int) -> int | None:
        """The context size (tokens) at which the agent auto-compacts a session of `model` whose
        gauge window is `window`; None when its rule is unknown (the gauge then shows the window)."""
        return None


def env_paths(env: Mapping[str, str], var: str) -> list[Path] | None:
    """An environment variable holding one or more comma-separated folders, `~` expanded."""
    value = env.get(var, "").strip()
    if not value:
        return None
    return [Path(os.path.expanduser(p.strip())) for p in value.split(",") if p.strip()]


#: Latest time a turn may carry: 3000-01-01T00:00:00Z. Every view (any zone, 5-hour blocks, ISO
#: weeks) can represent it, unlike year 9999 plus a block or a zone offset.
MAX_TS = 32503680000.0


def parse_ts(value: object) -> float:
    """ISO-8601 (with Z) or epoch seconds/milliseconds to unix seconds; 0.0 (undated) when absent,
    unreadable or out of range (before 1970 or from year 3000 on).

    Decided here, once, so every view agrees: such a turn still counts (its tokens were billed)
    but its time is unknown, so it lands in the reports' `unknown` row and no day, block or month.
    """
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            return 0.0
    elif isinstance(value, int | float) and value == value and 0 < value < 1e14:
        ts = float(value) / 1000.0 if value > 1e11 else float(value)
    else:
        return 0.0
    return ts if 0.0 < ts < MAX_TS else 0.0


MAX_COUNT = 10**12


def count(d: Mapping[str, object], key: str) -> int:
    """A token count: absent/null is 0; anything but a non-negative int below 10^12 is a bad line."""
    v = d.get(key)
    if v is None:
        return 0
    if type(v) is int and 0 <= v < MAX_COUNT:
        return v
    raise BadLine(f"bad count for {key}: {v!r}")


def clamp_count(d: Mapping[str, object], key: str) -> int:
    """`count` for agents that log a computed difference (pi's `prompt - cached`, Kimi's
    `input_other`): a negative integer is clamped to 0, never a reason to drop the request."""
    v = d.get(key)
    if type(v) is int and v < 0:
        return 0
    return count(d, key)


#: A field a parser reads (a leaf, decoded whole) may be at most this long: usage objects, ids and
#: names are bytes or kilobytes. Longer, the record is malformed.
MAX_FIELD = 1 << 20
#: The fields of a record a parser reads: None for a leaf (decoded whole), or the fields read
#: inside it when it is an object.
Fields = Mapping[str, Union["Fields", None]]


class Record:
    """Decodes only the fields of a JSON object that a parser reads (`Fields`), each exactly as
    `orjson.loads` would; every other value is skipped by msgspec without being built.

    A log line's memory is then bounded by what tokwatch keeps, not by what the line holds: a
    valid 120 MB assistant line of `[{},{},…]` costs little more than its bytes, where building
    it all took 3.8 GB. It is also faster on real logs, whose lines are mostly content nobody
    counts. The whole line is still checked: it must be JSON, an object, and valid UTF-8.

    Lines up to MAX_FIELD are decoded in one pass, the fields read built as they are found. A
    longer line is decoded in two, so that no field read can cost more than MAX_FIELD either:
    first each field as raw bytes (`msgspec.Raw`, no copy), then the fields read, one by one.
    """

    def __init__(self, fields: Fields) -> None:
        self._nested = {k: Record(v) for k, v in fields.items() if v}
        whole = {
            k: Any if not v else self._nested[k]._shape | list | str | int | float | bool | None
            for k, v in fields.items()
        }
        self._shape = TypedDict("Shape", whole, total=False)  # type: ignore[misc, operator]
        self._fast = msgspec.json.Decoder(self._shape)
        raw = TypedDict("RawShape", dict.fromkeys(fields, msgspec.Raw), total=False)  # type: ignore[misc, operator]
        self._decoder = msgspec.json.Decoder(raw)

    def load(self, data: bytes | memoryview) -> dict[str, object]:
        if isinstance(data, bytes) and not data.isascii():
            try:
                data.decode()  # (skipped strings are not checked by msgspec; orjson checked all)
            except UnicodeDecodeError as e:
                raise BadLine(str(e)) from None
        try:
            return self._fast.decode(data) if len(data) <= MAX_FIELD else self._load(data)
        except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError) as e:
            raise BadLine(str(e)) from None

    def _load(self, data: bytes | memoryview) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, raw in self._decoder.decode(data).items():
            view = memoryview(raw)
            inner = self._nested.get(key)
            if inner is not None and view[:1] == b"{":
                out[key] = inner._load(view)
            elif len(view) > MAX_FIELD:
                raise BadLine(f"{key} is {len(view)} bytes long")
            else:
                out[key] = orjson.loads(view)
        return out


def load_object(data: bytes, record: Record | None = None) -> dict[str, object]:
    """One JSON object from a line or document; anything else (not JSON, an array, …) is a BadLine.

    With `record`, only the fields it names are decoded (see `Record`)."""
    if record is not None:
        return record.load(data)
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadLine(str(e)) from None
    if not isinstance(d, dict):
        raise BadLine("not an object")
    return d


def as_dict(v: object) -> dict[str, object]:
    if isinstance(v, dict):
        return v
    raise BadLine(f"expected an object, got {type(v).__name__}")
