"""The normalized vocabulary shared by every layer.

`Turn` is the hot-loop record (a slotted dataclass: cheap to build by the hundred thousand).
Pydantic models sit at the boundaries only, in `tokwatch.output.schema` (what `watch --jsonl` prints and
what `export` writes): this module stays free of pydantic so a backfill worker starts fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tokwatch.fsio import safe_text


@dataclass(slots=True)
class Turn:
    """One billed model request, in tokwatch's convention (see docs/agents.md).

    `input` excludes cache reads and writes; `output` includes `reasoning`. `context` is this
    request's full prompt (input + cache_read + cache_write) and only moves the session's gauge when
    `sidechain` is false. `merge_max` asks the store to keep the field-wise maximum when the same
    `turn_id` is seen again (Claude streaming duplicates); otherwise the newest copy replaces it.
    """

    agent: str
    session_id: str
    turn_id: str
    model: str
    timestamp: float  # unix seconds, UTC
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0  # the 1-hour part of cache_write (Claude), priced apart
    output: int = 0
    reasoning: int = 0
    project: str = ""
    sidechain: bool = False
    context_window: int = 0  # when the log states it (Codex); 0 = ask the pricing table
    merge_max: bool = False
    #: The agent's own figure for the prompt, when it logs one that differs from the parts (Copilot).
    context_tokens: int = 0
    #: The agent's own cost for this request (OpenCode stores it): preferred over our prices.
    cost_usd: float | None = None
    #: Set when copies of this request can appear in OTHER sessions (a fork or branch copies its
    #: parent's entries into a new file): the request is then counted once per agent, in the first
    #: session recorded with it. Empty: the (session, turn_id) key alone identifies it.
    dedup_key: str = ""

    @property
    def context(self) -> int:
        return self.context_tokens or self.input + self.cache_read + self.cache_write

    @property
    def kind(self) -> str:
        """What the turn stands for, read from its id's prefix (`STEP_MARK`, `SUM_MARK`): "step",
        "aggregate", or "" for one request. Views label the first two."""
        tid = self.turn_id
        if tid.startswith(STEP_MARK):
            return "step"
        if tid.startswith(SUM_MARK):
            return "aggregate"
        return ""

    @property
    def total(self) -> int:
        return self.input + self.cache_read + self.cache_write + self.output

    def merged(self, new: Turn) -> Turn:
        """`new` seen after `self` under the same id: max-merge for streaming duplicates, else `new`."""
        if not new.merge_max:
            return new
        return Turn(
            agent=new.agent,
            session_id=new.session_id,
            turn_id=new.turn_id,
            model=new.model,
            timestamp=self.timestamp if self.timestamp and self.timestamp < new.timestamp else new.timestamp,
            input=max(self.input, new.input),
            cache_read=max(self.cache_read, new.cache_read),
            cache_write=max(self.cache_write, new.cache_write),
            cache_write_1h=max(self.cache_write_1h, new.cache_write_1h),
            output=max(self.output, new.output),
            reasoning=max(self.reasoning, new.reasoning),
            project=new.project or self.project,
            sidechain=self.sidechain and new.sidechain,  # a main-chain copy makes it main-chain
            context_window=new.context_window or self.context_window,
            merge_max=True,
            context_tokens=max(self.context_tokens, new.context_tokens),
            cost_usd=new.cost_usd if new.cost_usd is not None else self.cost_usd,
            dedup_key=new.dedup_key or self.dedup_key,
        )

    def to_row(self) -> list[object]:
        """Compact form for the on-disk cache (field order = `TURN_FIELDS`; spelled out: 4x faster)."""
        return [
            self.agent,
            self.session_id,
            self.turn_id,
            self.model,
            self.timestamp,
            self.input,
            self.cache_read,
            self.cache_write,
            self.cache_write_1h,
            self.output,
            self.reasoning,
            self.project,
            self.sidechain,
            self.context_window,
            self.merge_max,
            self.context_tokens,
            self.cost_usd,
            self.dedup_key,
        ]

    @classmethod
    def from_row(cls, row: list[object]) -> Turn:
        return cls(*row)  # type: ignore[arg-type]

    def storable(self) -> Turn:
        """This turn with texts that came from undecodable file names made valid Unicode
        (`fsio.safe_text`): SQLite and JSON refuse lone surrogates."""
        if (
            self.session_id.isascii()
            and self.turn_id.isascii()
            and self.project.isascii()
            and self.model.isascii()
        ):
            return self
        return replace(
            self,
            session_id=safe_text(self.session_id),
            turn_id=safe_text(self.turn_id),
            project=safe_text(self.project),
            model=safe_text(self.model),
        )

    def same_numbers(self, other: Turn) -> bool:
        return (
            self.input == other.input
            and self.cache_read == other.cache_read
            and self.cache_write == other.cache_write
            and self.cache_write_1h == other.cache_write_1h
            and self.output == other.output
            and self.reasoning == other.reasoning
            and self.model == other.model
            and self.context_tokens == other.context_tokens
            and self.cost_usd == other.cost_usd
        )


TURN_FIELDS = tuple(Turn.__dataclass_fields__)

#: A turn_id starting with this is an OBSERVED STEP, not one request: what an agent's running
#: totals grew by between two reads (agents that keep only per-session totals: Goose before
#: schema 15, Hermes, Droid). Its turn count is a count of observations.
STEP_MARK = "step@"
#: A turn_id starting with this is an AGGREGATE the agent itself recorded for several requests
#: (Cline's deleted requests and subagent batches, Goose's usage from before its ledger).
SUM_MARK = "sum@"

#: The times every view can show in any time zone (1970-01-01 to 9999-12-29, UTC): a normalizer
#: treats a time outside them as unknown (0.0), so no view ever meets a year it cannot represent.
MIN_TS = 1.0
MAX_TS = 253402128000.0

#: The largest count of one token kind in one turn a normalizer accepts (`agents.base.MAX_COUNT`).
MAX_COUNT = 10**12


def bad_turn(t: Turn) -> str | None:
    """Why `t` could not have come from a log line (what the ledger, an old cache or a dump hands
    back is checked like a line: a damaged record is skipped, never believed), or None."""
    nums = (t.input, t.cache_read, t.cache_write, t.cache_write_1h, t.output, t.reasoning, t.context_tokens,
            t.context_window)  # fmt: skip
    if not all(type(n) is int and 0 <= n < MAX_COUNT for n in nums):
        return "a bad count"
    ts = t.timestamp
    if type(ts) is not float or not (ts == 0 or MIN_TS <= ts <= MAX_TS):
        return "a bad time"
    if not all(type(v) is str for v in (t.agent, t.session_id, t.turn_id, t.model, t.project, t.dedup_key)):
        return "a bad text"
    if t.cost_usd is not None and type(t.cost_usd) is not float:
        return "a bad cost"  # (an absurd but numeric agent cost is the pricer's to ignore)
    return None


def json_int(v: int) -> int | str:
    """An integer as the cache writes it: picodollars overflow JSON's 64-bit integers past $9.2M,
    so those are written as text (`int()` reads both back)."""
    return v if -(1 << 63) < v < (1 << 63) else str(v)


@dataclass(slots=True)
class Tokens:
    """A running sum of token kinds, with the turn count and cost (integer picodollars: exact)."""

    turns: int = 0
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    cost_pico: int = 0
    unpriced_turns: int = 0  # turns whose cost is unknown: the cost is then a lower bound, or unknown

    @property
    def total(self) -> int:
        return self.input + self.cache_read + self.cache_write + self.output

    @property
    def cost_usd(self) -> float | None:
        """Dollars, or None when any turn could not be priced (never a silent $0)."""
        if self.unpriced_turns:
            return None
        return self.cost_pico / 1e12

    @property
    def known_cost_usd(self) -> float:
        return self.cost_pico / 1e12

    def copy(self) -> Tokens:
        return Tokens(self.turns, self.input, self.cache_read, self.cache_write, self.output, self.reasoning,
                      self.cost_pico, self.unpriced_turns)  # fmt: skip

    @classmethod
    def sum(cls, items: Iterable[Tokens]) -> Tokens:
        out = cls()
        for t in items:
            out.turns += t.turns
            out.input += t.input
            out.cache_read += t.cache_read
            out.cache_write += t.cache_write
            out.output += t.output
            out.reasoning += t.reasoning
            out.cost_pico += t.cost_pico
            out.unpriced_turns += t.unpriced_turns
        return out

    def to_row(self) -> list[object]:
        return [self.turns, self.input, self.cache_read, self.cache_write, self.output, self.reasoning,
                json_int(self.cost_pico), self.unpriced_turns]  # fmt: skip

    @classmethod
    def from_row(cls, row: list[object]) -> Tokens:
        n, i, cr, cw, o, r, cost, u = row
        return cls(int(n), int(i), int(cr), int(cw), int(o), int(r), int(cost), int(u))  # type: ignore[call-overload]

    def add(self, t: Turn, cost_pico: int | None, sign: int = 1) -> None:
        self.turns += sign
        self.input += sign * t.input
        self.cache_read += sign * t.cache_read
        self.cache_write += sign * t.cache_write
        self.output += sign * t.output
        self.reasoning += sign * t.reasoning
        if cost_pico is None:
            self.unpriced_turns += sign
        else:
            self.cost_pico += sign * cost_pico


@dataclass(slots=True)
class Tally:
    """Sums of some turns, in total and per model, with the times of the first and last one:
    what every report row, block and session adds up (one implementation for all of them)."""

    tokens: Tokens = field(default_factory=Tokens)
    by_model: dict[str, Tokens] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0

    def add(self, t: Turn, cost: int | None, sign: int = 1) -> None:
        add_turn(self.tokens, self.by_model, t, cost, sign)
        ts = t.timestamp
        if ts and sign > 0:
            self.first = ts if not self.first else min(self.first, ts)
            self.last = max(self.last, ts)

    def add_sums(self, model: str, tokens: Tokens, first: float, last: float) -> None:
        """Sums already made (by the ledger's SQL) for one model."""
        for target in (self.tokens, self.by_model.setdefault(model, Tokens())):
            target.turns += tokens.turns
            target.input += tokens.input
            target.cache_read += tokens.cache_read
            target.cache_write += tokens.cache_write
            target.output += tokens.output
            target.reasoning += tokens.reasoning
            target.cost_pico += tokens.cost_pico
            target.unpriced_turns += tokens.unpriced_turns
        if first:
            self.first = first if not self.first else min(self.first, first)
        self.last = max(self.last, last)


def add_turn(totals: Tokens, by_model: dict[str, Tokens], t: Turn, cost: int | None, sign: int = 1) -> None:
    """Count a turn (or take it back, `sign=-1`) in a total and in its model's line."""
    totals.add(t, cost, sign)
    m = by_model.get(t.model)
    if m is None:
        m = by_model[t.model] = Tokens()
    m.add(t, cost, sign)
    if not m.turns:
        del by_model[t.model]


@dataclass(slots=True)
class Session:
    """Everything the views need about one agent session, kept current by the store."""

    agent: str
    session_id: str
    project: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    totals: Tokens = field(default_factory=Tokens)
    by_model: dict[str, Tokens] = field(default_factory=dict)
    last_turn: Turn | None = None
    last_cost: int | None = None  # the last turn's cost (picodollars; None: unknown)
    context_used: int = 0
    context_ts: float = -1.0
    context_window: int = 0
    max_context: int = 0
    context_model: str = ""
    recent: list[int] = field(default_factory=list)  # tokens per turn, newest last (sparkline)
    recent_ts: list[float] = field(default_factory=list)
    recent_cost: list[int | None] = field(default_factory=list)
    #: True when every log file of the session is gone (agent cleanup); totals come from the cache.
    archived: bool = False
    #: True when `context_window` is the agent's default, not logged nor configured (`~272k`).
    context_window_assumed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.agent, self.session_id)

    def to_row(self) -> list[object]:
        """The folded state, for the cache's snapshot: a warm start shows it without replaying turns."""
        return [
            self.agent,
            self.session_id,
            self.project,
            self.first_seen,
            self.last_seen,
            self.totals.to_row(),
            {m: t.to_row() for m, t in self.by_model.items()},
            self.last_turn.to_row() if self.last_turn is not None else None,
            json_int(self.last_cost) if self.last_cost is not None else None,
            self.context_used,
            self.context_ts,
            self.context_window,
            self.max_context,
            self.context_model,
            self.recent,
            self.recent_ts,
            [c if c is None else json_int(c) for c in self.recent_cost],
            self.archived,
            self.context_window_assumed,
        ]

    @classmethod
    def from_row(cls, row: list[object]) -> Session:
        """Raises (TypeError, ValueError, ...) on anything malformed: the caller drops the snapshot."""
        (agent, sid, project, first, last, totals, by_model, last_turn, last_cost, used, used_ts, window,
         max_ctx, ctx_model, recent, recent_ts, recent_cost, archived, *more) = row  # fmt: skip
        if not (isinstance(by_model, dict) and isinstance(recent, list) and isinstance(recent_ts, list)):
            raise TypeError("malformed session row")
        if not isinstance(recent_cost, list) or not isinstance(last_turn, list | None):
            raise TypeError("malformed session row")
        return cls(
            agent=str(agent),
            session_id=str(sid),
            project=str(project),
            first_seen=float(first),  # type: ignore[arg-type]
            last_seen=float(last),  # type: ignore[arg-type]
            totals=Tokens.from_row(totals),  # type: ignore[arg-type]
            by_model={str(m): Tokens.from_row(t) for m, t in by_model.items()},
            last_turn=Turn(*last_turn) if last_turn is not None else None,
            last_cost=None if last_cost is None else int(last_cost),  # type: ignore[call-overload]
            context_used=int(used),  # type: ignore[call-overload]
            context_ts=float(used_ts),  # type: ignore[arg-type]
            context_window=int(window),  # type: ignore[call-overload]
            max_context=int(max_ctx),  # type: ignore[call-overload]
            context_model=str(ctx_model),
            recent=[int(x) for x in recent],
            recent_ts=[float(x) for x in recent_ts],
            recent_cost=[None if c is None else int(c) for c in recent_cost],
            archived=bool(archived),
            context_window_assumed=bool(more[0]) if more else False,
        )

    @property
    def context_percent(self) -> float | None:
        if not self.context_window:
            return None
        return 100.0 * self.context_used / self.context_window

    @property
    def models(self) -> list[str]:
        return sorted(self.by_model)


def iso(ts: float) -> str:
    """ISO-8601 UTC with a Z, millisecond precision: what every output of ours uses."""
    if not ts:
        return ""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
