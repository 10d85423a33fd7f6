"""Metrics for a team's stack: `watch --otlp` pushes OTLP/HTTP, `watch --prometheus` serves /metrics.

One OpenTelemetry `MeterProvider` with observable instruments whose callbacks read a ledger
snapshot (`reports.telemetry.Source`), and up to two readers: a private Prometheus registry served
over HTTP, and a periodic OTLP exporter. The OpenTelemetry packages are the optional extra
`tokwatch[telemetry]`, imported only by `start()`: no other command pays for them.

Temporality: cumulative, always. Each point is the ledger's total since `Snapshot.since` (kept
in the ledger, so it is the same after a restart), never a delta computed in this process: a
restart re-sends the same totals (no double count), and turns recorded while tokwatch was down
are in the next total (no drop). The start time of every counter point is that `since`.

`points()` is the whole mapping from a snapshot to names, values and attributes (docs/team.md
lists it); the OpenTelemetry part only hands those points over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokwatch import __version__
from tokwatch.config import TelemetryConfig
from tokwatch.reports.telemetry import Snapshot, Source

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- names (docs/team.md)
TOKENS = "tokwatch.token.usage"  # Prometheus: tokwatch_token_usage_total
REASONING = "tokwatch.token.reasoning"  # tokwatch_token_reasoning_total (already in type=output)
COST = "tokwatch.cost.usd"  # tokwatch_cost_usd_total
TURNS = "tokwatch.turns"  # tokwatch_turns_total
CONTEXT_USED = "tokwatch.context.used"  # tokwatch_context_used
CONTEXT_WINDOW = "tokwatch.context.window"  # tokwatch_context_window
ACTIVE = "tokwatch.sessions.active"  # tokwatch_sessions_active
PLAN_USED = "tokwatch.plan.window.utilization"  # tokwatch_plan_window_utilization_percent
PLAN_RESETS = "tokwatch.plan.window.resets_at"  # tokwatch_plan_window_resets_at_seconds

#: name -> (kind, unit, description). Units in braces are annotations: Prometheus drops them, so
#: the names above are what both the direct scrape and a collector's Prometheus exporter show.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    TOKENS: ("counter", "{token}", "Tokens billed, by type (input, output, cacheRead, cacheCreation)"),
    REASONING: ("counter", "{token}", "Reasoning tokens (a part of type=output, not in addition)"),
    COST: ("counter", "{USD}", "Cost in US dollars of the turns tokwatch could price"),
    TURNS: ("counter", "{turn}", "Billed requests; priced=false: cost unknown, not in the cost"),
    CONTEXT_USED: ("gauge", "{token}", "Tokens in the context window of an active session"),
    CONTEXT_WINDOW: ("gauge", "{token}", "Context window size of an active session (when known)"),
    ACTIVE: ("gauge", "{session}", "Sessions with a turn in the last active_minutes"),
    PLAN_USED: ("gauge", "%", "Share of a plan window used, as the agent reported it"),
    PLAN_RESETS: ("gauge", "s", "When a plan window resets (unix seconds)"),
}

#: Claude Code's `type` values, and the ledger's field for each
TOKEN_TYPES = (
    ("input", "input"),
    ("output", "output"),
    ("cacheRead", "cache_read"),
    ("cacheCreation", "cache_write"),
)

AGENT = "gen_ai.agent.name"
MODEL = "model"
PROJECT = "project"
TYPE = "type"
SESSION = "session.id"
USER = "user.id"
TEAM = "team.id"

DEFAULT_OTLP = "http://localhost:4318"
#: points per metric per collection before the SDK folds the rest into an overflow series
CARDINALITY = 100_000

Attrs = dict[str, str]
Points = dict[str, list[tuple[float, Attrs]]]


class TelemetryError(Exception):
    """A setting the telemetry cannot work with, or its packages missing: said to the user."""


INSTALL_HINT = (
    "the telemetry packages are not installed: `pipx install --force 'tokwatch[telemetry]'`"
    " (or `uv tool install 'tokwatch[telemetry]'`, `pip install 'tokwatch[telemetry]'`)"
)


# ---------------------------------------------------------------- the mapping
@dataclass(frozen=True, slots=True)
class Privacy:
    """What leaves the machine besides the counts (the `[telemetry]` switches)."""

    project: str = "name"  # name | path | hash | drop
    project_salt: str = ""
    user_id: str | None = None
    team: str | None = None
    session_id: bool = True

    @classmethod
    def of(cls, cfg: TelemetryConfig) -> Privacy:
        return cls(cfg.project, cfg.project_salt, cfg.user_id, cfg.team, cfg.session_id)

    def project_label(self, path: str) -> str:
        """The project as sent: '' means the attribute is left out."""
        if not path or self.project == "drop":
            return ""
        if self.project == "path":
            return path
        if self.project == "hash":
            return hashlib.sha256((self.project_salt + "\0" + path).encode()).hexdigest()[:16]
        return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or path

    def common(self) -> Attrs:
        out: Attrs = {}
        if self.user_id:
            out[USER] = self.user_id
        if self.team:
            out[TEAM] = self.team
        return out


def points(snap: Snapshot, privacy: Privacy) -> Points:
    """Every point of one collection: metric name -> [(value, attributes)]. Groups that the
    privacy switches make identical (two projects of one name, all projects dropped) are summed,
    so no attribute set is ever reported twice."""
    common = privacy.common()
    out: Points = {name: [] for name in INSTRUMENTS}

    sums: dict[tuple[str, str, str], list[int]] = {}
    for u in snap.usage:
        key = (u.agent, u.model, privacy.project_label(u.project))
        t = u.tokens
        acc = sums.setdefault(key, [0] * 8)
        for i, v in enumerate(
            (
                t.input,
                t.output,
                t.cache_read,
                t.cache_write,
                t.reasoning,
                t.cost_pico,
                t.turns,
                t.unpriced_turns,
            )
        ):
            acc[i] += v
    for (agent, model, project), acc in sorted(sums.items()):
        base = _attrs(common, agent, model, project)
        for i, (kind, _field) in enumerate(TOKEN_TYPES):
            out[TOKENS].append((acc[i], {**base, TYPE: kind}))
        out[REASONING].append((acc[4], base))
        out[COST].append((acc[5] / 1e12, base))
        out[TURNS].append((acc[6] - acc[7], {**base, "priced": "true"}))
        out[TURNS].append((acc[7], {**base, "priced": "false"}))

    active: dict[tuple[str, str], int] = {}
    for a in snap.active:
        project = privacy.project_label(a.project)
        active[(a.agent, project)] = active.get((a.agent, project), 0) + 1
        if not privacy.session_id:
            continue
        attrs = {**_attrs(common, a.agent, a.model, project), SESSION: a.session_id}
        out[CONTEXT_USED].append((a.context_used, attrs))
        if a.context_window:
            out[CONTEXT_WINDOW].append((a.context_window, attrs))
    for (agent, project), n in sorted(active.items()):
        attrs = {AGENT: agent, **({PROJECT: project} if project else {}), **common}
        out[ACTIVE].append((n, attrs))

    for w in snap.windows:
        attrs = {AGENT: w.agent, "limit.id": w.limit_id, "window.minutes": str(w.window_minutes), **common}
        out[PLAN_USED].append((w.used_percent, attrs))
        if w.resets_at:
            out[PLAN_RESETS].append((w.resets_at, attrs))
    return out


def _attrs(common: Attrs, agent: str, model: str, project: str) -> Attrs:
    out = {AGENT: agent, MODEL: model}
    if project:
        out[PROJECT] = project
    out.update(common)
    return out


# ---------------------------------------------------------------- settings
@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """Where and how to push. None fields are left to the exporter, which reads the standard
    OTEL_EXPORTER_OTLP_* variables for them (headers, timeout, compression, certificates)."""

    endpoint: str  # full URL, /v1/metrics included
    headers: Mapping[str, str] | None = None
    interval_ms: float | None = None  # None: OTEL_METRIC_EXPORT_INTERVAL, else 60 s
    notes: tuple[str, ...] = field(default=())


def metrics_url(base: str) -> str:
    """A base URL as OTEL_EXPORTER_OTLP_ENDPOINT takes it, to the metrics URL (kept as is when it
    already ends in /v1/metrics)."""
    base = base.strip()
    if base.rstrip("/").endswith("/v1/metrics"):
        return base.rstrip("/")
    return base.rstrip("/") + "/v1/metrics"


def resolve_otlp(
    value: str | None, cfg: TelemetryConfig, env: Mapping[str, str] | None = None
) -> OtlpSettings:
    """The push target: the flag's URL, else OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (as is), else
    OTEL_EXPORTER_OTLP_ENDPOINT, else `[telemetry] otlp_endpoint`, else localhost:4318."""
    env = os.environ if env is None else env
    for var in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        proto = env.get(var, "").strip()
        if proto:
            if proto != "http/protobuf":
                raise TelemetryError(
                    f"{var}={proto}: tokwatch pushes OTLP over HTTP with protobuf only; set it to"
                    " http/protobuf, and point --otlp at the collector's HTTP port (4318)"
                )
            break
    if value:
        endpoint = metrics_url(value)
    elif env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"].strip()
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = metrics_url(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    else:
        endpoint = metrics_url(cfg.otlp_endpoint or DEFAULT_OTLP)
    if not endpoint.startswith(("http://", "https://")):
        raise TelemetryError(f"OTLP endpoint {endpoint!r}: an http:// or https:// URL is needed")
    env_headers = env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    headers = None if env_headers or not cfg.otlp_headers else dict(cfg.otlp_headers)
    interval = None if env.get("OTEL_METRIC_EXPORT_INTERVAL") else cfg.interval_seconds * 1000
    notes = ()
    pref = env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "").strip().lower()
    if pref and pref != "cumulative":
        notes = (
            f"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE={pref} ignored: tokwatch sends"
            " cumulative totals read from its ledger (docs/team.md)",
        )
    return OtlpSettings(endpoint, headers, interval, notes)


def parse_address(text: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); a bare port listens on loopback."""
    text = text.strip()
    host = "127.0.0.1"
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise TelemetryError(f"--prometheus {text!r}: expected [ADDRESS]:PORT")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        if ":" in host:
            raise TelemetryError(f"--prometheus {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise TelemetryError(f"--prometheus {text!r}: the port is not a number") from None
    if not 0 <= port <= 65535 or not host:
        raise TelemetryError(f"--prometheus {text!r}: expected ADDRESS:PORT with a port up to 65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resource_attributes(cfg: TelemetryConfig, instance_id: str) -> Attrs:
    """The resource: who is sending (OTEL_RESOURCE_ATTRIBUTES adds to it; these keys win)."""
    out: Attrs = {
        "service.name": "tokwatch",
        "service.version": __version__,
        "service.instance.id": instance_id,
    }
    if cfg.host_name:
        out["host.name"] = socket.gethostname()
    return out


# ---------------------------------------------------------------- the SDK part
class Telemetry:
    """The running exporter(s). `start()` imports the OpenTelemetry SDK; `shutdown()` pushes a
    last time and closes the /metrics server."""

    def __init__(
        self,
        source: Source,
        cfg: TelemetryConfig,
        *,
        instance_id: str,
        prometheus: tuple[str, int] | None = None,
        otlp: OtlpSettings | None = None,
    ) -> None:
        self.source = source
        self.cfg = cfg
        self.privacy = Privacy.of(cfg)
        self.instance_id = instance_id
        self.prometheus = prometheus
        self.otlp = otlp
        self.prometheus_url: str | None = None
        self._provider: Any = None
        self._server: Any = None
        self._last: tuple[Snapshot, Points] | None = None
        self.cache: _Unchanged | None = None  # what /metrics serves while nothing changed

    def current(self) -> Points:
        """Points of the current snapshot (each callback of one collection asks; summed once)."""
        snap = self.source.snapshot()
        last = self._last
        if last is not None and _same(last[0], snap):
            return last[1]
        pts = points(snap, self.privacy)
        self._last = (snap, pts)
        return pts

    def start(self) -> None:
        try:
            from opentelemetry.metrics import CallbackOptions, Observation
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.resources import Resource
        except ImportError as e:
            raise TelemetryError(INSTALL_HINT) from e
        readers: list[Any] = []
        registry = None
        if self.prometheus is not None:
            registry, reader, self.cache = _prometheus_reader(self.source)
            readers.append(reader)
        if self.otlp is not None:
            readers.append(_otlp_reader(self.otlp, self.source))
        resource = Resource.create(resource_attributes(self.cfg, self.instance_id))
        provider = MeterProvider(resource=resource, metric_readers=readers)
        meter = provider.get_meter("tokwatch", __version__)

        def callback(name: str) -> Any:
            def observe(_options: CallbackOptions) -> Any:
                for value, attrs in self.current()[name]:
                    yield Observation(value, attrs)

            return observe

        for name, (kind, unit, description) in INSTRUMENTS.items():
            make = meter.create_observable_counter if kind == "counter" else meter.create_observable_gauge
            make(name, callbacks=[callback(name)], unit=unit, description=description)
        self._provider = provider
        if registry is not None and self.prometheus is not None:
            from prometheus_client import start_http_server

            host, port = self.prometheus
            try:
                self._server, _thread = start_http_server(port, addr=host, registry=registry)
            except OSError as e:
                provider.shutdown()
                raise TelemetryError(f"cannot serve metrics on {host}:{port}: {e}") from e
            bound = self._server.server_address[1]
            shown = f"[{host}]" if ":" in host else host
            self.prometheus_url = f"http://{shown}:{bound}/metrics"

    def shutdown(self) -> None:
        """A last OTLP push (bounded by the exporter's timeout), then the /metrics server stops."""
        if self._provider is not None:
            try:
                self._provider.shutdown()
            except Exception as e:  # never let a failed last push hide the real exit status
                log.warning("telemetry shutdown: %s", e)
            self._provider = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _same(a: Snapshot, b: Snapshot) -> bool:
    """The same figures: `Source` hands out the same tuples until it reads the ledger again."""
    return a.since == b.since and a.usage is b.usage and a.active is b.active and a.windows is b.windows


def _prometheus_reader(source: Source) -> tuple[CollectorRegistry, Any, _Unchanged]:
    """A reader on a private registry (nothing global, no process or platform collectors),
    served through a cache: a scrape while the figures are unchanged costs no collection."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import ObservableCounter, ObservableGauge
    from prometheus_client import CollectorRegistry

    inner = CollectorRegistry(auto_describe=False)
    reader = PrometheusMetricReader(
        disable_target_info=True,
        scope_info_enabled=False,
        registry=inner,
        cardinality_limits={ObservableCounter: CARDINALITY, ObservableGauge: CARDINALITY},
    )
    served = CollectorRegistry(auto_describe=False)
    cache = _Unchanged(inner, source)
    served.register(cache)
    return served, reader, cache


class _Unchanged:
    """The metric families of the last collection, again, while the snapshot is the same."""

    def __init__(self, inner: CollectorRegistry, source: Source) -> None:
        import threading

        self.inner = inner
        self.source = source
        self.lock = threading.Lock()
        self.last: Snapshot | None = None
        self.families: list[Any] = []
        self.collections = 0

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        with self.lock:
            snap = self.source.snapshot()
            if self.last is None or not _same(self.last, snap):
                self.families = list(self.inner.collect())
                self.last = snap
                self.collections += 1
            return self.families


def _otlp_reader(settings: OtlpSettings, source: Source) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )

    cumulative = dict.fromkeys(
        (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge),
        AggregationTemporality.CUMULATIVE,
    )

    class _LedgerStart(OTLPMetricExporter):  # type: ignore[misc]
        """Stamps every counter point with the ledger's start time: the SDK would use this
        process's start, and a backend would then take each restart for a counter reset."""

        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any
        ) -> MetricExportResult:
            return super().export(
                _restamp(metrics_data, int(source.snapshot().since * 1e9)), timeout_millis, **kw
            )

    exporter = _LedgerStart(
        endpoint=settings.endpoint,
        headers=dict(settings.headers) if settings.headers is not None else None,
        preferred_temporality=cumulative,
    )
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.interval_ms,
        cardinality_limits={ObservableCounter: CARDINALITY, ObservableGauge: CARDINALITY},
    )


def _restamp(data: Any, start_ns: int) -> Any:
    """`data` with the start time of its monotonic sums set to `start_ns`."""
    from dataclasses import replace

    from opentelemetry.sdk.metrics.export import Sum

    resources = []
    for rm in data.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            metrics = []
            for m in sm.metrics:
                d = m.data
                if isinstance(d, Sum) and d.is_monotonic:
                    pts = [
                        replace(p, start_time_unix_nano=min(start_ns, p.time_unix_nano))
                        for p in d.data_points
                    ]
                    m = replace(m, data=replace(d, data_points=pts))
                metrics.append(m)
            scopes.append(replace(sm, metrics=metrics))
        resources.append(replace(rm, scope_metrics=scopes))
    return replace(data, resource_metrics=resources)
