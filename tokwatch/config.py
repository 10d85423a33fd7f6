"""User configuration: `$XDG_CONFIG_HOME/tokwatch/config.toml` (or `$TOKWATCH_CONFIG`, or `--config`).

Validated once at start-up by pydantic so a typo is an error message, not a wrong number later.
"""

from __future__ import annotations

import json
import os
import re
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
    #: watchfiles tuning: how long a batch may be held while files keep changing, and the poll step.
    debounce_ms: int = Field(default=50, ge=0)
    step_ms: int = Field(default=20, ge=1)
    force_polling: bool = False
    #: Limits per day, 5-hour block and session (see docs/reports.md).
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    #: The dashboard's colour theme (a Textual theme name); the dashboard saves the one picked
    #: in its command palette here.
    theme: str | None = None


class ConfigError(Exception):
    """What is wrong with a config file, one line per problem (already worded for a person)."""


def default_config_path(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("TOKWATCH_CONFIG"):
        return Path(env["TOKWATCH_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokwatch" / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """The config at `path` (default location when None); defaults when the default file does not
    exist. A file named explicitly (`path`) must exist."""
    explicit = path is not None
    path = default_config_path() if path is None else path.expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        if explicit:
            raise ConfigError(f"config file not found: {path}") from e
        return Config()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"invalid config {path}: not UTF-8 text (byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid config {path}: not valid TOML: {e}") from e
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(f"invalid config {path}: {problem}" for problem in describe(e))) from e


def describe(e: ValidationError) -> list[str]:
    """Pydantic's errors as one line each: the key, what is wrong, and the value found."""
    out = []
    for err in e.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            out.append(f"{where}: unknown key")
        elif kind == "missing":
            out.append(f"{where}: missing (required)")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (found {value!r})"
            out.append(f"{where}: {msg[:1].lower()}{msg[1:]}{shown}")
    return out


def with_top_level_key(text: str, key: str, value: str) -> str:
    """`text` (a config file) with `key = "value"` set at the top level, everything else as it
    was: comments, order, tables. (tomllib reads TOML but cannot write it.)"""
    line = f"{key} = {json.dumps(value)}"
    lines = text.splitlines()
    first_table = next((i for i, x in enumerate(lines) if x.lstrip().startswith("[")), len(lines))
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(first_table):
        if pattern.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(first_table, line)
        if first_table < len(lines) - 1 and lines[first_table + 1].strip():
            lines.insert(first_table + 1, "")
    return "\n".join(lines) + "\n"
