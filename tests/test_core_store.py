"""Store semantics: every turn counted once, exact incremental totals, change reports."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import turn

from tokwatch.core.models import Tokens
from tokwatch.core.store import Changes, Store
from tokwatch.ingest.setup import make_pricer

PRICER = make_pricer()
T0 = 1_770_000_000.0


def _turns(ch: Changes) -> list:
    return [c.turn for c in ch.turns]


def _cost(t) -> int:
    c = PRICER.cost_pico(t)
    assert c is not None
    return c


def test_upsert_is_idempotent() -> None:
    store = Store(PRICER)
    t = turn("a", input=10, cache_read=100, cache_write=50, output=5)
    first = store.apply([t])
    assert _turns(first) == [t] and set(first.sessions) == {("claude", "s1")}
    snapshot = replace(store.sessions[("claude", "s1")].totals)
    again = store.apply([t, replace(t), replace(t)])
    assert not again
    assert again.turns == [] and not again.sessions
    s = store.sessions[("claude", "s1")]
    assert s.totals == snapshot
    assert s.totals.turns == 1
    assert s.totals.total == 165
    assert s.totals.cost_pico == _cost(t)
    assert len(s.recent) == 1


def test_max_merge_keeps_fieldwise_maximum() -> None:
    store = Store(PRICER)
    a = turn("m", input=3, cache_read=1000, cache_write=0, output=299, merge_max=True, timestamp=T0)
    b = turn("m", input=3, cache_read=900, cache_write=200, output=10, merge_max=True, timestamp=T0 + 1)
    store.apply([a])
    ch = store.apply([b])
    (merged,) = _turns(ch)
    assert (merged.input, merged.cache_read, merged.cache_write, merged.output) == (3, 1000, 200, 299)
    s = store.sessions[("claude", "s1")]
    assert s.totals.turns == 1
    assert (s.totals.input, s.totals.cache_read, s.totals.cache_write, s.totals.output) == (3, 1000, 200, 299)
    assert s.totals.cost_pico == _cost(merged)
    assert merged.timestamp == T0  # the first copy's time
    assert s.context_used == 1203


def test_replace_semantics_newest_copy_wins() -> None:
    store = Store(PRICER)
    big = turn("g1", agent="gemini", model="gemini-2.5-pro", input=9000, output=500)
    small = turn("g1", agent="gemini", model="gemini-2.5-pro", input=1000, cache_read=8000, output=40)
    store.apply([big])
    ch = store.apply([small])
    assert _turns(ch) == [small]
    s = store.sessions[("gemini", "s1")]
    assert (s.totals.turns, s.totals.input, s.totals.cache_read, s.totals.output) == (1, 1000, 8000, 40)
    assert s.totals.cost_pico == _cost(small)
    assert store.turns_of(("gemini", "s1")) == [small]
    assert s.recent == [small.total]  # the series entry is updated, not appended


def test_replace_with_another_model_moves_the_per_model_totals() -> None:
    store = Store(PRICER)
    store.apply([turn("x", agent="gemini", model="gemini-2.5-pro", input=100, output=1)])
    store.apply([turn("x", agent="gemini", model="gemini-2.5-flash", input=100, output=1)])
    s = store.sessions[("gemini", "s1")]
    assert s.models == ["gemini-2.5-flash"]  # an emptied model row disappears
    assert s.totals.turns == 1


def test_per_model_totals_add_up() -> None:
    store = Store(PRICER)
    turns = [
        turn("1", model="claude-opus-4-6", input=1, cache_read=100, output=10, timestamp=T0),
        turn("2", model="claude-sonnet-4-5-20250929", input=2, cache_write=50, output=20, timestamp=T0 + 1),
        turn("3", model="claude-opus-4-6", input=3, cache_write=7, output=30, timestamp=T0 + 2),
    ]
    ch = store.apply(turns)
    assert _turns(ch) == turns
    s = store.sessions[("claude", "s1")]
    assert s.models == ["claude-opus-4-6", "claude-sonnet-4-5-20250929"]
    opus = s.by_model["claude-opus-4-6"]
    sonnet = s.by_model["claude-sonnet-4-5-20250929"]
    assert (opus.turns, opus.input, opus.cache_read, opus.cache_write, opus.output) == (2, 4, 100, 7, 40)
    assert (sonnet.turns, sonnet.input, sonnet.cache_write, sonnet.output) == (1, 2, 50, 20)
    assert opus.cost_pico == _cost(turns[0]) + _cost(turns[2])
    assert s.totals.turns == opus.turns + sonnet.turns
    assert s.totals.total == opus.total + sonnet.total
    assert s.totals.cost_pico == opus.cost_pico + sonnet.cost_pico
    all_ = store.totals()
    assert all_.total == s.totals.total and all_.cost_pico == s.totals.cost_pico


def test_unpriced_turn_makes_cost_none_never_zero() -> None:
    store = Store(PRICER)
    known = turn("1", model="claude-opus-4-6", input=1000, output=100, timestamp=T0)
    unknown = turn("2", model="totally-unknown-model-x9", input=1000, output=100, timestamp=T0 + 1)
    ch = store.apply([known, unknown])
    assert _turns(ch) == [known, unknown]
    assert [c.cost for c in ch.turns] == [_cost(known), None]
    s = store.sessions[("claude", "s1")]
    assert s.by_model["totally-unknown-model-x9"].cost_usd is None
    assert s.by_model["totally-unknown-model-x9"].unpriced_turns == 1
    assert s.by_model["claude-opus-4-6"].cost_usd == pytest.approx(_cost(known) / 1e12)
    assert s.totals.cost_usd is None  # the session cost is unknown, not $0 nor the known part
    assert s.totals.known_cost_usd == pytest.approx(_cost(known) / 1e12)
    assert store.totals().cost_usd is None
    assert s.recent_cost == [_cost(known), None]
    # an unknown-only session: None, not 0.0
    store2 = Store(PRICER)
    store2.apply([unknown])
    assert store2.sessions[("claude", "s1")].totals.cost_usd is None


def test_changes_report_turns_in_order_and_their_sessions() -> None:
    store = Store(PRICER)
    a = turn("a", session_id="s1", input=1, output=1, timestamp=T0)
    b = turn("b", session_id="s2", input=2, output=2, timestamp=T0 + 1)
    c = turn("c", session_id="s1", input=3, output=3, timestamp=T0 + 2)
    ch = store.apply([a, b, c, a])
    assert isinstance(ch, Changes)
    assert _turns(ch) == [a, b, c]
    assert set(ch.sessions) == {("claude", "s1"), ("claude", "s2")}
    assert bool(ch)
    empty = store.apply([])
    assert not empty and empty.turns == []
    merged = Changes()
    merged.merge(ch)
    merged.merge(store.apply([turn("d", session_id="s3", input=1, output=1)]))
    assert [t.turn_id for t in _turns(merged)] == ["a", "b", "c", "d"]
    assert len(merged.sessions) == 3


def test_first_and_last_seen_follow_turn_times_in_any_order() -> None:
    store = Store(PRICER)
    store.apply([turn("2", input=1, output=1, timestamp=T0 + 50)])
    store.apply([turn("1", input=1, output=1, timestamp=T0 + 10)])  # older turn arrives later
    store.apply([turn("3", input=1, output=1, timestamp=T0 + 99)])
    store.apply([turn("0", input=1, output=1, timestamp=0.0)])  # no time: ignored for seen times
    s = store.sessions[("claude", "s1")]
    assert s.first_seen == T0 + 10
    assert s.last_seen == T0 + 99
    assert s.last_turn is not None and s.last_turn.turn_id == "3"


def test_context_gauge_follows_latest_main_chain_turn_not_arrival_order() -> None:
    store = Store(PRICER)
    store.apply([turn("late", input=1, cache_read=50_000, output=1, timestamp=T0 + 100)])
    store.apply([turn("early", input=1, cache_read=90_000, output=1, timestamp=T0 + 10)])
    store.apply([turn("side", input=1, cache_read=150_000, output=1, timestamp=T0 + 200, sidechain=True)])
    s = store.sessions[("claude", "s1")]
    assert s.context_used == 50_001
    assert s.max_context == 90_001
    assert s.context_window == 200_000
    assert s.context_percent == pytest.approx(100 * 50_001 / 200_000)


def test_tokens_add_and_subtract_are_exact() -> None:
    t = turn("x", input=7, cache_read=11, cache_write=13, output=17, reasoning=5)
    tok = Tokens()
    tok.add(t, 123)
    tok.add(t, None)
    assert (tok.turns, tok.total, tok.cost_pico, tok.unpriced_turns) == (2, 96, 123, 1)
    tok.add(t, None, -1)
    assert tok.cost_usd == pytest.approx(123 / 1e12)
    tok.add(t, 123, -1)
    assert tok == Tokens()
