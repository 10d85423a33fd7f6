"""In-memory sessions: every turn counted once, totals kept incrementally, changes reported per batch.

Turns are keyed by (agent, session, turn_id). Seeing a key again (a streaming duplicate, a
re-read after truncation, a re-appended Gemini message, a sidechain replay) replaces the old
numbers: the old turn is subtracted and the new one added, so totals stay exact without rescans.

A warm start may `restore` sessions from the cache's snapshot instead: their folded state is shown
as is, and their keyed turns are replayed (by the engine's `loader`) only when a turn of theirs
arrives or someone asks for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tokwatch.core.models import Session, Tokens, Turn
from tokwatch.core.pricing import Pricer

log = logging.getLogger(__name__)

RECENT = 60
SessionKey = tuple[str, str]


@dataclass(slots=True)
class Changes:
    """What one `apply` changed: the turns added or updated (in order) and their sessions."""

    turns: list[Turn] = field(default_factory=list)
    sessions: set[SessionKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.sessions)

    def merge(self, other: Changes) -> None:
        self.turns.extend(other.turns)
        self.sessions |= other.sessions


class Store:
    def __init__(self, pricer: Pricer | None = None) -> None:
        self._pricer = pricer  # made on first use: a backfill worker never prices anything
        self.sessions: dict[SessionKey, Session] = {}
        self._turns: dict[SessionKey, dict[str, tuple[Turn, int | None]]] = {}
        #: Sessions restored from a snapshot whose turns are not loaded yet, and who loads them.
        self._lazy: set[SessionKey] = set()
        self._loader: Callable[[SessionKey], list[Turn]] | None = None
        #: Set while the loader's sources are still being assembled (a backfill that restored the
        #: snapshot): views then see a restored session's numbers but not its turns yet; only
        #: applying a turn replays a session, and the engine does that once every file is known.
        self.hold_replays = False
        #: Held while applying a batch; readers on another thread take it for a consistent view.
        self.lock = threading.RLock()

    @property
    def pricer(self) -> Pricer:
        if self._pricer is None:
            self._pricer = Pricer()
        return self._pricer

    def apply(self, turns: Iterable[Turn]) -> Changes:
        changes = Changes()
        replayed: set[SessionKey] = set()
        with self.lock:
            for t in turns:
                merged = self._upsert(t, replayed)
                if merged is not None:
                    changes.turns.append(merged)
                    changes.sessions.add((t.agent, t.session_id))
        return changes

    def restore(self, sessions: Iterable[Session], loader: Callable[[SessionKey], list[Turn]]) -> None:
        """Take sessions as folded earlier (the cache's snapshot); `loader(key)` gives a session's
        turns, in the order they were first applied, when they are needed."""
        with self.lock:
            self._loader = loader
            for s in sessions:
                self.sessions[s.key] = s
                self._turns.pop(s.key, None)
                self._lazy.add(s.key)

    def snapshot(self) -> list[list[object]]:
        """Every session's folded state as rows (`Session.to_row`), without loading any turns."""
        with self.lock:
            return [s.to_row() for s in self.sessions.values()]

    def _load(self, key: SessionKey) -> None:
        """Replay a restored session from its turns, so later updates subtract what was added.

        The replay rebuilds the session in place (views may hold the object); it gives what a
        warm start without the snapshot gives.
        """
        replay = Store(self.pricer)  # apart: callers may be iterating over `self.sessions`
        try:
            for t in self._loader(key) if self._loader else []:
                replay._upsert(t)
        except Exception:  # never leave it half-loaded: keep the numbers shown, count on from there
            log.exception("could not replay session %s", key)
            replay = Store(self.pricer)
        self._lazy.discard(key)
        new = replay.sessions.get(key)
        if new is None:  # no file has its turns any more (a pruned cache): keep the numbers shown
            self._turns[key] = {}
            return
        old = self.sessions[key]
        for name in Session.__slots__:
            if name != "archived":
                setattr(old, name, getattr(new, name))
        self._turns[key] = replay._turns[key]

    def _keyed(self, key: SessionKey) -> dict[str, tuple[Turn, int | None]]:
        if key in self._lazy and not self.hold_replays:
            with self.lock:
                if key in self._lazy:
                    self._load(key)
        return self._turns.get(key, {})

    def turn(self, agent: str, session_id: str, turn_id: str) -> Turn | None:
        entry = self._keyed((agent, session_id)).get(turn_id)
        return entry[0] if entry else None

    def turns_of(self, key: SessionKey) -> list[Turn]:
        return [t for t, _ in self._keyed(key).values()]

    def cost_pico(self, t: Turn) -> int | None:
        entry = self._keyed((t.agent, t.session_id)).get(t.turn_id)
        return entry[1] if entry else self.pricer.cost_pico(t)

    def _upsert(self, t: Turn, replayed: set[SessionKey] | None = None) -> Turn | None:
        """Add or update one turn; the turn as stored, or None when nothing changed.

        `replayed` collects the restored sessions this batch had to replay. The replay reads the
        files' turns, which already hold this batch (the engine records a read before handing
        it out): its turns then look unchanged, yet they are news to whoever shows them.
        """
        key = (t.agent, t.session_id)
        if key in self._lazy:
            self._load(key)
            if replayed is not None:
                replayed.add(key)
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = Session(agent=t.agent, session_id=t.session_id, project=t.project)
            self._turns[key] = {}
        turns = self._turns[key]
        prev = turns.get(t.turn_id)
        if prev is not None:
            old, old_cost = prev
            t = old.merged(t)
            if t.same_numbers(old) and t.sidechain == old.sidechain:
                return old if replayed and key in replayed else None
            self._account(s, old, old_cost, -1)
        cost = self.pricer.cost_pico(t)
        turns[t.turn_id] = (t, cost)
        self._account(s, t, cost, 1)
        self._follow(s, t, cost, is_new=prev is None)
        return t

    def _account(self, s: Session, t: Turn, cost: int | None, sign: int) -> None:
        s.totals.add(t, cost, sign)
        m = s.by_model.get(t.model)
        if m is None:
            m = s.by_model[t.model] = Tokens()
        m.add(t, cost, sign)
        if not m.turns:
            del s.by_model[t.model]

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

    def totals(self) -> Tokens:
        return Tokens.sum(s.totals for s in self.sessions.values())
