"""The folded sessions in memory, written through to the ledger: every turn counted once.

Turns are keyed by (agent, session, turn_id). Seeing a key again (a streaming duplicate, a re-read
after truncation, a re-appended Gemini message, a sidechain replay) replaces the old numbers: the
old turn is subtracted and the new one added, so totals stay exact without rescans. A turn with a
`dedup_key` is counted once per agent across sessions (fork copies).

`apply` is the one write path: it reads the previous copies of the batch's turns from the ledger,
folds the changes into the affected sessions and commits turns, sessions and the files' cursors
in ONE transaction. Only then does it swap the new session objects in: a reader (holding
`lock`) never sees half a batch, and a failed transaction leaves memory as it was. Another process
may have written to the same sessions meanwhile: their `version` in the ledger tells, and such a
session is read back from the ledger before the batch is folded into it.

The batch's observations (`core/observations.py`: limit samples, compactions, context sizes that
are not requests) are recorded in the same transaction (`core/ledger_obs.py`).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from tokwatch.core import ledger_obs
from tokwatch.core.ledger import (
    INSERT_TURN,
    PRUNED_SUMS,
    SUMS_SINCE,
    TURN_COLUMNS,
    UPSERT_TURN,
    FileRecord,
    Ledger,
    SessionRow,
    sessions_from,
    turn_from_row,
    turn_row,
)
from tokwatch.core.models import Session, Tokens, Turn, add_turn
from tokwatch.core.observations import Compaction, ContextSize, LimitSample, Observation, Refused
from tokwatch.core.pricing import Pricer

log = logging.getLogger(__name__)

RECENT = 60
SessionKey = tuple[str, str]
_CHUNK = 400  # bound parameters per `IN (...)` query


@dataclass(frozen=True, slots=True)
class TurnChange:
    """A turn added, updated or new to this process, with its cost and its session's figures
    right after it (what `watch --jsonl` prints for it)."""

    turn: Turn
    cost: int | None
    totals: Tokens
    project: str
    context_used: int
    context_window: int
    context_window_assumed: bool


@dataclass(slots=True)
class Changes:
    """What one `apply` changed: the turns added, updated or new to this process (in order, each
    key once with its final numbers) and the sessions they changed, as they now stand. Session
    objects handed out are never changed afterwards: a later batch folds into a copy."""

    turns: list[TurnChange] = field(default_factory=list)
    sessions: dict[SessionKey, Session] = field(default_factory=dict)
    #: limit samples new to the ledger (this batch's, or another process's: `foreign_limits`)
    limits: list[LimitSample] = field(default_factory=list)
    #: sessions with a compaction new to the ledger
    compactions: set[SessionKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.sessions or self.limits or self.compactions)

    def merge(self, other: Changes) -> None:
        self.turns.extend(other.turns)
        self.sessions.update(other.sessions)
        self.limits.extend(other.limits)
        self.compactions.update(other.compactions)


@dataclass(slots=True)
class _Work:
    """A session being folded inside a transaction: its ledger id and a private copy."""

    id: int
    session: Session
    version: int
    existed: bool  # the ledger had turns for it: previous copies must be looked up


class Store:
    """Folded sessions in memory (the ones the views show), kept equal to the ledger's."""

    def __init__(self, pricer: Pricer | None = None, ledger: Ledger | None = None) -> None:
        self._pricer = pricer  # made on first use
        self.ledger = ledger if ledger is not None else Ledger.memory()
        self.sessions: dict[SessionKey, Session] = {}
        #: session -> (ledger id, version) the in-memory copy was folded at
        self._ids: dict[SessionKey, tuple[int, int]] = {}
        #: Held while sessions are swapped in; readers on another thread take it for a stable view.
        self.lock = threading.RLock()
        #: rows of the ledger that could not be read back (skipped, reported)
        self.bad_rows = 0
        #: True when the views show every session of the ledger; False when they show only the
        #: sessions of some paths (those loaded and those read since): see `scope_ids`.
        self.everything = True
        #: the last limit-sample row `foreign_limits` looked at (None: not yet read)
        self._limit_mark: int | None = None

    @property
    def pricer(self) -> Pricer:
        if self._pricer is None:
            self._pricer = Pricer()
        return self._pricer

    # ---------------------------------------------------------------- loading
    def load(self, keys: Iterable[SessionKey] | None = None) -> None:
        """Show sessions as the ledger holds them (all, or those named): no turn is replayed,
        except for a session whose folded state is missing or damaged."""
        if self._limit_mark is None:
            with self.ledger.lock:
                self._limit_mark = ledger_obs.last_sample_id(self.ledger.db)
        rows = self.ledger.session_rows(None if keys is None else list(keys))
        refold: list[SessionRow] = []
        loaded: dict[SessionKey, Session] = {}
        for r, s in sessions_from(rows):
            if s is None:
                refold.append(r)
            else:
                loaded[(r.agent, r.session_id)] = s
                self._ids[(r.agent, r.session_id)] = (r.id, r.version)
        with self.lock:
            self.sessions.update(loaded)
        if refold:
            self.refold([(r.agent, r.session_id) for r in refold])

    def refold(self, keys: Iterable[SessionKey] | None = None) -> None:
        """Fold sessions again from their turns in the ledger (after a salvage, a price change,
        a prune or an import), and save the result."""
        with self.ledger.transaction() as db:
            rows = self.ledger.session_rows(None if keys is None else list(keys))
            done: dict[SessionKey, Session] = {}
            for r in rows:
                s = self._fold(r.id, r.agent, r.session_id)
                self._save(db, r.id, s)
                done[(r.agent, r.session_id)] = s
                self._ids[(r.agent, r.session_id)] = (r.id, r.version + 1)
        with self.lock:
            self.sessions.update(done)

    def _fold(self, sid: int, agent: str, session_id: str) -> Session:
        s = Session(agent=agent, session_id=session_id)
        turns, bad = self.ledger.turns_of(sid, agent, session_id)
        self.bad_rows += bad
        for t, cost in turns:
            self._account(s, t, cost, 1)
            self._follow(s, t, cost, is_new=True)
        return s

    def reprice(self) -> int:
        """Price every turn again at the current prices (the config or genai-prices changed) and
        fold the sessions again; how many turns changed cost."""
        pricer = self.pricer
        changed = 0
        lowered = False
        with self.ledger.transaction() as db:
            for sid, agent, session_id in db.execute("SELECT id, agent, session_id FROM sessions").fetchall():
                rows = db.execute(f"SELECT {TURN_COLUMNS} FROM turns WHERE session=?", (sid,)).fetchall()
                updates = []
                for r in rows:
                    try:
                        t, cost = turn_from_row(agent, session_id, r)
                    except (TypeError, ValueError):
                        continue
                    new = pricer.cost_pico(t)
                    if new != cost:
                        updates.append((new, sid, t.turn_id))
                        lowered = lowered or (cost is not None and (new is None or new < cost))
                if updates:
                    db.executemany("UPDATE turns SET cost=? WHERE session=? AND turn_id=?", updates)
                    changed += len(updates)
            if lowered:  # the cost sums went down: counters read from them restart now
                self.ledger.set_meta(SUMS_SINCE, repr(time.time()))
            self.refold()
        return changed

    def prune(self, before: float) -> tuple[int, int]:
        """Forget turns (and limit samples and compaction marks) older than `before` (unix seconds;
        undated turns stay): the only way rows ever leave the ledger. Returns (turns removed,
        sessions left without turns and removed)."""
        with self.ledger.transaction() as db:
            affected = [
                (int(i), str(a), str(sid))
                for i, a, sid in db.execute(
                    "SELECT DISTINCT s.id, s.agent, s.session_id FROM turns t JOIN sessions s ON s.id = t.session"
                    " WHERE t.ts > 0 AND t.ts < ?",
                    (before,),
                )
            ]
            self._keep_pruned_sums(db, before)
            removed = db.execute("DELETE FROM turns WHERE ts > 0 AND ts < ?", (before,)).rowcount
            # what logs said besides turns goes with them (limit history, compaction marks)
            db.execute("DELETE FROM limit_samples WHERE observed_at < ?", (before,))
            db.execute("DELETE FROM compactions WHERE ts > 0 AND ts < ?", (before,))
            db.execute(
                "DELETE FROM claims WHERE NOT EXISTS (SELECT 1 FROM turns t JOIN sessions s ON s.id = t.session"
                " WHERE s.agent = claims.agent AND s.session_id = claims.session_key AND t.turn_id = claims.turn_id)"
            )
            emptied = 0
            keep = []
            for sid, agent, session_id in affected:
                if db.execute("SELECT 1 FROM turns WHERE session=? LIMIT 1", (sid,)).fetchone() is None:
                    db.execute("DELETE FROM sessions WHERE id=?", (sid,))
                    emptied += 1
                    with self.lock:
                        self.sessions.pop((agent, session_id), None)
                    self._ids.pop((agent, session_id), None)
                else:
                    keep.append((agent, session_id))
            if keep:
                self.refold(keep)
        return removed, emptied

    def _keep_pruned_sums(self, db: object, before: float) -> None:
        """Add the sums of the turns about to be pruned to `PRUNED_SUMS`: counters of everything
        ever billed (the telemetry's) never go down because old rows were forgotten."""
        rows = db.execute(  # type: ignore[attr-defined]
            "SELECT s.agent, t.model, s.project, count(*), sum(t.input), sum(t.cache_read),"
            " sum(t.cache_write), sum(t.output), sum(t.reasoning), sum(t.cost), count(*) - count(t.cost)"
            " FROM turns t JOIN sessions s ON s.id = t.session WHERE t.ts > 0 AND t.ts < ? GROUP BY 1, 2, 3",
            (before,),
        ).fetchall()
        if not rows:
            return
        kept = pruned_sums(self.ledger)
        for agent, model, project, n, i, cr, cw, o, rs, cost, unpriced in rows:
            t = kept.setdefault((str(agent), str(model), str(project)), Tokens())
            t.turns += int(n)
            t.input += int(i)
            t.cache_read += int(cr)
            t.cache_write += int(cw)
            t.output += int(o)
            t.reasoning += int(rs)
            t.cost_pico += int(cost or 0)
            t.unpriced_turns += int(unpriced)
        blob = {"\x1f".join(k): t.to_row() for k, t in kept.items()}
        self.ledger.set_meta(PRUNED_SUMS, orjson.dumps(blob).decode())

    # ---------------------------------------------------------------- writing
    def apply(
        self,
        turns: Iterable[Turn],
        files: Sequence[FileRecord] = (),
        observations: Sequence[Observation] = (),
        *,
        report: bool = True,
    ) -> Changes:
        """Record a batch (its turns, what was observed besides them, and the cursors it was read
        up to) in one transaction; what changed.

        `report=False` (a backfill: nobody prints its turns one by one) leaves `Changes.turns` empty."""
        merged: dict[tuple[str, str, str], Turn] = {}  # (in first-seen order)
        for t in turns:
            t = t.storable()
            k = (t.agent, t.session_id, t.turn_id)
            old = merged.get(k)
            merged[k] = old.merged(t) if old is not None else t
        changes = Changes()
        if not merged and not files and not observations:
            return changes
        by_session: dict[SessionKey, list[Turn]] = {}
        for t in merged.values():
            by_session.setdefault((t.agent, t.session_id), []).append(t)
        writer = self.ledger.writer
        done: dict[SessionKey, _Work] = {}
        with self.ledger.transaction() as db:
            for key, batch in by_session.items():
                batch = self._unclaimed(db, key, batch)
                if not batch:
                    continue
                w = self._work(db, key)
                stored = self._stored(db, w, batch) if w.existed else {}
                rows = []
                touched = []
                s = w.session
                for t in batch:
                    prev = stored.get(t.turn_id)
                    if prev is not None:
                        old, old_cost, old_writer = prev
                        new = old.merged(t)
                        if new.same_numbers(old) and new.sidechain == old.sidechain:
                            if old_writer != writer:  # recorded by another process: news here
                                if report:
                                    changes.turns.append(_change(old, old_cost, s))
                                touched.append((writer, w.id, t.turn_id))
                            continue
                        self._account(s, old, old_cost, -1)
                    else:
                        new = t
                    cost = self.pricer.cost_pico(new)
                    self._account(s, new, cost, 1)
                    self._follow(s, new, cost, is_new=prev is None)
                    rows.append(turn_row(new, cost, w.id, writer))
                    if report:
                        changes.turns.append(_change(new, cost, s))
                if touched:
                    db.executemany("UPDATE turns SET writer=? WHERE session=? AND turn_id=?", touched)
                if rows:
                    rows.sort(key=_turn_id)  # in key order: B-tree inserts stay local (2x faster)
                    db.executemany(UPSERT_TURN if w.existed else INSERT_TURN, rows)
                    self._save(db, w.id, s)
                    w.version += 1
                    done[key] = w
                elif touched:
                    done[key] = w
            if observations:
                self._observe(db, observations, changes, done)
            if files:
                self.ledger.put_files(files)
        with self.lock:
            for key, w in done.items():
                self.sessions[key] = w.session
                self._ids[key] = (w.id, w.version)
                changes.sessions[key] = w.session
        if len(by_session) > 1:  # back to the batch's order (sessions were folded one by one)
            order = {k: i for i, k in enumerate(merged)}
            changes.turns.sort(key=lambda c: order[(c.turn.agent, c.turn.session_id, c.turn.turn_id)])
        return changes

    def _observe(
        self, db: object, observations: Sequence[Observation], changes: Changes, done: dict[SessionKey, _Work]
    ) -> None:
        """Record a batch's observations (inside its transaction): samples and compactions are
        added (new ones reported in `changes`); a context size moves its session's gauge when it
        is newer than the gauge's figure; refused values are counted."""
        samples = [o for o in observations if isinstance(o, LimitSample)]
        compactions = [o for o in observations if isinstance(o, Compaction)]
        refused = sum(1 for o in observations if isinstance(o, Refused))
        sizes: dict[SessionKey, ContextSize] = {}
        for o in observations:
            if isinstance(o, ContextSize):
                k = (o.agent, o.session_id)
                if k not in sizes or o.timestamp >= sizes[k].timestamp:
                    sizes[k] = o
        conn = db  # (a sqlite3.Connection; typed loosely like the helpers above)
        changes.limits += ledger_obs.insert_samples(conn, samples, self.ledger.writer)  # type: ignore[arg-type]
        changes.compactions.update(
            (c.agent, c.session_id)
            for c in ledger_obs.insert_compactions(conn, compactions)  # type: ignore[arg-type]
        )
        ledger_obs.add_refused(conn, refused)  # type: ignore[arg-type]
        for key, size in sizes.items():
            w = done.get(key)
            if w is None:
                exists = conn.execute(  # type: ignore[attr-defined]
                    "SELECT 1 FROM sessions WHERE agent=? AND session_id=?", key
                ).fetchone()
                if exists is None:
                    continue  # no turn yet: nothing shows a gauge for it
                w = self._work(db, key)
            s = w.session
            if size.timestamp < s.context_ts:
                continue  # a request after it already moved the gauge
            s.context_used = size.tokens
            s.context_ts = size.timestamp
            if size.window:
                s.context_window = self.pricer.context_window(
                    s.agent, s.context_model, size.window, s.max_context
                )
            self._save(db, w.id, s)
            w.version += 1
            done[key] = w

    def _unclaimed(self, db: object, key: SessionKey, batch: list[Turn]) -> list[Turn]:
        """Drop the copies of requests another session already counts (`Turn.dedup_key`)."""
        if not any(t.dedup_key for t in batch):
            return batch
        out = []
        for t in batch:
            if t.dedup_key:
                row = db.execute(  # type: ignore[attr-defined]
                    "SELECT session_key, turn_id FROM claims WHERE agent=? AND key=?", (t.agent, t.dedup_key)
                ).fetchone()
                if row is None:
                    db.execute(  # type: ignore[attr-defined]
                        "INSERT INTO claims(agent, key, session_key, turn_id) VALUES(?,?,?,?)",
                        (t.agent, t.dedup_key, key[1], t.turn_id),
                    )
                elif (row[0], row[1]) != (key[1], t.turn_id):
                    continue  # a fork's copy of a request its parent already counts
            out.append(t)
        return out

    def _work(self, db: object, key: SessionKey) -> _Work:
        """The session to fold into: a copy of ours if the ledger still has the version we hold,
        else what the ledger holds now (another process wrote to it), else a new one."""
        row = db.execute(  # type: ignore[attr-defined]
            "SELECT id, version, state FROM sessions WHERE agent=? AND session_id=?", key
        ).fetchone()
        if row is None:
            cur = db.execute("INSERT INTO sessions(agent, session_id) VALUES(?, ?)", key)  # type: ignore[attr-defined]
            return _Work(int(cur.lastrowid), Session(agent=key[0], session_id=key[1]), 0, False)
        sid, version, state = int(row[0]), int(row[1]), row[2]
        mine = self.sessions.get(key)
        if mine is not None and self._ids.get(key) == (sid, version):
            return _Work(sid, _copy(mine), version, True)
        s = None
        if state is not None:
            s = next(sessions_from([SessionRow(sid, key[0], key[1], version, state)]))[1]
        if s is None:
            s = self._fold(sid, key[0], key[1])
        return _Work(sid, s, version, True)

    def _stored(self, db: object, w: _Work, batch: list[Turn]) -> dict[str, tuple[Turn, int | None, int]]:
        """The ledger's copies of the batch's turns: (turn, cost, writer) by turn id."""
        agent, session_id = w.session.agent, w.session.session_id
        out: dict[str, tuple[Turn, int | None, int]] = {}
        ids = [t.turn_id for t in batch]
        for i in range(0, len(ids), _CHUNK):
            part = ids[i : i + _CHUNK]
            q = f"SELECT {TURN_COLUMNS}, writer FROM turns WHERE session=? AND turn_id IN ({','.join('?' * len(part))})"
            for r in db.execute(q, (w.id, *part)):  # type: ignore[attr-defined]
                try:
                    t, cost = turn_from_row(agent, session_id, r[:-1])
                except (TypeError, ValueError):
                    self.bad_rows += 1  # damaged: the new copy replaces it, nothing to subtract
                    continue
                out[t.turn_id] = (t, cost, int(r[-1]))
        return out

    def _save(self, db: object, sid: int, s: Session) -> None:
        db.execute(  # type: ignore[attr-defined]
            "UPDATE sessions SET version=version+1, state=?, project=?, last_seen=? WHERE id=?",
            (orjson.dumps(s.to_row()), s.project, s.last_seen, sid),
        )

    # ---------------------------------------------------------------- folding
    def _account(self, s: Session, t: Turn, cost: int | None, sign: int) -> None:
        add_turn(s.totals, s.by_model, t, cost, sign)

    def _follow(self, s: Session, t: Turn, cost: int | None, is_new: bool) -> None:
        """Times, project, the last turn, the recent series and the context gauge."""
        ts = t.timestamp
        if ts:
            if not s.first_seen or ts < s.first_seen:
                s.first_seen = ts
            if ts > s.last_seen:
                s.last_seen = ts
        if t.project and (not s.project or not t.sidechain):
            s.project = t.project
        last = s.last_turn
        if last is None or ts >= last.timestamp or last.turn_id == t.turn_id:
            if last is not None and last.turn_id == t.turn_id and s.recent:
                s.recent[-1] = t.total
                s.recent_cost[-1] = cost
            elif is_new:
                s.recent.append(t.total)
                s.recent_ts.append(ts)
                s.recent_cost.append(cost)
                if len(s.recent) > RECENT:
                    del s.recent[0], s.recent_ts[0], s.recent_cost[0]
            s.last_turn = t
            s.last_cost = cost
        if not t.sidechain and t.context > 0:  # (a turn with no prompt size never moves the gauge)
            if t.context > s.max_context:
                s.max_context = t.context
            if ts >= s.context_ts:
                s.context_ts = ts
                s.context_used = t.context
                s.context_model = t.model
            s.context_window, s.context_window_assumed = self.pricer.window(
                s.agent, s.context_model, t.context_window, s.max_context
            )
        elif not s.context_window:
            s.context_window, s.context_window_assumed = self.pricer.window(
                s.agent, t.model, t.context_window, 0
            )

    def mark_archived(self, live: set[SessionKey]) -> dict[SessionKey, Session]:
        """Sessions without a log among the followed files are archived: shown, still counted.
        Returns the sessions whose mark changed (new objects: published ones never change)."""
        out: dict[SessionKey, Session] = {}
        with self.lock:
            for key, s in self.sessions.items():
                gone = key not in live
                if s.archived != gone:
                    c = copy.copy(s)
                    c.archived = gone
                    out[key] = c
            self.sessions.update(out)
        return out

    # ---------------------------------------------------------------- reading
    def turns_of(self, key: SessionKey) -> list[Turn]:
        """A session's turns from the ledger, in time order (views that need single turns)."""
        return [t for t, _ in self.turns_with_cost(key)]

    def turns_with_cost(self, key: SessionKey) -> list[tuple[Turn, int | None]]:
        ids = self._ids.get(key)
        if ids is None:
            rows = self.ledger.session_rows([key])
            if not rows:
                return []
            ids = (rows[0].id, rows[0].version)
        turns, bad = self.ledger.turns_of(ids[0], key[0], key[1])
        self.bad_rows += bad
        return turns

    def foreign_limits(self) -> list[LimitSample]:
        """Limit samples another process recorded since the last look (`tokwatch statusline`
        records Claude's plan windows straight into the ledger)."""
        with self.ledger.lock:
            db = self.ledger.db
            if self._limit_mark is None:
                self._limit_mark = ledger_obs.last_sample_id(db)
                return []
            out, self._limit_mark = ledger_obs.samples_after(db, self._limit_mark, self.ledger.writer)
        return out

    def scope_ids(self) -> tuple[int, ...] | None:
        """The ledger ids of the sessions the views show, or None for all of them (for queries)."""
        if self.everything:
            return None
        with self.lock:
            return tuple(sorted(self._ids[k][0] for k in self.sessions if k in self._ids))

    def totals(self) -> Tokens:
        with self.lock:
            return Tokens.sum(s.totals for s in self.sessions.values())


