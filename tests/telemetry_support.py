"""The installed `tokwatch` command run as a real process for the telemetry tests, and what
`tokwatch export` says the totals are (the numbers every metric must match)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from helpers import CLAUDE_SESSION, REAL, claude_line

BIN = Path(sys.executable).parent


def tokwatch_bin() -> str:
    """The console script pip installed next to this interpreter (what a user runs)."""
    exe = BIN / "tokwatch"
    assert exe.exists(), f"no installed tokwatch command at {exe}"
    return str(exe)


def clean_env(**extra: str) -> dict[str, str]:
    """This test's environment (its private ledger folders) without OTEL_* settings of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("TOKWATCH_CONFIG", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_real(tmp: Path) -> Path:
    """A writable copy of the shared real fixtures (every agent's logs)."""
    root = tmp / "real"
    shutil.copytree(REAL, root)
    return root


def claude_log(root: Path) -> Path:
    return next((root / "claude" / "projects").glob(f"*/{CLAUDE_SESSION}.jsonl"))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def append_claude_turn(root: Path, n: int, *, input_tokens: int, cache_read: int, output: int) -> bytes:
    """A real-shaped Claude turn, timed now (so its session is active), appended to the real log."""
    raw = claude_line(
        f"msg_tel_{n}",
        request_id=f"req_tel_{n}",
        input_tokens=input_tokens,
        cache_read=cache_read,
        cache_write=0,
        output=output,
        timestamp=now_iso(),
    )
    with open(claude_log(root), "ab") as f:
        f.write(raw + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return raw


def export_rows(paths: Sequence[Path], env: dict[str, str]) -> list[dict]:
    """`tokwatch export --format json --no-cache PATHS`: every log read afresh, nothing shared with
    the process under test."""
    out = subprocess.run(
        [tokwatch_bin(), "export", "--format", "json", "--no-cache", *map(str, paths)],
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def totals_by_agent_model(rows: list[dict]) -> dict[tuple[str, str, str], int]:
    """(agent, model, Claude Code token type) -> tokens, summed over export rows."""
    cols = {
        "input": "input_tokens",
        "output": "output_tokens",
        "cacheRead": "cache_read_tokens",
        "cacheCreation": "cache_write_tokens",
    }
    out: dict[tuple[str, str, str], int] = {}
    for r in rows:
        for kind, col in cols.items():
            key = (r["agent"], r["model"], kind)
            out[key] = out.get(key, 0) + int(r[col])
    return out


def cost_by_agent_model(rows: list[dict]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["cost_usd"] is not None:
            key = (r["agent"], r["model"])
            out[key] = out.get(key, 0.0) + float(r["cost_usd"])
    return out


class Watch:
    """`tokwatch watch ...` in a subprocess; its stdout's JSON lines in a queue, stderr kept."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [tokwatch_bin(), "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.events.put(json.loads(raw))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    def wait_for(self, pred: Callable[[dict], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self.events.get(timeout=min(left, 0.1))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if pred(ev):
                return ev
        raise AssertionError(
            f"no matching event in {timeout} s; exit code {self.proc.poll()}; stderr: {''.join(self.stderr)[-2000:]}"
        )

    def ready(self, timeout: float = 60) -> dict:
        return self.wait_for(lambda e: e.get("event") == "ready", timeout)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def poll(
    fetch: Callable[[], object], ok: Callable[[object], bool], timeout: float, step: float = 0.2
) -> object:
    """Ask `fetch` until `ok` holds (bounded: `timeout` seconds); the last answer either way."""
    deadline = time.monotonic() + timeout
    got = fetch()
    while not ok(got) and time.monotonic() < deadline:
        time.sleep(step)
        got = fetch()
    return got


class OTLPSink:
    """The end of the OTLP pipeline in the tests: a plain HTTP server that decodes what it is
    sent as the protocol's protobuf (`opentelemetry-proto`) and keeps every request."""

    def __init__(self) -> None:
        import gzip
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        )

        self.requests: queue.Queue[ExportMetricsServiceRequest] = queue.Queue()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/metrics":
                    self.send_error(404)
                    return
                req = ExportMetricsServiceRequest()
                req.ParseFromString(body)
                sink.requests.put(req)
                out = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, pred: Callable[[object], bool], timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                req = self.requests.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            if pred(req):
                return req
        raise AssertionError(f"no matching OTLP request in {timeout} s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_listening(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port} after {timeout} s")


#: Every Prometheus name tokwatch emits (docs/team.md and the Grafana dashboard use these).
EXPOSED = (
    "tokwatch_token_usage_total",
    "tokwatch_token_reasoning_total",
    "tokwatch_cost_usd_total",
    "tokwatch_turns_total",
    "tokwatch_context_used",
    "tokwatch_context_window",
    "tokwatch_sessions_active",
    "tokwatch_plan_window_utilization_percent",
    "tokwatch_plan_window_resets_at_seconds",
)


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tokwatch.json"
#: Grafana's variables as a query runs them: every person, team and agent; an hour's step
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "1h",
    "$__range": "1d",
    "$person": ".*",
    "$team": ".*",
    "$agent": ".*",
}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) for every target of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out
