"""A real Prometheus server scrapes the installed `tokwatch watch --prometheus` on the real
fixtures and holds `tokwatch export`'s exact totals per agent and model: at start, after a turn
is appended, and after tokwatch restarts with a turn written while it was down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CLAUDE_SESSION
from telemetry_support import (
    Watch,
    append_claude_turn,
    clean_env,
    copy_real,
    cost_by_agent_model,
    dashboard_queries,
    export_rows,
    free_port,
    poll,
    totals_by_agent_model,
)

PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None:
    if os.environ.get("CI"):
        pytest.fail(
            "prometheus is not installed: .ci/run installs it (apt-get install prometheus)",
            pytrace=False,
        )
    pytest.skip(
        "prometheus is not installed (apt-get install -y --no-install-recommends prometheus);"
        " CI installs it and never skips this",
        allow_module_level=True,
    )

#: Prometheus 2.42 applies a new target list on a fixed 5 s tick, then scrapes: ~6 s to the first value.
FIRST_SCRAPE = 60.0
UPDATE = 30.0


class Prometheus:
    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: tokwatch\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        data = tmp / "prom-data"
        data.mkdir()
        self.log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:  # a query Prometheus refuses: never mistaken for "no data"
            raise AssertionError(f"{promql}: {e.code} {e.read().decode(errors='replace')}") from None
        except (urllib.error.URLError, ConnectionError):  # not listening yet
            return []
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def prometheus_and_port(tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    port = free_port()
    prom = Prometheus(tmp_path, port)
    try:
        yield prom, port
    finally:
        prom.stop()


def tokens_in_prometheus(prom: Prometheus) -> dict[tuple[str, str, str], int]:
    rows = prom.query("sum by (gen_ai_agent_name, model, type) (tokwatch_token_usage_total)")
    return {
        (r["metric"]["gen_ai_agent_name"], r["metric"]["model"], r["metric"]["type"]): int(
            float(r["value"][1])
        )
        for r in rows
    }


def cost_in_prometheus(prom: Prometheus) -> dict[tuple[str, str], float]:
    rows = prom.query("sum by (gen_ai_agent_name, model) (tokwatch_cost_usd_total)")
    return {(r["metric"]["gen_ai_agent_name"], r["metric"]["model"]): float(r["value"][1]) for r in rows}


def scraped_after(prom: Prometheus, t: float) -> bool:
    """A scrape newer than `t` succeeded (so the series come from the process running now)."""
    rows = prom.query('timestamp(up{job="tokwatch"} == 1)')
    return bool(rows) and float(rows[0]["value"][1]) > t


def test_prometheus_scrapes_the_exports_exact_totals_across_appends_and_restarts(
    tmp_path: Path, prometheus_and_port: tuple[Prometheus, int]
) -> None:
    prom, port = prometheus_and_port
    root = copy_real(tmp_path)
    env = clean_env()
    args = [str(root), "--prometheus", f"127.0.0.1:{port}"]

    watch = Watch(args, env, tmp_path)
    try:
        ready = watch.ready()
        assert ready["prometheus"] == f"http://127.0.0.1:{port}/metrics"
        assert ready["turns"] > 400 and ready["skipped_lines"] == 0

        # 1. history: every (agent, model, type) total of the export, exactly
        rows = export_rows([root], env)
        expected = totals_by_agent_model(rows)
        assert len({(a, m) for a, m, _ in expected}) >= 10  # every agent of the real fixtures
        got = poll(lambda: tokens_in_prometheus(prom), lambda g: g == expected, FIRST_SCRAPE)
        assert got == expected
        costs = cost_in_prometheus(prom)
        want_cost = cost_by_agent_model(rows)
        assert costs.keys() == want_cost.keys()
        for key, usd in want_cost.items():
            assert costs[key] == pytest.approx(usd, abs=1e-8), key

        # 2. a turn appended live: the totals move by exactly its numbers
        append_claude_turn(root, 1, input_tokens=7, cache_read=30_000, output=120)
        expected2 = totals_by_agent_model(export_rows([root], env))
        key = ("claude", "claude-opus-4-6", "cacheRead")
        assert expected2[key] == expected[key] + 30_000
        got = poll(lambda: tokens_in_prometheus(prom), lambda g: g == expected2, UPDATE)
        assert got == expected2

        # its session is active now: the context gauge shows that turn's prompt
        ctx = poll(
            lambda: prom.query(f'tokwatch_context_used{{session_id="{CLAUDE_SESSION}"}}'), bool, UPDATE
        )
        assert ctx, "no context gauge for the active session"
        assert int(float(ctx[0]["value"][1])) == 7 + 30_000
        assert ctx[0]["metric"]["gen_ai_agent_name"] == "claude"
        window = prom.query(f'tokwatch_context_window{{session_id="{CLAUDE_SESSION}"}}')
        assert int(float(window[0]["value"][1])) == 200_000
        active = prom.query('tokwatch_sessions_active{gen_ai_agent_name="claude"}')
        assert [int(float(r["value"][1])) for r in active] == [1]

        # the Grafana dashboard's queries run here and find series (plan windows: none recorded yet)
        for title, expr in dashboard_queries():
            if title == "Plan windows":
                assert prom.query(expr) == [], expr
                continue
            assert poll(lambda e=expr: prom.query(e), bool, UPDATE), (title, expr)

        # 3. tokwatch stops (SIGTERM), a turn is written meanwhile, tokwatch starts again
        assert watch.stop() == 0
        append_claude_turn(root, 2, input_tokens=11, cache_read=31_000, output=333)
        expected3 = totals_by_agent_model(export_rows([root], env))
        assert (
            expected3[("claude", "claude-opus-4-6", "output")]
            == expected2[("claude", "claude-opus-4-6", "output")] + 333
        )
        restarted = time.time()
        watch = Watch(args, env, tmp_path)
        watch.ready()
        got = poll(
            lambda: tokens_in_prometheus(prom) if scraped_after(prom, restarted) else {},
            lambda g: g == expected3,
            UPDATE,
        )
        assert got == expected3  # nothing dropped (the turn written while down), nothing twice

        # and it stays exact on later scrapes (no double count creeping in)
        first = float(prom.query('timestamp(up{job="tokwatch"})')[0]["value"][1])
        poll(lambda: scraped_after(prom, first), bool, UPDATE)
        assert tokens_in_prometheus(prom) == expected3
    finally:
        watch.kill()
