"""deploy/ as a team runs it: every YAML/JSON/plist/unit file parses and points at the others;
the dashboard's PromQL names only metrics and labels tokwatch emits (and, in the Prometheus
integration test, runs on a real server); Prometheus's own tool accepts its config."""

from __future__ import annotations

import configparser
import json
import plistlib
import re
import shutil
import subprocess

import pytest
import yaml
from telemetry_support import DASHBOARD, DEPLOY, EXPOSED, dashboard_queries

#: labels a series can carry: the points' attributes as Prometheus spells them, and the target's
LABELS = {
    "gen_ai_agent_name",
    "model",
    "project",
    "type",
    "priced",
    "session_id",
    "user_id",
    "team_id",
    "limit_id",
    "window_minutes",
    "job",
    "instance",
}


def load_yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_compose_runs_the_three_services_on_the_files_in_deploy() -> None:
    compose = load_yaml("compose.yaml")
    services = compose["services"]
    assert set(services) == {"otel-collector", "prometheus", "grafana"}
    for name, svc in services.items():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", svc["image"]) and not svc["image"].endswith(":latest"), name
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), f"{name} mounts missing {src}"
    assert "4318:4318" in services["otel-collector"]["ports"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]  # query UI: this host only
    assert set(compose["volumes"]) == {"prometheus-data", "grafana-data"}


def test_collector_takes_otlp_http_and_prometheus_scrapes_what_it_exposes() -> None:
    col = load_yaml("otel-collector.yaml")
    assert col["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipeline = col["service"]["pipelines"]["metrics"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["prometheus"]
    assert all(p in col["processors"] for p in pipeline["processors"])
    port = col["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    prom = load_yaml("prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "otel-collector"]
    assert job["honor_labels"] is True  # job/instance as each machine's tokwatch sent them
    assert job["static_configs"][0]["targets"] == [f"otel-collector:{port}"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with the prometheus package")
def test_promtool_accepts_the_prometheus_config() -> None:
    out = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_the_datasource() -> None:
    ds = load_yaml("grafana/provisioning/datasources/prometheus.yaml")["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in ds] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    (provider,) = load_yaml("grafana/provisioning/dashboards/tokwatch.yaml")["providers"]
    compose = load_yaml("compose.yaml")["services"]["grafana"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"] if v.startswith("./")}
    assert DEPLOY / mounted[provider["options"]["path"]] == DASHBOARD.parent
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"] and all(t["datasource"]["uid"] == "prometheus" for t in panel["targets"])


def test_dashboard_has_the_panels_the_team_asked_for() -> None:
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for wanted in (
        "Cost per day by person",
        "Cost per day by model",
        "Tokens by type",
        "Cache hit rate",
        "Context pressure (active sessions)",
        "Active sessions",
    ):
        assert wanted in titles


def test_dashboard_promql_names_only_what_tokwatch_emits() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 8
    used = set()
    for title, expr in queries:
        assert "$" not in expr, f"{title}: an unknown Grafana variable in {expr}"
        names = set(re.findall(r"\btokwatch_[a-z_]+\b", expr))
        assert names and names <= set(EXPOSED), f"{title}: {names - set(EXPOSED)}"
        used |= names
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            assert labels <= LABELS, f"{title}: {labels - LABELS}"
        for label in re.findall(r"([a-z_]+)\s*=~?\s*\"", expr):
            assert label in LABELS, f"{title}: matcher on {label}"
    for required in (
        "tokwatch_cost_usd_total",
        "tokwatch_token_usage_total",
        "tokwatch_context_used",
        "tokwatch_sessions_active",
    ):
        assert required in used


def test_systemd_user_unit_runs_watch_otlp() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "tokwatch-telemetry.service")
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[0] == "%h/.local/bin/tokwatch" and exec_start[1:] == ["watch", "--otlp"]
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "default.target"  # a user unit, not multi-user.target


def test_launchd_agent_runs_watch_otlp() -> None:
    with open(DEPLOY / "launchd" / "dev.tokwatch.telemetry.plist", "rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "dev.tokwatch.telemetry"
    args = plist["ProgramArguments"]
    assert args[:2] == ["/bin/sh", "-c"] and args[2] == 'exec "$HOME/.local/bin/tokwatch" watch --otlp'
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
