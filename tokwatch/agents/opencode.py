"""OpenCode: SQLite `opencode.db` (or `opencode-<channel>.db`) under `${XDG_DATA_HOME:-~/.local/share}/opencode`.

From v1.2 OpenCode keeps sessions in a SQLite database (WAL mode) with tables
`session(id, directory, parent_id, ...)` and `message(id, session_id, time_created, time_updated,
data)`; `data` is the message JSON minus `id`/`sessionID`. Older versions wrote one JSON file per
message: `storage/message/<sessionID>/<messageID>.json` (the same JSON with `id`/`sessionID`).

An assistant message is one model request (OpenCode creates a new assistant message per step):
`modelID`, `providerID`, `cost` (USD), `tokens{input, output, reasoning, cache{read, write}, total?}`,
`time{created, completed?}`, `path{cwd, root}`. The row is rewritten while the request streams and
once more when it finishes: its latest `data` replaces the earlier numbers (turn_id = message id).

Traps handled here (docs/agents.md):
* The database is opened read-only for each read and closed right after (no transaction is held);
  `database is locked`, a missing table mid-migration or a torn read yields nothing and is retried
  on the next change. Rows are found by `time_updated` above a watermark kept in the parser state
  (recent rows by rowid on every change, the whole table every FULL_SCAN_SECONDS), and messages
  still streaming are re-read by id until they complete.
* `tokens.input` already excludes the cache. `tokens.output` EXCLUDES `tokens.reasoning` in current
  OpenCode (`output = outputTokens - reasoningTokens`, reasoning billed on top at the output rate);
  versions before that stored the provider's output, which for OpenAI-style providers already held
  the reasoning. `tokens.total` (the provider's total) tells the two apart when present.
* The same message can exist both as a legacy JSON file and as a row after OpenCode migrated it:
  both give the same (session, message id) key, so it is counted once.
* A fork (`Session.fork`) copies every earlier message into the new session under NEW message ids
  with the same `time.created`, model and tokens: `Turn.dedup_key` (those values) counts each
  request once, in the first session seen with it.

Kilo CLI (`kilo.py`) is an OpenCode fork with the same tables: it reuses these parsers and this
agent class with its own names (`app`, `db_env`, `db_names`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

import orjson

from tokwatch.agents._sqlite import connect_ro, read_database
from tokwatch.agents.base import Agent, BadLine, LogParser, as_dict, count, load_object, parse_ts
from tokwatch.core.models import Turn
from tokwatch.core.tailer import Cursor

#: Rows updated this long before the watermark are read again (writers commit out of order).
SLACK_MS = 10_000
#: On an ordinary change only the newest rows (by rowid) are searched for updates ...
RECENT_ROWS = 2_000
#: ... and the whole table every this often (a rewrite of an old message).
FULL_SCAN_SECONDS = 30.0
#: Messages still streaming, re-read by id on every change until they complete.
MAX_PENDING = 256


def message_turn(
    d: Mapping[str, object], msg_id: str, session_id: str, project: str = "", agent: str = "opencode"
) -> Turn | None:
    """An assistant message's JSON as a turn; None for user messages and requests not yet counted."""
    if d.get("role") != "assistant":
        return None
    tokens = d.get("tokens")
    if tokens is None:
        return None
    tokens = as_dict(tokens)
    cache = tokens.get("cache")
    cache = as_dict(cache) if cache is not None else {}
    inp = count(tokens, "input")
    out = count(tokens, "output")
    reasoning = count(tokens, "reasoning")
    cache_read = count(cache, "read")
    cache_write = count(cache, "write")
    total = tokens.get("total")
    if reasoning and type(total) is int and total == inp + cache_read + cache_write + out:
        output = out  # an older build that stored the provider's output, reasoning included
    else:
        output = out + reasoning
    if not (inp or cache_read or cache_write or output):
        return None
    path = d.get("path")
    if isinstance(path, dict):
        cwd = path.get("cwd") or path.get("root")
        if not project and isinstance(cwd, str):
            project = cwd
    model = d.get("modelID")
    times = d.get("time")
    created = times.get("created") if isinstance(times, dict) else None
    cost = d.get("cost")
    # 0 also means "subscription" or "free": only a positive stored cost is the agent's own price.
    extra = {"cost_usd": float(cost)} if isinstance(cost, int | float) and cost > 0 else {}
    # A fork copies the message under a new id with these values unchanged (Kilo zeroes its cost).
    dedup = (
        f"{created}|{model}|{inp}|{out}|{reasoning}|{cache_read}|{cache_write}"
        if type(created) is int and created > 0
        else ""
    )
    return Turn(
        agent=agent,
        session_id=session_id,
        turn_id=msg_id,
        model=model if isinstance(model, str) and model else "unknown",
        timestamp=parse_ts(created),
        input=inp,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=min(reasoning, output),
        project=project,
        dedup_key=dedup,
        **extra,  # type: ignore[arg-type]
    )


