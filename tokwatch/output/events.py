"""`watch --jsonl` events: a turn added or updated, with its session's totals as of that turn."""

from __future__ import annotations

from tokwatch.core.models import iso
from tokwatch.core.store import TurnChange
from tokwatch.output.schema import SessionTotals, TurnEvent, TurnNumbers


def turn_event(c: TurnChange) -> TurnEvent:
    t, tot = c.turn, c.totals
    return TurnEvent(
        agent=t.agent,
        session_id=t.session_id,
        project=c.project,
        turn_id=f"{t.agent}:{t.session_id}:{t.turn_id}",
        model=t.model,
        timestamp=iso(t.timestamp),
        tokens=TurnNumbers(
            input=t.input,
            cache_read=t.cache_read,
            cache_write=t.cache_write,
            cache_write_1h=t.cache_write_1h,
            output=t.output,
            reasoning=t.reasoning,
            total=t.total,
            context=t.context,
        ),
        cost_usd=None if c.cost is None else c.cost / 1e12,
        session=SessionTotals(
            turns=tot.turns,
            input=tot.input,
            cache_read=tot.cache_read,
            cache_write=tot.cache_write,
            output=tot.output,
            reasoning=tot.reasoning,
            total=tot.total,
            cost_usd=tot.cost_usd,
            context_tokens=c.context_used,
            context_window=c.context_window or None,
            context_window_assumed=c.context_window_assumed,
        ),
    )
