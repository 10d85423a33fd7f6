"""Dollars per turn, from genai-prices' bundled (offline) data or the user's overrides.

genai-prices takes ~90 us per call, too slow for a backfill of a million turns, so each model's
prices are resolved ONCE into a `RateCard`: per-token prices in integer picodollars for every
token kind, per tier bracket. They are measured by probing genai-prices itself with one-kind usages,
so the card prices exactly as the library does (its cache decompositions, 1h writes, tiers that
apply to the whole request when its prompt exceeds the threshold). Costs are integers: sums and
the subtract-then-add of an updated turn are exact.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from tokwatch.core.models import Turn

if TYPE_CHECKING:
    from tokwatch.config import Config, PriceOverride

PICO = Decimal(10) ** 12
MAX_TURN_COST_USD = 1e6  # an agent-reported cost above this for ONE request is not believed
_PROBE = 1_000_000

# (input, cache_read, cache_write_5m, cache_write_1h, output) in picodollars per token
Rates = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class RateCard:
    model: str  # the name it was priced as
    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()  # (prompt threshold, rates), ascending

    def cost_pico(self, t: Turn) -> int:
        rates = self.base
        prompt = t.input + t.cache_read + t.cache_write
        for start, r in reversed(self.tiers):
            if prompt > start:
                rates = r
                break
        cw_1h = t.cache_write_1h
        return (
            t.input * rates[0]
            + t.cache_read * rates[1]
            + (t.cache_write - cw_1h) * rates[2]
            + cw_1h * rates[3]
            + t.output * rates[4]
        )


_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
_PROVIDER_PREFIXES = ("models/", "anthropic/", "openai/", "google/", "gemini/", "vertex_ai/", "bedrock/")


@lru_cache(maxsize=4096)
def normalize_model(name: str) -> str:
    """`models/gemini-2.5-pro`, `anthropic/claude-sonnet-4.5[1m]` -> `gemini-2.5-pro`, `claude-sonnet-4-5`."""
    n = name.strip().lower()
    for prefix in _PROVIDER_PREFIXES:
        if n.startswith(prefix):
            n = n[len(prefix) :]
    n = n.replace("[1m]", "").strip()
    if n.startswith("claude-"):
        n = re.sub(r"(\d)\.(\d)", r"\1-\2", n)  # claude-sonnet-4.5 -> claude-sonnet-4-5
    return n


def _pico(price_per_mtok: Decimal | float) -> int:
    return int((Decimal(str(price_per_mtok)) * PICO / _PROBE).to_integral_value())


def card_from_override(model: str, o: PriceOverride) -> RateCard:
    def rates(inp: float, out: float, cr: float | None, cw: float | None, cw1h: float | None) -> Rates:
        cw_ = inp if cw is None else cw
        return (
            _pico(inp),
            _pico(inp if cr is None else cr),
            _pico(cw_),
            _pico(cw_ if cw1h is None else cw1h),
            _pico(out),
        )

    base = rates(o.input, o.output, o.cache_read, o.cache_write, o.cache_write_1h)
    tiers = []
    for t in sorted(o.tiers, key=lambda t: t.start):
        tiers.append(
            (
                t.start,
                rates(
                    o.input if t.input is None else t.input,
                    o.output if t.output is None else t.output,
                    t.cache_read if t.cache_read is not None else o.cache_read,
                    t.cache_write if t.cache_write is not None else o.cache_write,
                    t.cache_write_1h if t.cache_write_1h is not None else o.cache_write_1h,
                ),
            )
        )
    return RateCard(model=model, base=base, tiers=tuple(tiers))


def card_from_genai_prices(model: str, provider: str | None) -> RateCard | None:
    """Probe genai-prices for the model's per-token prices in each tier bracket; None if unknown."""
    from genai_prices import Usage, calc_price
    from genai_prices.types import TieredPrices

    def price(**usage: int) -> Decimal:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calc_price(Usage(**usage), model, provider_id=provider).total_price

    try:
        first = calc_price(Usage(input_tokens=1, output_tokens=1), model, provider_id=provider)
    except Exception:  # genai-prices raises LookupError and friends for unknown models
        if provider is None:
            return None
        return card_from_genai_prices(model, None)
    starts = sorted(
        {
            tier.start
            for v in vars(first.model_price).values()
            if isinstance(v, TieredPrices)
            for tier in v.tiers
        }
    )

    def bracket(prompt: int) -> Rates:
        p_in = price(input_tokens=prompt)
        p_cr = price(input_tokens=prompt, cache_read_tokens=prompt)
        p_cw = price(input_tokens=prompt, cache_write_tokens=prompt)
        p_cw1h = price(input_tokens=prompt, cache_write_tokens=prompt, cache_write_1h_tokens=prompt)
        p_out = price(input_tokens=prompt, output_tokens=prompt) - p_in
        return tuple(int((p * PICO / prompt).to_integral_value()) for p in (p_in, p_cr, p_cw, p_cw1h, p_out))  # type: ignore[return-value]

    base_prompt = min(_PROBE, starts[0]) if starts else _PROBE
    base = bracket(base_prompt)
    tiers = tuple((s, bracket(s + _PROBE)) for s in starts)
    return RateCard(model=first.model.id, base=base, tiers=tiers)


