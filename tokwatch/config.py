"""User configuration: `$XDG_CONFIG_HOME/tokwatch/config.toml` (or `$TOKWATCH_CONFIG`, or `--config`).

Validated once at start-up by pydantic so a typo is an error message, not a wrong number later.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Budget(BaseModel):
    """One limit, in tokens (all kinds, cache included) or in US dollars: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Budget:
        if (self.tokens is None) == (self.usd is None):
            raise ValueError("a budget is either `tokens = N` or `usd = X`")
        return self


class BudgetsConfig(BaseModel):
    """`[budgets]` in config.toml."""

    model_config = ConfigDict(extra="forbid")
    daily: Budget | None = None
    block: Budget | None = None
    session: Budget | None = None
    #: Agents the daily and block budgets count (empty: all); `["claude"]` matches Claude plans.
    agents: list[str] = Field(default_factory=list)

    def items(self) -> list[tuple[str, Budget]]:
        return [(n, b) for n in ("daily", "block", "session") if (b := getattr(self, n)) is not None]


class LimitsConfig(BaseModel):
    """`[limits]` in config.toml: the plan windows the agents report (docs/limits.md)."""

    model_config = ConfigDict(extra="forbid")
    #: A window's share at which the dashboard alerts (bell and notice), once per crossing per window.
    alerts: list[float] = Field(default_factory=lambda: [80.0, 95.0])
    #: A sample older than this is marked stale (the plan may have been used elsewhere since).
    stale_minutes: float = Field(default=15, gt=0)

    @model_validator(mode="after")
    def _alerts(self) -> LimitsConfig:
        if any(not (0 < a <= 1000) for a in self.alerts):
            raise ValueError("limits.alerts are percentages above 0")
        self.alerts = sorted(set(self.alerts))
        return self


class PriceTier(BaseModel):
    """Prices (USD per million tokens) that apply to a whole request whose prompt exceeds `start`."""

    model_config = ConfigDict(extra="forbid")
    start: int = Field(gt=0)
    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)


class PriceOverride(BaseModel):
    """A model's prices in USD per million tokens; unset cache prices fall back to `input`."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)
    tiers: list[PriceTier] = Field(default_factory=list)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: A session with a turn in the last N minutes is "active".
    active_minutes: float = Field(default=30, gt=0)
    #: Extra or corrected prices, by model name (matched after normalization, before genai-prices).
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    #: Model name -> the name to price it as (e.g. a proxy's alias).
    aliases: dict[str, str] = Field(default_factory=dict)
    #: Model name -> context window in tokens, overriding the agent's default.
    context_windows: dict[str, int] = Field(default_factory=dict)
    #: Where `e` in the dashboard writes CSV snapshots (default: the current directory).
    export_dir: str | None = None
    #: Where the ledger (ledger.db) lives; $TOKWATCH_DATA_DIR wins (default: $XDG_DATA_HOME/tokwatch).
    data_dir: str | None = None
    #: watchfiles tuning: how long a batch may be held while files keep changing, and the poll step.
    debounce_ms: int = Field(default=50, ge=0)
    step_ms: int = Field(default=20, ge=1)
    force_polling: bool = False
    #: Limits per day, 5-hour block and session (see docs/reports.md).
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    #: Alerts and staleness of the plan windows agents report (see docs/limits.md).
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


class ConfigError(Exception):
    pass


def default_config_path(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_CONFIG"):
        return Path(env["TOKWATCH_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokwatch" / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """The config at `path` (default location when None); defaults when the file does not exist."""
    path = default_config_path() if path is None else path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        return Config.model_validate(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValidationError) as e:
        raise ConfigError(f"invalid config {path}: {e}") from e
