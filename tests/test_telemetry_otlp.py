"""OTLP push through a real collector: the installed `tokwatch watch --otlp` sends to rotel (an
OpenTelemetry collector built in Rust, shipped in a PyPI wheel), which receives OTLP/HTTP, batches
and forwards it over OTLP/HTTP to a sink that decodes the protobuf. What comes out holds the
export's exact totals, cumulative, with the ledger's start time and instance id across a restart,
and exactly the attributes docs/team.md lists."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from telemetry_support import (
    OTLPSink,
    Watch,
    append_claude_turn,
    clean_env,
    copy_real,
    cost_by_agent_model,
    export_rows,
    free_port,
    totals_by_agent_model,
    wait_listening,
)

try:
    import rotel
except ImportError:  # the [test] extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("rotel is not installed (pip install -e '.[test]')", allow_module_level=True)

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

ROTEL = Path(rotel.__file__).parent / "rotel-agent"
TOKENS = "tokwatch.token.usage"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, OTLPSink]]:
    """rotel listening for OTLP/HTTP on a free loopback port, forwarding to the sink."""
    sink = OTLPSink()
    port, grpc = free_port(), free_port()
    log = open(tmp_path / "rotel.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(ROTEL),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc}",
            "--otlp-receiver-traces-disabled",
            "--otlp-receiver-logs-disabled",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            sink.url,
            "--otlp-exporter-protocol",
            "http",
            "--otlp-exporter-compression",
            "none",
            "--batch-timeout",
            "100ms",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, 30, proc)
        yield f"http://127.0.0.1:{port}", sink
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        sink.close()


def _attrs(kvs: object) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in kvs}  # type: ignore[attr-defined]


def _entries(req: object) -> list[tuple[dict[str, str], dict[str, object]]]:
    """(resource attributes, name -> metric) for each resource in one request: the collector
    batches, so one request may carry pushes from two processes (a last push and the next start)."""
    return [
        (_attrs(rm.resource.attributes), {m.name: m for sm in rm.scope_metrics for m in sm.metrics})
        for rm in req.resource_metrics  # type: ignore[attr-defined]
    ]


def _wait(sink: OTLPSink, pred: object, timeout: float) -> tuple[dict[str, str], dict[str, object]]:
    """The first pushed resource whose metrics satisfy `pred` (tokens present and more)."""
    found = []

    def match(req: object) -> bool:
        for res, metrics in _entries(req):
            if TOKENS in metrics and pred(metrics):  # type: ignore[operator]
                found.append((res, metrics))
                return True
        return False

    sink.wait_for(match, timeout)
    return found[0]


def _token_totals(metric: object) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for dp in metric.sum.data_points:  # type: ignore[attr-defined]
        a = _attrs(dp.attributes)
        key = (a["gen_ai.agent.name"], a["model"], a["type"])
        out[key] = out.get(key, 0) + dp.as_int
    return out


def _write_config(home: Path) -> None:
    cfg = home / "tokwatch" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        '[telemetry]\nuser_id = "alice@example.com"\nteam = "platform"\nproject = "hash"\nproject_salt = "s3"\n'
    )


def test_otlp_push_through_a_real_collector_carries_the_exports_exact_totals(
    tmp_path: Path, collector: tuple[str, OTLPSink]
) -> None:
    endpoint, sink = collector
    root = copy_real(tmp_path)
    _write_config(Path(os.environ["XDG_CONFIG_HOME"]))
    # the standard variable sets the push interval (the config's 60 s would make the test wait)
    env = clean_env(OTEL_METRIC_EXPORT_INTERVAL="300")
    watch = Watch([str(root), "--otlp", endpoint], env, tmp_path)
    try:
        ready = watch.ready()
        assert ready["otlp"] == endpoint + "/v1/metrics" and ready["prometheus"] is None
        rows = export_rows([root], clean_env())
        expected = totals_by_agent_model(rows)

        resource, metrics = _wait(sink, lambda m: True, 30)
        assert resource["service.name"] == "tokwatch"
        assert resource["host.name"] and resource["service.version"]
        instance = resource["service.instance.id"]

        tokens = metrics[TOKENS]
        assert tokens.unit == "{token}"
        assert tokens.sum.is_monotonic
        assert tokens.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        assert _token_totals(tokens) == expected

        # exactly the documented attributes, the project hashed, who and which team on every point
        for dp in tokens.sum.data_points:
            a = _attrs(dp.attributes)
            assert set(a) <= {"gen_ai.agent.name", "model", "project", "type", "user.id", "team.id"}
            assert a["user.id"] == "alice@example.com" and a["team.id"] == "platform"
            assert a["type"] in {"input", "output", "cacheRead", "cacheCreation"}
            if "project" in a:
                assert len(a["project"]) == 16 and int(a["project"], 16) >= 0
        sent_projects = {_attrs(dp.attributes).get("project") for dp in tokens.sum.data_points}
        assert not any("spotter" in (p or "") or "/" in (p or "") for p in sent_projects)

        cost = metrics["tokwatch.cost.usd"]
        want = cost_by_agent_model(rows)
        got: dict[tuple[str, str], float] = {}
        for dp in cost.sum.data_points:
            a = _attrs(dp.attributes)
            got[(a["gen_ai.agent.name"], a["model"])] = (
                got.get((a["gen_ai.agent.name"], a["model"]), 0) + dp.as_double
            )
        assert got.keys() == want.keys()
        for key, usd in want.items():
            assert got[key] == pytest.approx(usd, abs=1e-8)

        # the start time is the ledger's, not this process's: the oldest turn of the history
        data = Path(os.environ["TOKWATCH_DATA_DIR"]) / "ledger.db"
        with sqlite3.connect(data) as db:
            since = float(db.execute("SELECT value FROM meta WHERE key='sums_since'").fetchone()[0])
            oldest = db.execute("SELECT min(ts) FROM turns WHERE ts > 0").fetchone()[0]
        assert since == oldest
        starts = {dp.start_time_unix_nano for dp in tokens.sum.data_points}
        assert starts == {int(since * 1e9)}

        # a live turn, then a restart with a turn written while down: exact, same start, same instance
        append_claude_turn(root, 1, input_tokens=5, cache_read=12_345, output=67)
        expected2 = totals_by_agent_model(export_rows([root], clean_env()))
        _wait(sink, lambda m: _token_totals(m[TOKENS]) == expected2, 30)

        assert watch.stop() == 0
        append_claude_turn(root, 2, input_tokens=9, cache_read=23_456, output=89)
        expected3 = totals_by_agent_model(export_rows([root], clean_env()))
        watch = Watch([str(root), "--otlp", endpoint], env, tmp_path)
        watch.ready()
        resource, metrics = _wait(sink, lambda m: _token_totals(m[TOKENS]) == expected3, 30)
        assert resource["service.instance.id"] == instance
        assert {dp.start_time_unix_nano for dp in metrics[TOKENS].sum.data_points} == {int(since * 1e9)}
        assert _token_totals(metrics[TOKENS]) == expected3
    finally:
        watch.kill()