class OpenCodeJsonParser(LogParser):
    """Legacy `storage/message/<sessionID>/<messageID>.json`: one message per file, rewritten in place.

    Also reads the `{info, parts}` shape OpenCode's API and exports use (`info` is the message).
    """

    def __init__(self, path: Path, agent: str = "opencode") -> None:
        super().__init__(path)
        self.agent = agent

    def parse_document(self, data: bytes) -> list[Turn]:
        d = load_object(data)
        info = d.get("info")
        if isinstance(info, dict):
            d = info
        mid = d.get("id")
        sid = d.get("sessionID")
        parent = self.path.parent.name
        t = message_turn(
            d,
            mid if isinstance(mid, str) and mid else self.path.stem,
            sid if isinstance(sid, str) and sid else parent,
            agent=self.agent,
        )
        return [t] if t else []


class OpenCodeDbParser(LogParser):
    """The SQLite database: read-only queries for what changed since the watermark."""

    def __init__(self, path: Path, agent: str = "opencode") -> None:
        super().__init__(path)
        self.agent = agent
        self.watermark = 0  # the largest time_updated (ms) read so far
        self.pending: list[str] = []  # assistant messages not completed when last read
        self.projects: dict[str, str] = {}  # session id -> its directory
        self.full_scan_at = 0.0  # monotonic time of the last whole-table scan; 0 = never

    def state(self) -> dict[str, object]:
        return {"watermark": self.watermark, "pending": list(self.pending)}

    def restore(self, state: Mapping[str, object]) -> None:
        w = state.get("watermark")
        self.watermark = w if type(w) is int and w >= 0 else 0
        pending = state.get("pending")
        self.pending = (
            [p for p in pending if isinstance(p, str)][-MAX_PENDING:] if isinstance(pending, list) else []
        )
        self.full_scan_at = 0.0

    def parse_document(self, data: bytes) -> list[Turn]:
        raise NotImplementedError("a database is queried, not parsed")

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        return read_database(self.path, cursor, self._read)

    def _read(self) -> list[Turn]:
        rows, projects = self._fetch()
        self.projects.update(projects)
        return self._turns(rows)

    # ------------------------------------------------------------------ queries
    def _fetch(self) -> tuple[list[tuple[str, str, int, object]], dict[str, str]]:
        con = connect_ro(self.path)
        try:
            cols = "id, session_id, time_updated, data FROM message"
            assistant = "instr(data, '\"assistant\"') > 0"
            since = self.watermark - SLACK_MS
            now = time.monotonic()
            if not self.full_scan_at or now - self.full_scan_at >= FULL_SCAN_SECONDS:
                rows = con.execute(
                    f"SELECT {cols} WHERE time_updated >= ? AND {assistant}", (since,)
                ).fetchall()
                self.full_scan_at = now
            else:
                top = con.execute("SELECT max(rowid) FROM message").fetchone()[0] or 0
                rows = con.execute(
                    f"SELECT {cols} WHERE rowid > ? AND time_updated >= ? AND {assistant}",
                    (top - RECENT_ROWS, since),
                ).fetchall()
            seen = {r[0] for r in rows}
            wanted = [p for p in self.pending if p not in seen]
            found: set[str] = set()
            for chunk in _chunks(wanted, 500):
                marks = ",".join("?" * len(chunk))
                more = con.execute(f"SELECT {cols} WHERE id IN ({marks})", chunk).fetchall()
                found.update(r[0] for r in more)
                rows.extend(more)
            # a pending message that is gone (deleted session) stops being pending
            gone = set(wanted) - found
            if gone:
                self.pending = [p for p in self.pending if p not in gone]
            projects = self._projects(con, {r[1] for r in rows} - self.projects.keys())
        finally:
            con.close()
        return rows, projects

    @staticmethod
    def _projects(con: sqlite3.Connection, sessions: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            for chunk in _chunks(sorted(s for s in sessions if isinstance(s, str)), 500):
                marks = ",".join("?" * len(chunk))
                for sid, directory in con.execute(
                    f"SELECT id, directory FROM session WHERE id IN ({marks})", chunk
                ):
                    if isinstance(directory, str):
                        out[sid] = directory
        except sqlite3.Error:
            pass  # no session table (yet): the message's own path.cwd names the project
        return out

    def _turns(self, rows: list[tuple[str, str, int, object]]) -> list[Turn]:
        turns: list[Turn] = []
        pending = dict.fromkeys(self.pending)
        for mid, sid, updated, data in rows:
            if type(updated) is int and updated > self.watermark:
                self.watermark = updated
            if not isinstance(mid, str) or not isinstance(sid, str) or not isinstance(data, str | bytes):
                continue
            try:
                d = orjson.loads(data)
                if not isinstance(d, dict) or d.get("role") != "assistant":
                    continue
                times = d.get("time")
                if isinstance(times, dict) and times.get("completed"):
                    pending.pop(mid, None)
                else:
                    pending[mid] = None
                t = message_turn(d, mid, sid, self.projects.get(sid, ""), self.agent)
            except (orjson.JSONDecodeError, BadLine):
                continue  # one torn or odd row must not hide the others
            if t is not None:
                turns.append(t)
        self.pending = list(pending)[-MAX_PENDING:]
        return turns


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class OpenCode(Agent):
    name = "opencode"
    mode = "document"
    sniff_priority = 40
    suffixes = (".db", ".json")
    #: The folder under `${XDG_DATA_HOME:-~/.local/share}` and the variable naming another database.
    app: ClassVar[str] = "opencode"
    db_env: ClassVar[str] = "OPENCODE_DB"
    #: Database file names: the release channels' and `<app>-<channel>.db`.
    db_names: ClassVar[re.Pattern[str]] = re.compile(r"^opencode(-[A-Za-z0-9._-]+)?\.db$")
    compact_rule = (
        "the window less min(the model's output limit, 32k) (OpenCode 1.2+; a 32k+ output limit assumed)"
    )

    def compact_threshold(self, model: str, window: int) -> int | None:
        return window - 32_000 if window > 32_000 else None

    def __init__(self) -> None:
        self._databases: set[Path] = set()  # OPENCODE_DB overrides: databases with any name

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        xdg = env.get("XDG_DATA_HOME", "").strip()
        data = (Path(os.path.expanduser(xdg)) if xdg else home / ".local" / "share") / self.app
        dbs = [data / f"{self.app}.db"]
        with contextlib.suppress(OSError):
            dbs += sorted(p for p in data.glob("*.db") if p not in dbs and self._is_db(p))
        custom = env.get(self.db_env, "").strip()
        if custom and custom != ":memory:":
            p = Path(os.path.expanduser(custom))
            p = p if p.is_absolute() else data / p
            self._databases.add(p)
            dbs.append(p)
        # Files, not the folder: storage/part/ and snapshot/ hold many files that are not logs.
        return [*dbs, data / "storage" / "message"]

    def _is_db(self, path: Path) -> bool:
        return bool(self.db_names.match(path.name)) or path in self._databases

    def owns_path(self, path: Path) -> bool:
        if path.suffix == ".json":
            return (
                path.name.startswith("msg_")
                and path.parent.name.startswith("ses_")
                and path.parent.parent.name == "message"
            )
        return self._is_db(path)

    def sniff(self, head: bytes) -> bool:
        # A message JSON (bare, or the API's {info, parts}); never a part or session file.
        return (
            b'"sessionID"' in head
            and b'"role"' in head
            and (b'"modelID"' in head or b'"providerID"' in head)
            and not head.startswith(b"SQLite format 3\x00")
        )

    def companion_of(self, path: Path) -> Path | None:
        name = path.name
        if name.endswith("-wal"):
            main = path.with_name(name[: -len("-wal")])
            if self._is_db(main):
                return main
        return None

    def is_document(self, path: Path) -> bool:
        return True

    def parser(self, path: Path) -> LogParser:
        if path.suffix == ".json":
            return OpenCodeJsonParser(path, self.name)
        return OpenCodeDbParser(path, self.name)


AGENT = OpenCode()
