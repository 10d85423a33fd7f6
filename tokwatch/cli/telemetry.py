"""`watch --otlp [ENDPOINT]` / `watch --prometheus [ADDR:PORT]`: settings checked before the
backfill (a typo fails in milliseconds, not after minutes of reading), exporters started after
it (the first collection already has the whole history)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from tokwatch.config import Config
from tokwatch.ingest.engine import Engine
from tokwatch.output.telemetry import (
    INSTALL_HINT,
    OtlpSettings,
    Telemetry,
    TelemetryError,
    is_loopback,
    parse_address,
    resolve_otlp,
)
from tokwatch.reports import tally
from tokwatch.reports.telemetry import Source, instance_id, since


@dataclass(frozen=True, slots=True)
class Plan:
    otlp: OtlpSettings | None
    prometheus: tuple[str, int] | None


def plan(args: argparse.Namespace, config: Config) -> Plan:
    """Raises TelemetryError on a bad setting, or when the extra is not installed."""
    cfg = config.telemetry
    otlp = None
    if args.otlp is not None:
        if args.otlp and "://" not in args.otlp:
            raise TelemetryError(
                f"--otlp {args.otlp!r}: expected a URL such as http://collector:4318"
                " (log paths go before --otlp, or write --otlp=URL)"
            )
        otlp = resolve_otlp(args.otlp or None, cfg)
    prometheus = None
    if args.prometheus is not None:
        prometheus = parse_address(args.prometheus or cfg.prometheus_address)
    needed = ["opentelemetry.sdk.metrics"]
    if otlp is not None:
        needed.append("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    if prometheus is not None:
        needed += ["opentelemetry.exporter.prometheus", "prometheus_client"]
    if not all(_installed(m) for m in needed):
        raise TelemetryError(INSTALL_HINT)
    return Plan(otlp, prometheus)


def _installed(module: str) -> bool:
    """Found without importing it (a parent package that is missing counts as not found)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def start(p: Plan, engine: Engine, config: Config) -> Telemetry:
    """Start the exporters over the engine's ledger (call on the engine's thread: the counters'
    start time and the instance id are written to the ledger the first time)."""
    ledger = engine.store.ledger
    since(ledger)
    store = engine.store
    source = Source(
        ledger, lambda: tally.Scope(sessions=store.scope_ids()), active_minutes=config.active_minutes
    )
    t = Telemetry(
        source, config.telemetry, instance_id=instance_id(ledger), prometheus=p.prometheus, otlp=p.otlp
    )
    t.start()
    if p.prometheus is not None and not is_loopback(p.prometheus[0]):
        print(
            f"tokwatch: serving metrics on {t.prometheus_url}: reachable from other machines",
            file=sys.stderr,
        )
    if p.otlp is not None:
        for note in p.otlp.notes:
            print(f"tokwatch: {note}", file=sys.stderr)
    return t