def pruned_sums(ledger: Ledger) -> dict[tuple[str, str, str], Tokens]:
    """What `prune` forgot, per (agent, model, project); empty when nothing was pruned (or the
    record is unreadable, which is logged)."""
    raw = ledger.meta(PRUNED_SUMS)
    if not raw:
        return {}
    out: dict[tuple[str, str, str], Tokens] = {}
    try:
        for key, row in orjson.loads(raw).items():
            agent, model, project = str(key).split("\x1f")
            out[(agent, model, project)] = Tokens.from_row(row)
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError) as e:
        log.warning("ledger: unreadable %s (%s)", PRUNED_SUMS, e)
        return {}
    return out


def _turn_id(row: tuple[object, ...]) -> str:
    return row[1]  # type: ignore[return-value]


def _change(t: Turn, cost: int | None, s: Session) -> TurnChange:
    return TurnChange(
        t, cost, s.totals.copy(), s.project, s.context_used, s.context_window, s.context_window_assumed
    )


def _copy(s: Session) -> Session:
    """A private copy to fold a batch into (the shown one stays untouched until the commit)."""
    c = copy.copy(s)
    c.totals = s.totals.copy()
    c.by_model = {m: t.copy() for m, t in s.by_model.items()}
    c.recent = list(s.recent)
    c.recent_ts = list(s.recent_ts)
    c.recent_cost = list(s.recent_cost)
    return c
