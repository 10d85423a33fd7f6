"""How a command puts the reading path together from the user's config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokwatch.agents import get_agent
from tokwatch.config import Config
from tokwatch.core.ledger import Ledger, default_data_dir
from tokwatch.core.pricing import Pricer
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.legacy import default_cache_dir


def make_pricer(config: Config | None = None) -> Pricer:
    """Prices with every agent's rules (provider hints, context-window rules)."""
    return Pricer(config, get_agent)


def data_dir(config: Config) -> Path:
    """Where the ledger lives: $TOKWATCH_DATA_DIR, else the config's `data_dir`, else XDG's."""
    import os

    if os.environ.get("TOKWATCH_DATA_DIR") or not config.data_dir:
        return default_data_dir()
    return Path(config.data_dir).expanduser()


def make_ledger(config: Config, use_ledger: bool = True) -> Ledger:
    return Ledger.at(data_dir(config)) if use_ledger else Ledger.memory()


def make_engine(paths: Sequence[Path] | None, config: Config, use_cache: bool = True) -> Engine:
    """The engine every command reads through: the config's prices and watch settings, and the
    ledger (`use_cache=False`: a private ledger in memory, every log read from the start)."""
    store = Store(make_pricer(config), make_ledger(config, use_cache))
    return Engine(
        store,
        list(paths) if paths else None,
        debounce_ms=config.debounce_ms,
        step_ms=config.step_ms,
        force_polling=config.force_polling,
        legacy_cache=default_cache_dir() if use_cache else None,
    )
