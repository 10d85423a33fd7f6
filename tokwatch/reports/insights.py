"""What the dashboard's insights view shows: cost over time, projects, models, cache efficiency and
the top sessions of a range of days, summed in SQL on the ledger.

Two queries per refresh, whatever the history's size: the range's sums per quarter hour, agent,
model and price tier bracket (`report.ledger_day_parts`, the very rows `report daily/weekly/monthly`
add up, so the bars equal the report), and its sums per session, agent and model (`tally.parts`).
Everything else is arithmetic on those groups, never on turns. The result is immutable: frozen
dataclasses and tuples, built fresh for each refresh and handed to the UI thread as they are.

Cache savings: the ledger stores what each turn cost, not what it would have cost uncached, so
the savings are priced again from the same rate cards (`Pricer.card`), per model and per price
tier bracket, which is exact: a card's tier applies to a whole request by its prompt size, and the
groups are split at every tier threshold of the models in the range. A model without a rate card
has unknown savings; totals then say how many turns they leave out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta, tzinfo
from typing import Any

from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Tokens
from tokwatch.core.pricing import RateCard
from tokwatch.reports import report, tally
from tokwatch.reports.tally import Part, Scope

#: The ranges the view cycles through, in days (the last one ends today).
RANGES = (7, 30, 90, 365)
BUCKETS = ("day", "week", "month")
SPLITS = ("agent", "model", "none")
#: The report whose rows a bucket equals.
REPORT_VIEW = {"day": "daily", "week": "weekly", "month": "monthly"}
#: At most this many series in a split; the rest are summed as `OTHER`.
MAX_SERIES = 5
OTHER = "other"
ALL = "all"
#: How many sessions the top sessions list keeps.
TOP_SESSIONS = 50

CardLookup = Callable[[str, str], RateCard | None]


@dataclass(frozen=True, slots=True)
class Query:
    days: int = 30
    bucket: str = "day"
    split: str = "agent"


@dataclass(frozen=True, slots=True)
class Saving:
    """What caching saved against the same prompt tokens at the uncached input price (picodollars).

    `read_saved`: cache reads priced as input, minus what they cost. `write_premium`: what cache
    writes cost above the input price (usually positive: writes cost more). `unknown_turns`: turns
    of models without a rate card, not counted in either (their cache reads: `unknown_cache_read`).
    """

    read_saved: int = 0
    write_premium: int = 0
    unknown_turns: int = 0
    unknown_cache_read: int = 0

    @property
    def net(self) -> int:
        return self.read_saved - self.write_premium

    def __add__(self, o: Saving) -> Saving:
        return Saving(
            self.read_saved + o.read_saved,
            self.write_premium + o.write_premium,
            self.unknown_turns + o.unknown_turns,
            self.unknown_cache_read + o.unknown_cache_read,
        )


@dataclass(frozen=True, slots=True)
class Period:
    """One bar: a day, an ISO week or a month (`key` as the report spells it)."""

    key: str
    start: date
    end: date  # inclusive; the current period ends today
    tokens: Tokens
    series: tuple[Tokens, ...]  # aligned with `Insights.series`
    saving: Saving

    @property
    def prompt(self) -> int:
        return prompt(self.tokens)


@dataclass(frozen=True, slots=True)
class ModelRow:
    agent: str
    model: str
    tokens: Tokens
    cache_write_1h: int
    saving: Saving


@dataclass(frozen=True, slots=True)
class ProjectRow:
    project: str  # as the ledger holds it (a path, usually)
    sessions: int
    tokens: Tokens
    last: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    agent: str
    session_id: str
    project: str
    tokens: Tokens
    first: float
    last: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.agent, self.session_id)


@dataclass(frozen=True, slots=True)
class Insights:
    query: Query
    today: date
    start: date  # the first day counted (the range snapped back to a whole first bucket)
    periods: tuple[Period, ...]
    series: tuple[str, ...]  # names of the split's series ("all" when not split)
    totals: Tokens
    saving: Saving
    projects: tuple[ProjectRow, ...]
    models: tuple[ModelRow, ...]
    sessions: tuple[SessionRow, ...]  # the top `TOP_SESSIONS` by cost
    session_count: int
    seconds: float = 0.0  # how long the queries took
    tz: tzinfo | None = field(default=None, compare=False)


def prompt(t: Tokens) -> int:
    """The prompt tokens (what caching can serve): input, cache reads and cache writes."""
    return t.input + t.cache_read + t.cache_write


def hit_rate(t: Tokens) -> float | None:
    """The share of prompt tokens served from cache (None: no prompt at all)."""
    p = prompt(t)
    return None if p <= 0 else t.cache_read / p


def period_start(d: date, bucket: str) -> date:
    if bucket == "week":
        return d - timedelta(days=d.weekday())
    if bucket == "month":
        return d.replace(day=1)
    return d


def next_period(d: date, bucket: str) -> date:
    if bucket == "week":
        return d + timedelta(days=7)
    if bucket == "month":
        return (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return d + timedelta(days=1)


def range_start(today: date, days: int, bucket: str) -> date:
    """The first day of the range: `days` days ending today, snapped back to the start of its
    first week or month, so every bar is a whole period (and equals the report's row)."""
    return period_start(today - timedelta(days=max(1, days) - 1), bucket)


def period_key(d: date, bucket: str) -> str:
    return report.PERIOD_KEYS[REPORT_VIEW[bucket]](d)


def rates_for(card: RateCard, floor: int | None) -> tuple[int, int, int, int, int]:
    """The card's rates for prompts above `floor` (a tier bracket's lower threshold; None: the
    lowest bracket) and up to the next threshold: the highest tier starting at or below it."""
    rates = card.base
    if floor is not None:
        for start, r in card.tiers:
            if start <= floor:
                rates = r
    return rates


def saving_of(p: Part, card: RateCard | None, floor: int | None) -> Saving:
    """One group's savings, exact for its tier bracket (`floor`: the bracket's lower threshold)."""
    t = p.tokens
    if card is None:
        return Saving(unknown_turns=t.turns, unknown_cache_read=t.cache_read)
    r_in, r_read, r_write, r_write_1h, _ = rates_for(card, floor)
    w1h = min(p.cache_write_1h, t.cache_write)
    return Saving(
        read_saved=t.cache_read * (r_in - r_read),
        write_premium=(t.cache_write - w1h) * (r_write - r_in) + w1h * (r_write_1h - r_in),
    )


def _add(target: Tokens, t: Tokens) -> None:
    target.turns += t.turns
    target.input += t.input
    target.cache_read += t.cache_read
    target.cache_write += t.cache_write
    target.output += t.output
    target.reasoning += t.reasoning
    target.cost_pico += t.cost_pico
    target.unpriced_turns += t.unpriced_turns


def _thresholds(pairs: Iterable[tuple[str, str]], cards: CardLookup) -> set[int]:
    out: set[int] = set()
    for agent, model in pairs:
        card = cards(agent, model)
        if card is not None:
            out.update(start for start, _ in card.tiers)
    return out


DayKey = tuple[date, str, str, int | None]  # (local day, agent, model, tier floor)
SessionKey = tuple[int, str]  # (ledger session id, model)


@dataclass(frozen=True, slots=True)
class Raw:
    """The SQL groups of a span of days, collapsed to days: what `assemble` adds up. Its Parts
    are never changed once made (`merge` makes new ones)."""

    days: dict[DayKey, Part]
    sessions: dict[SessionKey, Part]


def _merge_into(out: dict[Any, Part], key: Any, p: Part) -> None:
    acc = out.get(key)
    if acc is None:
        out[key] = Part(
            None, p.session, p.agent, p.model, p.tokens.copy(), p.first, p.last,
            project=p.project, cache_write_1h=p.cache_write_1h,
        )  # fmt: skip
        return
    _add(acc.tokens, p.tokens)
    acc.cache_write_1h += p.cache_write_1h
    if p.first:
        acc.first = p.first if not acc.first else min(acc.first, p.first)
    acc.last = max(acc.last, p.last)


def fetch(
    ledger: Ledger, scope: Scope, tz: tzinfo | None, cards: CardLookup, models: Iterable[tuple[str, str]]
) -> Raw:
    """Two queries on the ledger for `scope` (a span of days): sums per day, agent, model and
    price tier bracket, and per session and model. `models` names the models likely there, so
    their tier thresholds split the first query; a model it missed costs it once more."""
    tiers = sorted(_thresholds(models, cards))
    rows = report.ledger_day_parts(ledger, scope, tz, tiers)
    missing = _thresholds({(p.agent, p.model) for _, p in rows}, cards) - set(tiers)
    if missing:
        tiers = sorted(set(tiers) | missing)
        rows = report.ledger_day_parts(ledger, scope, tz, tiers)
    days: dict[DayKey, Part] = {}
    for d, p in rows:
        if d is not None:
            _merge_into(days, (d, p.agent, p.model, tiers[p.tier - 1] if p.tier else None), p)
    sessions: dict[SessionKey, Part] = {}
    for p in tally.parts(ledger, scope, by_session=True):
        assert p.session is not None
        _merge_into(sessions, (p.session[0], p.model), p)
    return Raw(days, sessions)


def merge(a: Raw, b: Raw) -> Raw:
    days: dict[DayKey, Part] = {}
    sessions: dict[SessionKey, Part] = {}
    for raw in (a, b):
        for k, p in raw.days.items():
            _merge_into(days, k, p)
        for k2, p in raw.sessions.items():
            _merge_into(sessions, k2, p)
    return Raw(days, sessions)


def compute(
    ledger: Ledger,
    base: Scope,
    q: Query,
    today: date,
    tz: tzinfo | None,
    cards: CardLookup,
    models: Iterable[tuple[str, str]] = (),
) -> Insights:
    """The view's numbers for the range of `q` ending `today` (in `tz`), within `base` (the
    sessions the dashboard shows), counted afresh (`Counter` keeps the days before today)."""
    return Counter().count(ledger, base, q, today, tz, cards, models)


class Counter:
    """Counts for a live view: the days before today are kept between counts (they change only
    when older turns are read: `invalidate`), so a count after a batch queries today alone.

    Used from one thread at a time (the view runs one count at a time); `invalidate` may be
    called from another: it only sets a flag, read before the next count queries."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._past: Raw | None = None
        self.stale = False
        #: how many counts had to query the days before today (for tests and the benchmark)
        self.past_queries = 0

    def invalidate(self) -> None:
        self.stale = True

    def count(
        self,
        ledger: Ledger,
        base: Scope,
        q: Query,
        today: date,
        tz: tzinfo | None,
        cards: CardLookup,
        models: Iterable[tuple[str, str]] = (),
    ) -> Insights:
        t0 = time.perf_counter()
        models = set(models)
        start = range_start(today, q.days, q.bucket)
        midnight = report.local_midnight(today, tz)
        # (the sessions in scope are left out of the key: a session joins it with its first turn,
        # and a turn before today, new to the ledger, makes the caller `invalidate` anyway)
        key = (start, today, tz, replace(base, sessions=None), base.sessions is None)
        if self._past is None or self.stale or key != self._key:
            self.stale = False  # (before the query: a batch arriving meanwhile sets it again)
            past_scope = replace(base, since=report.local_midnight(start, tz), until=midnight)
            self._past = fetch(ledger, past_scope, tz, cards, models)
            self._key = key
            self.past_queries += 1
        now_scope = replace(base, since=midnight, until=report.local_midnight(today + timedelta(days=1), tz))
        raw = merge(self._past, fetch(ledger, now_scope, tz, cards, models))
        return assemble(raw, q, start, today, tz, cards, time.perf_counter() - t0)


def assemble(
    raw: Raw, q: Query, start: date, today: date, tz: tzinfo | None, cards: CardLookup, seconds: float = 0.0
) -> Insights:
    """Periods, series, models, projects and top sessions from the collapsed groups."""
    rows = sorted(raw.days.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3] or 0))

    # ---- the split's series: agents or models by cost, the smallest beyond MAX_SERIES as "other"
    def name(p: Part) -> str:
        return p.agent if q.split == "agent" else p.model if q.split == "model" else ALL

    weight: dict[str, list[int]] = {}
    for _, p in rows:
        w = weight.setdefault(name(p), [0, 0])
        w[0] += p.tokens.cost_pico
        w[1] += p.tokens.total
    ranked = sorted(weight, key=lambda n: (-weight[n][0], -weight[n][1], n))
    series = (*ranked[:MAX_SERIES], OTHER) if len(ranked) > MAX_SERIES + 1 else tuple(ranked)
    index = {n: i for i, n in enumerate(series)}
    other = index.get(OTHER, len(series) - 1)

    # ---- periods, every one in the range (empty ones too)
    keys: list[tuple[str, date, date]] = []
    d = start
    while d <= today:
        nxt = next_period(d, q.bucket)
        keys.append((period_key(d, q.bucket), d, min(nxt - timedelta(days=1), today)))
        d = nxt
    totals: dict[str, Tokens] = {k: Tokens() for k, _, _ in keys}
    parts_of: dict[str, list[Tokens]] = {k: [Tokens() for _ in series] for k, _, _ in keys}
    saved: dict[str, Saving] = {k: Saving() for k, _, _ in keys}
    models_acc: dict[tuple[str, str], tuple[Tokens, list[int], list[Saving]]] = {}
    for (day, _, _, floor), p in rows:
        k = period_key(day, q.bucket)
        if k not in totals:  # (a turn dated after today by a skewed clock is outside the range)
            continue
        _add(totals[k], p.tokens)
        _add(parts_of[k][index.get(name(p), other)], p.tokens)
        card = cards(p.agent, p.model)
        s = saving_of(p, card, floor)
        saved[k] = saved[k] + s
        m = models_acc.get((p.agent, p.model))
        if m is None:
            m = models_acc[(p.agent, p.model)] = (Tokens(), [0], [Saving()])
        _add(m[0], p.tokens)
        m[1][0] += p.cache_write_1h
        m[2][0] = m[2][0] + s
    periods = tuple(Period(k, s, e, totals[k], tuple(parts_of[k]), saved[k]) for k, s, e in keys)
    model_rows = tuple(
        sorted(
            (ModelRow(a, m, t, w[0], sv[0]) for (a, m), (t, w, sv) in models_acc.items()),
            key=lambda r: (-r.tokens.cost_pico, -r.tokens.total, r.agent, r.model),
        )
    )

    # ---- sessions and projects, from the per-session groups
    sess: dict[int, tuple[str, str, str, Tokens, list[float]]] = {}
    for p in raw.sessions.values():
        assert p.session is not None
        sid, agent, session_id, project = p.session
        e = sess.get(sid)
        if e is None:
            e = sess[sid] = (agent, session_id, project, Tokens(), [0.0, 0.0])
        _add(e[3], p.tokens)
        span = e[4]
        if p.first:
            span[0] = p.first if not span[0] else min(span[0], p.first)
        span[1] = max(span[1], p.last)
    session_rows = [SessionRow(a, s, pr, t, sp[0], sp[1]) for a, s, pr, t, sp in sess.values()]
    session_rows.sort(key=lambda r: (-r.tokens.cost_pico, -r.tokens.total, -r.last, r.agent, r.session_id))
    projects: dict[str, tuple[Tokens, list[float], list[int]]] = {}
    for r in session_rows:
        pr = projects.get(r.project)
        if pr is None:
            pr = projects[r.project] = (Tokens(), [0.0], [0])
        _add(pr[0], r.tokens)
        pr[1][0] = max(pr[1][0], r.last)
        pr[2][0] += 1
    project_rows = tuple(
        sorted(
            (ProjectRow(name_, n[0], t, last[0]) for name_, (t, last, n) in projects.items()),
            key=lambda r: (-r.tokens.cost_pico, -r.tokens.total, r.project),
        )
    )
    total = Tokens()
    saving = Saving()
    for p_ in periods:
        _add(total, p_.tokens)
        saving = saving + p_.saving
    return Insights(
        query=q,
        today=today,
        start=start,
        periods=periods,
        series=series,
        totals=total,
        saving=saving,
        projects=project_rows,
        models=model_rows,
        sessions=tuple(session_rows[:TOP_SESSIONS]),
        session_count=len(session_rows),
        seconds=seconds,
        tz=tz,
    )
