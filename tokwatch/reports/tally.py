"""Sums over the ledger's turns, in SQL: the one place reports, budgets and views count usage.

Nothing is replayed in Python: SQLite sums tokens and integer picodollars per group (a quarter
hour, a session, a model, an agent, a project). Time zones are applied afterwards, to the groups:
every zone in use today is offset from UTC by a multiple of 15 minutes, so a quarter-hour bucket
never straddles a local midnight; a bucket that would (a historic zone) is split turn by turn, so
the rows stay exact anyway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Tokens

QUARTER = 900.0


@dataclass(frozen=True, slots=True)
class Scope:
    """Which turns to count."""

    agents: frozenset[str] = frozenset()  # empty: every agent
    project: str | None = None  # case-insensitive substring of the session's project
    sessions: tuple[int, ...] | None = None  # ledger session ids (a view of some paths); None: all
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # exclusive
    dated: bool = False  # only turns whose log gave a time

    def where(self) -> tuple[str, list[object]]:
        sql: list[str] = []
        args: list[object] = []
        if self.agents:
            sql.append(f"s.agent IN ({','.join('?' * len(self.agents))})")
            args += sorted(self.agents)
        if self.project:
            sql.append("instr(lower_text(s.project), ?) > 0")
            args.append(self.project.lower())
        if self.sessions is not None:
            sql.append("t.session IN (SELECT value FROM json_each(?))")
            args.append(orjson.dumps(list(self.sessions)).decode())
        if self.since is not None:
            sql.append("t.ts >= ?")
            args.append(self.since)
        if self.until is not None:
            sql.append("t.ts < ?")
            args.append(self.until)
        if self.dated or self.since is not None:
            sql.append("t.ts > 0")
        return (" WHERE " + " AND ".join(sql)) if sql else "", args


@dataclass(slots=True)
class Part:
    """One group's sums: `bucket` (the quarter hour's start, None for undated turns), the session
    (ledger id, agent, session id, project) when grouped by session, the model, the price tier
    bracket when grouped by `tiers`, and the times of its first and last turn; `project` is the
    session's project when grouped by project."""

    bucket: float | None
    session: tuple[int, str, str, str] | None
    agent: str
    model: str
    tokens: Tokens = field(default_factory=Tokens)
    first: float = 0.0
    last: float = 0.0
    project: str = ""
    #: how many of the `tiers` thresholds the turns' prompts exceed (0 when not grouped by tier)
    tier: int = 0
    #: the 1-hour part of `tokens.cache_write` (priced apart from 5-minute writes)
    cache_write_1h: int = 0


_SUMS = (
    "count(*), sum(t.input), sum(t.cache_read), sum(t.cache_write), sum(t.output), sum(t.reasoning),"
    " sum(t.cost), count(*) - count(t.cost), min(NULLIF(t.ts, 0)), max(t.ts), sum(t.cache_write_1h)"
)
#: A turn's prompt, as `RateCard.cost_pico` measures it to pick a price tier.
PROMPT = "(t.input + t.cache_read + t.cache_write)"


def tier_case(tiers: Sequence[int]) -> str:
    """SQL for how many of the (ascending) thresholds a turn's prompt exceeds: its tier bracket."""
    if not tiers:
        return "0"
    whens = " ".join(f"WHEN {PROMPT} > {int(t)} THEN {i + 1}" for i, t in reversed(list(enumerate(tiers))))
    return f"CASE {whens} ELSE 0 END"


