"""The records tokwatch hands to the outside world, validated by pydantic: what `export` writes
and what `watch --jsonl` prints. Kept apart from `tokwatch.core.models` so the hot path (and every
backfill worker) never pays for importing pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ExportRow(BaseModel):
    """One (session, model) row of `tokwatch export`; the column order is the contract."""

    model_config = ConfigDict(frozen=True)

    agent: str
    session_id: str
    project: str
    model: str
    turns: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_usd: float | None
    first_seen: str
    last_seen: str
    context_tokens: int
    #: None when unknown (never 0); an assumed default is given, with `context_window_assumed`.
    context_window: int | None
    context_window_assumed: bool


class TurnNumbers(BaseModel):
    input: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int
    total: int
    context: int


class SessionTotals(BaseModel):
    turns: int
    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    total: int
    cost_usd: float | None
    context_tokens: int
    context_window: int | None
    context_window_assumed: bool


class TurnEvent(BaseModel):
    """One line of `tokwatch watch --jsonl`: a turn added or updated, with its session's new totals."""

    event: str = "turn"
    agent: str
    session_id: str
    project: str
    turn_id: str
    model: str
    timestamp: str
    tokens: TurnNumbers
    cost_usd: float | None
    session: SessionTotals
