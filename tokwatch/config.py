"""User configuration: `$XDG_CONFIG_HOME/tokwatch/config.toml` (or `$TOKWATCH_CONFIG`, or `--config`).

Validated once at start-up by pydantic so a typo is an error message, not a wrong number later.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tokwatch.fsio import read_regular

#: The highest price accepted, in USD per million tokens (10 cents a token): hundreds of times any
#: real model's. Above it is a typo, and `inf` or 1e308 would overflow every cost computed from it.
MAX_PRICE = 100_000.0
#: A price in USD per million tokens: a finite number from 0 to MAX_PRICE.
Price = Annotated[float, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]


class Budget(BaseModel):
    """One limit, in tokens (all kinds, cache included) or in US dollars: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)

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
    input: Price | None = None
    output: Price | None = None
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None


class PriceOverride(BaseModel):
    """A model's prices in USD per million tokens; unset cache prices fall back to `input`."""

    model_config = ConfigDict(extra="forbid")
    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None
    tiers: list[PriceTier] = Field(default_factory=list)


class TelemetryConfig(BaseModel):
    """`[telemetry]` in config.toml: what `tokwatch watch --otlp/--prometheus` send (docs/team.md).

    Nothing is sent unless one of those flags is given: these are their defaults. The standard
    `OTEL_EXPORTER_OTLP_*` variables win over the keys here; a flag's value wins over both."""

    model_config = ConfigDict(extra="forbid")
    #: OTLP/HTTP base URL (`/v1/metrics` is appended), as OTEL_EXPORTER_OTLP_ENDPOINT.
    otlp_endpoint: str | None = None
    #: Extra HTTP headers for the OTLP push (an auth token), as OTEL_EXPORTER_OTLP_HEADERS.
    otlp_headers: dict[str, str] = Field(default_factory=dict)
    #: Seconds between two OTLP pushes (OTEL_METRIC_EXPORT_INTERVAL, in ms, wins).
    interval_seconds: float = Field(default=60.0, ge=1.0, le=86_400.0)
    #: Where `--prometheus` listens when given no address: loopback unless said otherwise here.
    prometheus_address: str = "127.0.0.1:9464"
    #: `user.id` on every point (who spent it, for per-person panels); not sent when unset.
    user_id: str | None = None
    #: `team.id` on every point; not sent when unset.
    team: str | None = None
    #: How the project is sent: its folder's name, the full path, a salted hash of the path, or not at all.
    project: Literal["name", "path", "hash", "drop"] = "name"
    #: Mixed into project hashes, so a hash cannot be matched against guessed paths.
    project_salt: str = ""
    #: Send `host.name` (the machine's name) as a resource attribute.
    host_name: bool = True
    #: Send `session.id` on the per-session context gauges (off: those gauges are not sent).
    session_id: bool = True

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint is an http:// or https:// URL")
        return v


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
    step_ms: int = Field(default=25, ge=1)
    force_polling: bool = False
    #: Limits per day, 5-hour block and session (see docs/reports.md).
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    #: Metrics for a team's OpenTelemetry / Prometheus stack (docs/team.md).
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    #: The dashboard's colour theme (a Textual theme name); the dashboard saves the one picked
    #: in its command palette here.
    theme: str | None = None
    #: Alerts and staleness of the plan windows agents report (see docs/limits.md).
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


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
        raw = read_regular(path)  # (a FIFO or a device named as the config must not hang us)
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