def parts(
    ledger: Ledger,
    scope: Scope,
    *,
    bucket: float | None = None,
    by_session: bool = False,
    by_project: bool = False,
    tiers: Sequence[int] = (),
) -> list[Part]:
    """Sums grouped by (quarter-hour bucket | session | session's project), agent and model, and
    by price tier bracket when `tiers` (ascending prompt thresholds, in tokens) are given."""
    tiers = sorted(set(tiers))
    cols = []
    if bucket is not None:
        cols.append(f"CASE WHEN t.ts > 0 THEN CAST(t.ts / {float(bucket)} AS INTEGER) END")
    if by_session:
        cols += ["s.id", "s.session_id", "s.project"]
    elif by_project:
        cols.append("s.project")
    cols += ["s.agent", "t.model"]
    if tiers:
        cols.append(tier_case(tiers))
    where, args = scope.where()
    group = ", ".join(str(i + 1) for i in range(len(cols)))
    sql = f"SELECT {', '.join(cols)}, {_SUMS} FROM turns t JOIN sessions s ON s.id = t.session{where} GROUP BY {group}"
    rows = _fetch(ledger, sql, args, scope, cols, bucket)
    out: list[Part] = []
    for r in rows:
        i = 0
        b: float | None = None
        if bucket is not None:
            b = None if r[0] is None else float(r[0]) * bucket
            i = 1
        sess = None
        project = ""
        if by_session:
            sess = (int(r[i]), "", str(r[i + 1]), str(r[i + 2]))
            project = sess[3]
            i += 3
        elif by_project:
            project = str(r[i])
            i += 1
        agent, model = str(r[i]), str(r[i + 1])
        i += 2
        if sess is not None:
            sess = (sess[0], agent, sess[2], sess[3])
        tier = 0
        if tiers:
            tier = int(r[i])
            i += 1
        n, inp, cr, cw, out_, rs, cost, unpriced, first, last, cw1h = r[i:]
        out.append(
            Part(
                b,
                sess,
                agent,
                model,
                Tokens(int(n), int(inp), int(cr), int(cw), int(out_), int(rs), int(cost or 0), int(unpriced)),
                float(first or 0.0),
                float(last or 0.0),
                project,
                tier,
                int(cw1h or 0),
            )
        )
    return out


def _fetch(
    ledger: Ledger, sql: str, args: list[object], scope: Scope, cols: list[str], bucket: float | None
) -> list[Sequence[object]]:
    with ledger.reading() as db:
        try:
            return db.execute(sql, args).fetchall()
        except (sqlite3.OperationalError, OverflowError) as e:
            if "overflow" not in str(e).lower():
                raise
    # A sum past 2^63 picodollars ($9.2M in one group): add up in Python, exactly.
    where, args2 = scope.where()
    select = ", ".join(cols)
    with ledger.reading() as db:
        raw = db.execute(
            f"SELECT {select}, t.input, t.cache_read, t.cache_write, t.output, t.reasoning, t.cost, t.ts,"
            f" t.cache_write_1h FROM turns t JOIN sessions s ON s.id = t.session{where}",
            args2,
        ).fetchall()
    k = len(cols)
    acc: dict[tuple[object, ...], list[object]] = {}
    for r in raw:
        key = tuple(r[:k])
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0, 0, 0, 0, 0, 0, 0, None, 0.0, 0]
        a[0] += 1  # type: ignore[operator]
        for j in range(5):
            a[1 + j] += r[k + j]  # type: ignore[operator]
        if r[k + 5] is None:
            a[7] += 1  # type: ignore[operator]
        else:
            a[6] += r[k + 5]  # type: ignore[operator]
        ts = r[k + 6]
        if ts:
            a[8] = ts if a[8] is None else min(a[8], ts)  # type: ignore[type-var]
            a[9] = max(a[9], ts)  # type: ignore[type-var,call-overload]
        a[10] += r[k + 7]  # type: ignore[operator]
    return [(*key, *a) for key, a in acc.items()]


def timestamps(ledger: Ledger, scope: Scope) -> list[float]:
    """The times of the turns in scope, ascending (undated ones left out)."""
    where, args = scope.where()
    extra = " AND t.ts > 0" if where else " WHERE t.ts > 0"
    with ledger.reading() as db:
        rows = db.execute(
            f"SELECT t.ts FROM turns t JOIN sessions s ON s.id = t.session{where}{extra} ORDER BY t.ts", args
        ).fetchall()
    return [float(r[0]) for r in rows]


def total(items: Iterable[Part]) -> Tokens:
    return Tokens.sum(p.tokens for p in items)