class AgentRules(Protocol):
    """What pricing needs to know of an agent (`tokwatch.agents.base.Agent` is one)."""

    @property
    def provider(self) -> str | None: ...

    def context_window(self, model: str, max_prompt: int) -> int: ...


class Pricer:
    """Resolves a turn's model to a rate card (memoized) and a session's context window.

    `agents` names an agent's rules (its provider, for the price lookup, and its window rule); the
    reading layer passes `tokwatch.agents.get_agent`. The core knows no agent itself.
    """

    def __init__(
        self, config: Config | None = None, agents: Callable[[str], AgentRules | None] | None = None
    ) -> None:
        if config is None:
            from tokwatch.config import Config

            config = Config()
        self.config = config
        self._cards: dict[tuple[str, str], RateCard | None] = {}
        self._overrides = {normalize_model(k): (k, v) for k, v in self.config.prices.items()}
        self._aliases = {normalize_model(k): v for k, v in self.config.aliases.items()}
        self._windows = {normalize_model(k): v for k, v in self.config.context_windows.items()}
        self._agents = agents or (lambda _name: None)

    def key(self) -> str:
        """What prices depend on: the user's overrides and the installed genai-prices data. Cached
        rate cards and folded sessions are only reused under the same key."""
        import hashlib

        import orjson

        from tokwatch import __version__

        cfg = self.config.model_dump(include={"prices", "aliases", "context_windows"})
        # tokwatch's version too: a release may price differently (names, probing, windows)
        blob = orjson.dumps([cfg, _genai_prices_stamp(), __version__], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:32]

    def cards_rows(self) -> list[list[object]]:
        """The resolved cards, for the cache (a warm start then never imports genai-prices)."""
        return [
            [agent, model, None if c is None else [c.model, list(c.base), [[s, list(r)] for s, r in c.tiers]]]
            for (agent, model), c in self._cards.items()
        ]

    def preload(self, rows: list[list[object]]) -> None:
        """Cards from `cards_rows` of an earlier run with the same `key`; malformed ones are skipped."""
        for row in rows:
            try:
                agent, model, c = row
                if c is None:
                    card = None
                else:
                    name, base, tiers = c
                    card = RateCard(
                        model=str(name),
                        base=_rates(base),
                        tiers=tuple((int(s), _rates(r)) for s, r in tiers),
                    )
                self._cards.setdefault((str(agent), str(model)), card)
            except (TypeError, ValueError):
                continue

    def card(self, agent: str, model: str) -> RateCard | None:
        key = (agent, model)
        try:
            return self._cards[key]
        except KeyError:
            pass
        card = self._resolve(agent, model)
        self._cards[key] = card
        return card

    def _resolve(self, agent: str, model: str) -> RateCard | None:
        name = normalize_model(model)
        name = normalize_model(self._aliases.get(name, name))
        if name in self._overrides:
            original, override = self._overrides[name]
            return card_from_override(original, override)
        if not name or name in ("unknown", "<synthetic>"):
            return None
        rules = self._agents(agent)
        provider = rules.provider if rules is not None else None
        card = card_from_genai_prices(name, provider)
        if card is None:
            stripped = _DATE_SUFFIX.sub("", name)
            if stripped != name:
                card = card_from_genai_prices(stripped, provider)
        return card

    def cost_pico(self, t: Turn) -> int | None:
        c = t.cost_usd
        if c is not None and math.isfinite(c) and 0 <= c < MAX_TURN_COST_USD:
            return round(c * 1e12)
        # (an absurd agent-reported cost, e.g. 1e300 from a hostile log, is ignored: priced by tokens)
        card = self.card(t.agent, t.model)
        return None if card is None else card.cost_pico(t)

    def is_known(self, agent: str, model: str) -> bool:
        return self.card(agent, model) is not None

    def context_window(self, agent: str, model: str, logged: int, max_prompt: int) -> int:
        """Config override, else what the log said, else the agent's rule (e.g. Claude's 1M)."""
        return self.window(agent, model, logged, max_prompt)[0]

    def window(self, agent: str, model: str, logged: int, max_prompt: int) -> tuple[int, bool]:
        """The context window and whether it is only assumed: the agent's default where neither
        the log nor the config says (e.g. Codex's 272k when `model_context_window` is null).
        0 is unknown."""
        override = self._windows.get(normalize_model(model))
        if override:
            return override, False
        if logged:
            return logged, False
        rules = self._agents(agent)
        if rules is None:
            return 0, False
        window = rules.context_window(model, max_prompt)
        return window, bool(window) and bool(getattr(rules, "window_assumed", False))


def _rates(v: object) -> Rates:
    if not isinstance(v, list) or len(v) != 5:
        raise ValueError("rates are five integers")
    a, b, c, d, e = (int(x) for x in v)
    return (a, b, c, d, e)


def _genai_prices_stamp() -> list[object]:
    """Which genai-prices data is installed, without importing it (~50 ms): its files' size/mtime."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("genai_prices")
    if spec is None or not spec.origin:
        return []
    folder = os.path.dirname(spec.origin)
    out: list[object] = [folder]
    for name in ("__init__.py", "data.py"):
        try:
            st = os.stat(os.path.join(folder, name))
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out.append(None)
    return out
