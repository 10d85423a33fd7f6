"""OpenClaw: pi's transcript format, per agent, in JSONL files and (newer) a SQLite store.

Where (`<state>` = `$OPENCLAW_STATE_DIR`, else `~/.openclaw`, a profile's `~/.openclaw-<name>`,
or a legacy `~/.clawdbot`, `~/.moldbot`, `~/.moltbot`; `~` is `$OPENCLAW_HOME` when set):
* `<state>/agents/<agentId>/sessions/<sessionId>.jsonl` (also `-topic-<thread>.jsonl`), with
  `.jsonl.reset.<time>` / `.jsonl.deleted.<time>` archives (`.zst`: the whole file zstd-compressed)
  and `.checkpoint.<uuid>.jsonl` copies taken before a compaction;
* `<state>/agents/<agentId>/agent/openclaw-agent.sqlite` (WAL): `transcript_events(session_id, seq,
  event_json | event_zstd + event_utf8_bytes, created_at)`, one pi transcript line per row, large
  rows zstd-compressed; `session_transcript_archives` holds reset/deleted generations.
* Codex-harness runs keep Codex's own rollouts in `<agentDir>/codex-home/sessions/` (or the
  user's Codex home): those are Codex files, counted by the Codex plug-in.

Traps handled here (docs/agents.md):
* The same request can be in the live file, a checkpoint copy, a reset/deleted archive, the SQLite
  row, another session's fork copy: pi's key (`pi.Transcript`) is the turn id and the dedup key.
* Bookkeeping rows are not requests: `api == "openclaw-transcript"`, provider `openclaw` with
  model `delivery-mirror` / `gateway-injected`, message-tool and delivery mirrors, Codex
  `native-history` imports.
* A Codex-harness turn is mirrored into the transcript (`idempotencyKey` starting
  `codex-app-server:<threadId>:`): when Codex's rollout for that thread is on disk, the rollout is
  the per-request record and the mirror is skipped; without it the mirror is kept (a lower bound).
* The SQLite rows are read per session: a session whose row count, last `seq` or last rowid moved
  is read from its last `seq` when rows were only appended, else whole (a rewrite deletes and
  re-inserts rows); re-reads are harmless because turns are keyed by content.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from tokwatch.agents._sqlite import columns, connect_ro, has_table, read_database
from tokwatch.agents.base import Agent, BadLine, LogParser, load_object
from tokwatch.agents.pi import Transcript, TranscriptParser, is_pi_header
from tokwatch.core.models import Turn
from tokwatch.core.tailer import Cursor

DB_NAME = "openclaw-agent.sqlite"
_ARCHIVE = re.compile(r"\.jsonl\.(reset|deleted)\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(\.\d{3})?Z(\.zst)?$")
_BOOKKEEPING_MODELS = frozenset({"delivery-mirror", "gateway-injected"})
#: OpenClaw compresses rows of at most 4 MiB; an archive is a whole transcript.
MAX_ROW_BYTES = 4 << 20
MAX_ARCHIVE_BYTES = 512 << 20
#: The per-session scan runs at least this often (see `OpenClawDbParser._read`).
FULL_SCAN_SECONDS = 30.0

_rollouts_found: set[tuple[str, str]] = set()  # (agent dir, thread) whose Codex rollout exists


def zstd_decompress(data: bytes, limit: int) -> bytes:
    """One zstd frame, at most `limit` bytes out (a hostile frame cannot exhaust memory)."""
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]
    d = zstd.ZstdDecompressor()
    try:
        out = d.decompress(data, max_length=limit + 1)
    except (zstd.ZstdError, EOFError) as e:
        raise BadLine(f"zstd: {e}") from None
    if len(out) > limit or not d.eof:
        raise BadLine("zstd: truncated or too large")
    return out


def codex_thread(msg: Mapping[str, object]) -> str | None:
    """The Codex thread a Codex-harness mirror row stands for (`codex-app-server:<thread>:...`)."""
    key = msg.get("idempotencyKey")
    if isinstance(key, str) and key.startswith("codex-app-server:"):
        parts = key.split(":")
        if len(parts) > 2 and parts[1]:
            return parts[1]
    return None


def _codex_homes(agent_dir: Path | None) -> list[Path]:
    homes: list[Path] = []
    if agent_dir is not None:
        homes.append(agent_dir / "codex-home")
        with contextlib.suppress(OSError):
            homes += sorted(p for p in (agent_dir / "cli-auth" / "codex").iterdir() if p.is_dir())
    custom = os.environ.get("CODEX_HOME", "").strip()
    homes.append(Path(os.path.expanduser(custom)) if custom else Path.home() / ".codex")
    return homes


def codex_rollout_exists(agent_dir: Path | None, thread: str) -> bool:
    """Is Codex's own rollout for `thread` on disk (agent-scoped Codex home, or the user's)?"""
    key = (str(agent_dir), thread)
    if key in _rollouts_found:
        return True
    name = f"rollout-*{glob.escape(thread)}.jsonl"
    for home in _codex_homes(agent_dir):
        for pattern in (f"sessions/*/*/*/{name}", f"archived_sessions/{name}"):
            if glob.glob(pattern, root_dir=home):
                _rollouts_found.add(key)
                return True
    return False


class OpenClawTranscript(Transcript):
    def __init__(self, session_id: str, project: str = "", agent_dir: Path | None = None) -> None:
        super().__init__("openclaw", session_id, project)
        self.agent_dir = agent_dir

    def skip(self, msg: Mapping[str, object]) -> bool:
        if msg.get("api") == "openclaw-transcript":
            return True
        model = msg.get("model")
        if msg.get("provider") == "openclaw" and model in _BOOKKEEPING_MODELS:
            return True
        if model == "native-history":  # Codex history imported into a new transcript
            return True
        if msg.get("openclawMessageToolMirror") is not None or msg.get("openclawDeliveryMirror") is not None:
            return True
        thread = codex_thread(msg)
        return thread is not None and codex_rollout_exists(self.agent_dir, thread)


def _agent_dir_of_transcript(path: Path) -> Path | None:
    """`<state>/agents/<id>/sessions/<file>` -> `<state>/agents/<id>/agent`."""
    if path.parent.name == "sessions" and len(path.parents) > 2 and path.parents[2].name == "agents":
        return path.parent.parent / "agent"
    return None


def session_from_file(path: Path) -> str:
    """`<sessionId>.jsonl`, `.jsonl.reset.<t>`, `.checkpoint.<uuid>.jsonl` -> the session id (the
    header's `id` replaces it)."""
    name = path.name
    name = name.split(".jsonl", 1)[0]
    return name.split(".checkpoint.", 1)[0]


class OpenClawParser(TranscriptParser):
    """A transcript file (live, topic, checkpoint, or a plain reset/deleted archive)."""

    agent_name = "openclaw"

    def make_transcript(self, path: Path) -> Transcript:
        return OpenClawTranscript(session_from_file(path), agent_dir=_agent_dir_of_transcript(path))


class OpenClawArchiveParser(OpenClawParser):
    """A `.zst` archive: written once, read whole."""

    def parse_document(self, data: bytes) -> list[Turn]:
        text = zstd_decompress(data, MAX_ARCHIVE_BYTES)
        self.transcript = self.make_transcript(self.path)
        return list(_entries(self.transcript, text.splitlines()))


def _entries(transcript: Transcript, lines: Iterable[bytes | str]) -> Iterable[Turn]:
    for line in lines:
        if not line or not line.strip():
            continue
        try:
            t = transcript.entry(load_object(line if isinstance(line, bytes) else line.encode()))
        except (BadLine, orjson.JSONDecodeError):
            continue  # one bad line must not hide the rest of an archive
        if t is not None:
            yield t


class OpenClawDbParser(LogParser):
    """`openclaw-agent.sqlite`: per-session reads of what changed in `transcript_events`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sigs: dict[str, list[int]] = {}  # session -> [rows, last seq, last rowid] as read
        self.sessions: dict[str, OpenClawTranscript] = {}
        self.archives: set[str] = set()  # "<session>|<generation>" archives already read
        self.watermark = 0  # the largest rowid read
        self.top_key = ""  # "<session>|<seq>" of the row at the watermark
        self.full_scan_at = 0.0  # monotonic time of the last per-session scan; 0 = never

    def state(self) -> dict[str, object]:
        return {
            "watermark": self.watermark,
            "top": self.top_key,
            "sigs": self.sigs,
            "sessions": {sid: [t.project, t.model] for sid, t in self.sessions.items()},
            "archives": sorted(self.archives),
        }

    def restore(self, state: Mapping[str, object]) -> None:
        w = state.get("watermark")
        self.watermark = w if type(w) is int and w >= 0 else 0
        top = state.get("top")
        self.top_key = top if isinstance(top, str) else ""
        self.full_scan_at = 0.0
        sigs = state.get("sigs")
        if isinstance(sigs, dict):
            self.sigs = {
                str(k): [int(x) for x in v]
                for k, v in sigs.items()
                if isinstance(v, list) and len(v) == 3 and all(type(x) is int for x in v)
            }
        sessions = state.get("sessions")
        if isinstance(sessions, dict):
            for sid, v in sessions.items():
                if isinstance(v, list) and len(v) == 2:
                    t = self._transcript(str(sid))
                    t.project, t.model = str(v[0] or ""), str(v[1] or "")
        archives = state.get("archives")
        if isinstance(archives, list):
            self.archives = {a for a in archives if isinstance(a, str)}

    def parse_document(self, data: bytes) -> list[Turn]:
        raise NotImplementedError("a database is queried, not parsed")

    def _transcript(self, sid: str) -> OpenClawTranscript:
        t = self.sessions.get(sid)
        if t is None:
            t = self.sessions[sid] = OpenClawTranscript(sid, agent_dir=self.path.parent)
        return t

    def read_changed(self, cursor: Cursor) -> list[Turn] | None:
        return read_database(self.path, cursor, self._read_db)

    def _read_db(self) -> list[Turn]:
        con = connect_ro(self.path)
        try:
            return self._read(con)
        finally:
            con.close()

    def _read(self, con: sqlite3.Connection) -> list[Turn]:
        if not has_table(con, "transcript_events"):
            return []
        cols = "rowid, seq, event_json"
        if "event_zstd" in columns(con, "transcript_events"):
            cols += ", event_zstd, event_utf8_bytes"
        top = con.execute("SELECT max(rowid) FROM transcript_events").fetchone()[0] or 0
        now = time.monotonic()
        # The per-session scan reads the whole primary-key index (~0.2 s for 500k rows): on the
        # first read, every FULL_SCAN_SECONDS, and when the row at the watermark is no longer the
        # one read there (rows deleted from the top and inserted again reuse rowids a watermark
        # would miss). Otherwise new rows are found by rowid above the watermark: rows deleted
        # and inserted again below the top get new, higher rowids.
        full = (
            not self.full_scan_at
            or now - self.full_scan_at >= FULL_SCAN_SECONDS
            or top < self.watermark
            or self._row_key(con, self.watermark) != self.top_key
        )
        fallback = self._window_models(con)
        if full:
            self.full_scan_at = now
            turns = self._scan_sessions(con, cols, fallback)
        else:
            turns = self._scan_new(con, cols, fallback)
        self.watermark = top
        self.top_key = self._row_key(con, top)
        turns.extend(self._archived(con))
        return turns

    @staticmethod
    def _row_key(con: sqlite3.Connection, rowid: int) -> str:
        row = con.execute(
            "SELECT session_id, seq FROM transcript_events WHERE rowid = ?", (rowid,)
        ).fetchone()
        return f"{row[0]}|{row[1]}" if row is not None else ""

    def _scan_sessions(self, con: sqlite3.Connection, cols: str, fallback: dict[str, str]) -> list[Turn]:
        """Every session whose row count, last seq or last rowid moved since it was read."""
        turns: list[Turn] = []
        groups = con.execute(
            "SELECT session_id, count(*), max(seq), max(rowid) FROM transcript_events GROUP BY session_id"
        ).fetchall()
        for sid, n, last_seq, last_row in groups:
            if not isinstance(sid, str) or self.sigs.get(sid) == [n, last_seq, last_row]:
                continue
            turns.extend(self._read_session(con, cols, fallback, sid, [n, last_seq, last_row]))
        return turns

    def _scan_new(self, con: sqlite3.Connection, cols: str, fallback: dict[str, str]) -> list[Turn]:
        """The sessions that have rows above the rowid watermark."""
        sids = {
            sid
            for (sid,) in con.execute(
                "SELECT DISTINCT session_id FROM transcript_events WHERE rowid > ?", (self.watermark,)
            )
            if isinstance(sid, str)
        }
        turns: list[Turn] = []
        for sid in sorted(sids):
            n, last_seq, last_row = con.execute(
                "SELECT count(*), max(seq), max(rowid) FROM transcript_events WHERE session_id = ?", (sid,)
            ).fetchone()
            if self.sigs.get(sid) != [n, last_seq, last_row]:
                turns.extend(self._read_session(con, cols, fallback, sid, [n, last_seq, last_row]))
        return turns

    def _read_session(
        self, con: sqlite3.Connection, cols: str, fallback: dict[str, str], sid: str, sig: list[int]
    ) -> list[Turn]:
        """A session's rows after the last seq read when rows were only appended, else all of them
        (a rewrite deletes and inserts rows again; re-reading is harmless, turns are keyed by
        content)."""
        n, last_seq, last_row = sig
        old = self.sigs.get(sid)
        rows = None
        if old is not None and n > old[0] and last_seq > old[1]:
            rows = con.execute(
                f"SELECT {cols} FROM transcript_events WHERE session_id = ? AND seq > ? ORDER BY seq",
                (sid, old[1]),
            ).fetchall()
            if old[0] + len(rows) != n or max(r[0] for r in rows) != last_row:
                rows = None  # not a pure append
        if rows is None:
            rows = con.execute(
                f"SELECT {cols} FROM transcript_events WHERE session_id = ? ORDER BY seq", (sid,)
            ).fetchall()
        t = self._transcript(sid)
        if not t.model and sid in fallback:
            t.model = fallback[sid]
        self.sigs[sid] = sig
        return list(_entries(t, self._decoded(rows)))

    @staticmethod
    def _decoded(rows: list[tuple[object, ...]]) -> Iterable[bytes | str]:
        for row in rows:
            text = row[2]
            if isinstance(text, str):
                yield text
            elif len(row) > 3 and isinstance(row[3], bytes):
                size = row[4]
                if type(size) is not int or not 0 < size <= MAX_ROW_BYTES:
                    continue
                try:
                    data = zstd_decompress(row[3], size)
                except BadLine:
                    continue
                if len(data) == size:
                    yield data

    @staticmethod
    def _window_models(con: sqlite3.Connection) -> dict[str, str]:
        """The model each session window last ran: for events that name none."""
        if not has_table(con, "session_windows"):
            return {}
        try:
            return {
                sid: model
                for sid, model in con.execute("SELECT session_id, model FROM session_windows")
                if isinstance(sid, str) and isinstance(model, str) and model
            }
        except sqlite3.Error:
            return {}

    def _archived(self, con: sqlite3.Connection) -> list[Turn]:
        """Reset/deleted generations kept as blobs (their `.jsonl.reset.*` file may not exist)."""
        if not has_table(con, "session_transcript_archives"):
            return []
        turns: list[Turn] = []
        for sid, gen in con.execute(
            "SELECT session_id, generation FROM session_transcript_archives"
        ).fetchall():
            mark = f"{sid}|{gen}"
            if mark in self.archives or not isinstance(sid, str):
                continue
            row = con.execute(
                "SELECT encoding, archive_blob FROM session_transcript_archives WHERE session_id = ? AND generation = ?",
                (sid, gen),
            ).fetchone()
            self.archives.add(mark)
            encoding, blob = row if row is not None else (None, None)
            if not isinstance(blob, bytes):
                continue
            try:
                data = zstd_decompress(blob, MAX_ARCHIVE_BYTES) if encoding == "zstd" else blob
            except BadLine:
                continue
            t = OpenClawTranscript(sid, agent_dir=self.path.parent)
            turns.extend(_entries(t, data.splitlines()))
        return turns


def state_dirs(env: Mapping[str, str], home: Path) -> list[Path]:
    """OpenClaw's state folders: the named one, the active profile's, the default, any other
    profile (`~/.openclaw-<name>`) and the legacy names, as OpenClaw resolves them."""
    base = Path(os.path.expanduser(env["OPENCLAW_HOME"])) if env.get("OPENCLAW_HOME", "").strip() else home

    def expand(p: str) -> Path:
        p = p.strip()
        if p == "~" or p.startswith("~/"):
            return base / p[2:]
        return Path(p)

    out: list[Path] = []
    for var in ("OPENCLAW_STATE_DIR", "CLAWDBOT_STATE_DIR"):
        if env.get(var, "").strip():
            out.append(expand(env[var]))
    profile = env.get("OPENCLAW_PROFILE", "").strip()
    if profile and profile != "default":
        out.append(base / f".openclaw-{profile}")
    out.append(base / ".openclaw")
    with contextlib.suppress(OSError):
        out += sorted(p for p in base.glob(".openclaw-*") if p.is_dir())
    for legacy in (".clawdbot", ".moldbot", ".moltbot"):
        if (base / legacy).is_dir():
            out.append(base / legacy)
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


class OpenClaw(Agent):
    name = "openclaw"
    needles = (b'"assistant"', b'"session"', b'"model_change"', b"model-snapshot")
    sniff_priority = 44  # before pi: an OpenClaw transcript is also a pi transcript
    suffixes = (".jsonl", ".sqlite", "Z", ".zst")

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        """Each agent's transcript folder and database, and its Codex homes (read by the Codex
        plug-in); not the whole agent folder, which holds workspaces and dependency trees."""
        roots: list[Path] = []
        for state in state_dirs(env, home):
            agents = state / "agents"
            try:
                ids = sorted(p.name for p in agents.iterdir() if p.is_dir())
            except OSError:
                ids = []
            for agent_id in ids or ["main"]:
                a = agents / agent_id
                roots += [a / "sessions", a / "agent" / DB_NAME]
                for home_dir in _codex_homes(a / "agent")[:-1]:
                    roots += [home_dir / "sessions", home_dir / "archived_sessions"]
        return roots

    def owns_path(self, path: Path) -> bool:
        name = path.name
        if name == DB_NAME:
            return True
        if _agent_dir_of_transcript(path) is None:
            return False
        if name.endswith(".jsonl"):
            return not name.endswith(".trajectory.jsonl")
        return bool(_ARCHIVE.search(name))

    def sniff(self, head: bytes) -> bool:
        return is_pi_header(head) and (
            b'"version":4' in head or b'"provider":"openclaw"' in head or b"model-snapshot" in head
        )

    def is_document(self, path: Path) -> bool:
        return path.name.endswith((".zst", ".sqlite"))

    def companion_of(self, path: Path) -> Path | None:
        if path.name == f"{DB_NAME}-wal":
            return path.with_name(DB_NAME)
        return None

    def parser(self, path: Path) -> LogParser:
        if path.name.endswith(".sqlite"):
            return OpenClawDbParser(path)
        if path.name.endswith(".zst"):
            return OpenClawArchiveParser(path)
        return OpenClawParser(path)


AGENT = OpenClaw()
