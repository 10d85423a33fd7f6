"""In-memory sessions: every turn counted once, totals kept incrementally, changes reported per batch.

Turns are keyed by (agent, session, turn_id). Seeing a key again (a streaming duplicate, a
re-read after truncation, a re-appended Gemini message, a sidechain replay) replaces the old
numbers: the old turn is subtracted and the new one added, so totals stay exact without rescans.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from tokwatch.models import Session, Tokens, Turn
from tokwatch.pricing import Pricer

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
        #: Held while applying a batch; readers on another thread take it for a consistent view.
        self.lock = threading.RLock()

    @property
    def pricer(self) -> Pricer:
        if self._pricer is None:
            self._pricer = Pricer()
        return self._pricer

    def apply(self, turns: Iterable[Turn]) -> Changes:
        changes = Changes()
        with self.lock:
            for t in turns:
                merged = self._upsert(t)
                if merged is not None:
                    changes.turns.append(merged)
                    changes.sessions.add((t.agent, t.session_id))
        return changes

    def turn(self, agent: str, session_id: str, turn_id: str) -> Turn | None:
        entry = self._turns.get((agent, session_id), {}).get(turn_id)
        return entry[0] if entry else None

    def turns_of(self, key: SessionKey) -> list[Turn]:
        return [t for t, _ in self._turns.get(key, {}).values()]

    def cost_pico(self, t: Turn) -> int | None:
        entry = self._turns.get((t.agent, t.session_id), {}).get(t.turn_id)
        return entry[1] if entry else self.pricer.cost_pico(t)

    def _upsert(self, t: Turn) -> Turn | None:
        key = (t.agent, t.session_id)
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
                return None
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
        if not t.sidechain:
            if t.context > s.max_context:
                s.max_context = t.context
            if ts >= s.context_ts:
                s.context_ts = ts
                s.context_used = t.context
                s.context_model = t.model
            s.context_window = self.pricer.context_window(
                s.agent, s.context_model, t.context_window, s.max_context
            )
        elif not s.context_window:
            s.context_window = self.pricer.context_window(s.agent, t.model, t.context_window, 0)

    def totals(self) -> Tokens:
        return Tokens.sum(s.totals for s in self.sessions.values())
