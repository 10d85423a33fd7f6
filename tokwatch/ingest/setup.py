"""How a command puts the reading path together from the user's config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokwatch.agents import get_agent
from tokwatch.config import Config
from tokwatch.core.cache import Cache
from tokwatch.core.pricing import Pricer
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine


def make_engine(paths: Sequence[Path] | None, config: Config, use_cache: bool = True) -> Engine:
    """The engine every command reads through: the config's prices and watch settings, the cache."""
    store = Store(make_pricer(config))
    return Engine(
        store,
        list(paths) if paths else None,
        debounce_ms=config.debounce_ms,
        step_ms=config.step_ms,
        force_polling=config.force_polling,
        cache=Cache() if use_cache else None,
    )


def make_pricer(config: Config | None = None) -> Pricer:
    """Prices with every agent's rules (provider hints, context-window rules)."""
    return Pricer(config, get_agent)
