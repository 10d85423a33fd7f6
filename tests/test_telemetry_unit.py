"""The telemetry's parts on their own: the mapping from ledger figures to points (privacy
switches included), settings and their precedence, the ledger queries and their cache, the
Prometheus exposition as Prometheus's own parser reads it, and the lazy import."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import CLAUDE_MAIN, CODEX_RTCHESS, make_engine, turn
from telemetry_support import EXPOSED

from tokwatch.config import Config, ConfigError, TelemetryConfig, load_config
from tokwatch.core.ledger import SUMS_SINCE
from tokwatch.core.models import Tokens
from tokwatch.core.store import Store
from tokwatch.output import telemetry as tel
from tokwatch.reports import tally
from tokwatch.reports import telemetry as rt

T = Tokens(
    turns=3,
    input=10,
    cache_read=200,
    cache_write=30,
    output=40,
    reasoning=5,
    cost_pico=1_500_000_000_000,
    unpriced_turns=1,
)


def snap(usage=(), active=(), windows=(), since=1_700_000_000.0) -> rt.Snapshot:
    return rt.Snapshot(since, tuple(usage), tuple(active), tuple(windows))


# ---------------------------------------------------------------- the mapping
def test_points_follow_claude_codes_token_types_and_sum_to_the_total() -> None:
    pts = tel.points(snap([rt.Usage("claude", "claude-opus-4-6", "/home/u/src/shop", T)]), tel.Privacy())
    base = {"gen_ai.agent.name": "claude", "model": "claude-opus-4-6", "project": "shop"}
    assert pts[tel.TOKENS] == [
        (10, {**base, "type": "input"}),
        (40, {**base, "type": "output"}),
        (200, {**base, "type": "cacheRead"}),
        (30, {**base, "type": "cacheCreation"}),
    ]
    assert sum(v for v, _ in pts[tel.TOKENS]) == T.total
    assert pts[tel.REASONING] == [(5, base)]
    assert pts[tel.COST] == [(1.5, base)]
    assert pts[tel.TURNS] == [(2, {**base, "priced": "true"}), (1, {**base, "priced": "false"})]
    assert pts[tel.CONTEXT_USED] == pts[tel.ACTIVE] == pts[tel.PLAN_USED] == []


@pytest.mark.parametrize(
    ("mode", "labels"),
    [
        ("name", {"shop"}),
        ("path", {"/home/u/src/shop", "/home/u/old/shop"}),
        ("drop", {None}),
    ],
)
def test_projects_that_the_privacy_switch_makes_equal_are_summed_once(mode: str, labels: set) -> None:
    usage = [
        rt.Usage("codex", "gpt-5", "/home/u/src/shop", T),
        rt.Usage("codex", "gpt-5", "/home/u/old/shop", T),
    ]
    pts = tel.points(snap(usage), tel.Privacy(project=mode))
    inputs = [(v, a.get("project")) for v, a in pts[tel.TOKENS] if a["type"] == "input"]
    assert {p for _, p in inputs} == labels
    assert sum(v for v, _ in inputs) == 20  # never reported twice, never lost
    assert len(inputs) == len(labels)


def test_hashed_projects_are_salted_and_reveal_no_path() -> None:
    a = tel.Privacy(project="hash").project_label("/home/alice/src/secret-client")
    b = tel.Privacy(project="hash", project_salt="team").project_label("/home/alice/src/secret-client")
    assert len(a) == len(b) == 16 and a != b
    assert "secret" not in a and "alice" not in a
    assert tel.Privacy(project="hash").project_label("") == ""  # no project: no attribute


def test_user_and_team_on_every_point_only_when_configured() -> None:
    active = [rt.Active("claude", "sess-1", "/p/shop", "claude-opus-4-6", 50_000, 200_000, 1.0)]
    usage = [rt.Usage("claude", "claude-opus-4-6", "/p/shop", T)]
    plain = tel.points(snap(usage, active), tel.Privacy())
    assert all("user.id" not in a and "team.id" not in a for pts in plain.values() for _, a in pts)
    who = tel.points(snap(usage, active), tel.Privacy(user_id="alice", team="platform"))
    for name, pts in who.items():
        for _, a in pts:
            assert a["user.id"] == "alice" and a["team.id"] == "platform", name


def test_context_gauges_per_active_session_and_unknown_windows_left_out() -> None:
    active = [
        rt.Active("claude", "s1", "/p/shop", "claude-opus-4-6", 50_000, 200_000, 2.0),
        rt.Active("codex", "s2", "/p/shop", "gpt-5", 7_000, 0, 1.0),  # window unknown
        rt.Active("claude", "s3", "/p/api", "claude-sonnet-4-5", 9, 200_000, 1.0),
    ]
    pts = tel.points(snap(active=active), tel.Privacy())
    used = {a["session.id"]: v for v, a in pts[tel.CONTEXT_USED]}
    assert used == {"s1": 50_000, "s2": 7_000, "s3": 9}
    assert {a["session.id"]: v for v, a in pts[tel.CONTEXT_WINDOW]} == {"s1": 200_000, "s3": 200_000}
    assert sorted((a["gen_ai.agent.name"], a["project"], v) for v, a in pts[tel.ACTIVE]) == [
        ("claude", "api", 1),
        ("claude", "shop", 1),
        ("codex", "shop", 1),
    ]
    off = tel.points(snap(active=active), tel.Privacy(session_id=False))
    assert off[tel.CONTEXT_USED] == off[tel.CONTEXT_WINDOW] == []
    assert sum(v for v, _ in off[tel.ACTIVE]) == 3  # counts stay, without session ids


def test_plan_windows_hook_becomes_gauges() -> None:
    w = rt.PlanWindow("codex", "codex", 300, 13.0, 1_771_864_834.0)
    pts = tel.points(snap(windows=[w]), tel.Privacy())
    attrs = {"gen_ai.agent.name": "codex", "limit.id": "codex", "window.minutes": "300"}
    assert pts[tel.PLAN_USED] == [(13.0, attrs)]
    assert pts[tel.PLAN_RESETS] == [(1_771_864_834.0, attrs)]


# ---------------------------------------------------------------- settings
def test_telemetry_config_table_is_validated() -> None:
    cfg = Config.model_validate(
        {"telemetry": {"user_id": "al", "project": "drop", "otlp_endpoint": "https://c:4318"}}
    )
    assert cfg.telemetry.project == "drop" and cfg.telemetry.user_id == "al"
    assert Config().telemetry.project == "name" and Config().telemetry.user_id is None
    for bad in (
        {"project": "initials"},
        {"otlp_endpoint": "collector:4318"},
        {"sneaky": 1},
        {"interval_seconds": 0},
    ):
        with pytest.raises(ValueError):
            Config.model_validate({"telemetry": bad})


def test_telemetry_typo_in_the_config_file_is_an_error_message(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text('[telemetry]\nproject = "hashed"\n')
    with pytest.raises(ConfigError, match="project"):
        load_config(p)


def test_otlp_endpoint_precedence_flag_then_env_then_config() -> None:
    cfg = TelemetryConfig(otlp_endpoint="http://from-config:4318")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://from-env:4318/"}
    assert tel.resolve_otlp("http://flag:4318", cfg, env).endpoint == "http://flag:4318/v1/metrics"
    assert tel.resolve_otlp(None, cfg, env).endpoint == "http://from-env:4318/v1/metrics"
    metrics_env = {**env, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:9/custom/path"}
    assert (
        tel.resolve_otlp(None, cfg, metrics_env).endpoint == "http://m:9/custom/path"
    )  # as is, per the spec
    assert tel.resolve_otlp(None, cfg, {}).endpoint == "http://from-config:4318/v1/metrics"
    assert tel.resolve_otlp(None, TelemetryConfig(), {}).endpoint == "http://localhost:4318/v1/metrics"
    assert tel.resolve_otlp("http://c:4318/v1/metrics", cfg, {}).endpoint == "http://c:4318/v1/metrics"


def test_otlp_headers_and_interval_leave_the_standard_variables_in_charge() -> None:
    cfg = TelemetryConfig(otlp_headers={"authorization": "Bearer x"}, interval_seconds=15)
    s = tel.resolve_otlp(None, cfg, {})
    assert s.headers == {"authorization": "Bearer x"} and s.interval_ms == 15_000
    s = tel.resolve_otlp(
        None, cfg, {"OTEL_EXPORTER_OTLP_HEADERS": "a=b", "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    )
    assert s.headers is None and s.interval_ms is None  # the exporter reads the variables itself


def test_grpc_protocol_and_delta_preference_are_said_not_obeyed_silently() -> None:
    with pytest.raises(tel.TelemetryError, match="http/protobuf"):
        tel.resolve_otlp(None, TelemetryConfig(), {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    ok = tel.resolve_otlp(None, TelemetryConfig(), {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"})
    assert ok.notes == ()
    delta = tel.resolve_otlp(
        None, TelemetryConfig(), {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"}
    )
    assert "cumulative" in delta.notes[0]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_prometheus_address(text: str, want: tuple[str, int]) -> None:
    assert tel.parse_address(text) == want


@pytest.mark.parametrize("text", ["::1:9464", "host:port", "1.2.3.4:70000", ":9464", "[::1]9464"])
def test_bad_prometheus_address(text: str) -> None:
    with pytest.raises(tel.TelemetryError):
        tel.parse_address(text)


def test_loopback_is_the_only_implicit_choice() -> None:
    assert tel.parse_address(TelemetryConfig().prometheus_address)[0] == "127.0.0.1"
    assert tel.is_loopback("127.0.0.1") and tel.is_loopback("::1") and tel.is_loopback("localhost")
    assert not tel.is_loopback("0.0.0.0") and not tel.is_loopback("::") and not tel.is_loopback("10.0.0.5")


def test_resource_host_name_switch() -> None:
    on = tel.resource_attributes(TelemetryConfig(), "id-1")
    assert on["service.name"] == "tokwatch" and on["service.instance.id"] == "id-1" and on["host.name"]
    assert "host.name" not in tel.resource_attributes(TelemetryConfig(host_name=False), "id-1")


# ---------------------------------------------------------------- the ledger side
def _engine_on_real_logs():
    engine = make_engine(CLAUDE_MAIN, CODEX_RTCHESS)
    engine.backfill()
    return engine


def test_usage_is_the_ledgers_sum_per_agent_model_project() -> None:
    engine = _engine_on_real_logs()
    usage = rt.usage(engine.ledger, tally.Scope())
    assert Tokens.sum(u.tokens for u in usage).total == engine.store.totals().total
    by_model: dict[tuple[str, str], int] = {}
    for s in engine.store.sessions.values():
        for m, t in s.by_model.items():
            by_model[(s.agent, m)] = by_model.get((s.agent, m), 0) + t.total
    assert {(u.agent, u.model): u.tokens.total for u in usage} == by_model


def test_prune_keeps_what_it_forgot_in_the_counters() -> None:
    engine = _engine_on_real_logs()
    before = {
        (u.agent, u.model, u.project): u.tokens.to_row() for u in rt.usage(engine.ledger, tally.Scope())
    }
    removed, _ = engine.store.prune(10**10)  # every dated turn
    assert removed > 0 and engine.ledger.count_turns() < removed + 5
    after = {(u.agent, u.model, u.project): u.tokens.to_row() for u in rt.usage(engine.ledger, tally.Scope())}
    assert after == before


def test_since_is_kept_and_moves_only_when_a_cost_goes_down() -> None:
    engine = _engine_on_real_logs()
    ledger = engine.ledger
    first = rt.since(ledger)
    with ledger.reading() as db:
        oldest = db.execute("SELECT min(ts) FROM turns WHERE ts > 0").fetchone()[0]
    assert first == oldest and rt.since(ledger) == first  # saved: the same after a restart
    # cheaper prices: the cost sums go down, so the counters restart now
    cheap = Config.model_validate({"prices": {"claude-opus-4-6": {"input": 0.0, "output": 0.0}}})
    from tokwatch.ingest.setup import make_pricer

    store = Store(make_pricer(cheap), ledger)
    store.load()
    assert store.reprice() > 0
    assert float(ledger.meta(SUMS_SINCE)) > first


def test_source_sums_again_only_when_the_ledger_changed() -> None:
    engine = _engine_on_real_logs()
    source = rt.Source(engine.ledger)
    a = source.snapshot()
    b = source.snapshot()
    assert source.sums == 1 and a.usage is b.usage  # idle: no query over the turns
    engine.ledger.set_meta("unrelated", "x")  # a write that changes no sum: summed, same tuple
    assert source.snapshot().usage is a.usage and source.sums == 2
    engine.store.apply([turn("new-1", session_id="s-new", input=5, output=3, timestamp=1_771_000_000.0)])
    c = source.snapshot()
    assert source.sums == 3
    assert Tokens.sum(u.tokens for u in c.usage).total == Tokens.sum(u.tokens for u in a.usage).total + 8


def test_active_sessions_are_the_recent_ones_with_their_context() -> None:
    engine = make_engine(CLAUDE_MAIN)
    engine.backfill()
    (s,) = engine.store.sessions.values()
    assert rt.active(engine.ledger, tally.Scope(), s.last_seen + 29 * 60, 30) == [
        rt.Active(
            "claude", s.session_id, s.project, s.context_model, s.context_used, s.context_window, s.last_seen
        )
    ]
    assert rt.active(engine.ledger, tally.Scope(), s.last_seen + 31 * 60, 30) == []
    assert rt.active(engine.ledger, tally.Scope(sessions=()), s.last_seen, 30) == []


def test_plan_windows_from_the_limits_samples_once_that_table_exists() -> None:
    engine = _engine_on_real_logs()
    ledger = engine.ledger
    assert rt.plan_windows(ledger, 1_771_000_000.0) == []  # no limits table (yet): no gauge, no error
    with ledger.transaction() as db:  # the limits work's table (issue 14), as its migration makes it
        db.execute(
            "CREATE TABLE IF NOT EXISTS limit_samples(id INTEGER PRIMARY KEY, agent TEXT NOT NULL,"
            " provider TEXT NOT NULL, source TEXT NOT NULL, limit_id TEXT NOT NULL, window_minutes INTEGER NOT NULL,"
            " used_percent REAL NOT NULL, resets_at REAL, observed_at REAL NOT NULL, plan_type TEXT NOT NULL DEFAULT '',"
            " session_id TEXT NOT NULL DEFAULT '', writer INTEGER NOT NULL DEFAULT 0)"
        )
        rows = [
            ("codex", "openai", "log", "codex", 300, 10.0, 1_771_864_834.0, 1_771_850_000.0),
            ("codex", "openai", "log", "codex", 300, 13.0, 1_771_864_834.0, 1_771_851_000.0),  # newest
            ("codex", "openai", "log", "codex", 10080, 4.0, 1_772_000_000.0, 1_771_851_000.0),
            (
                "claude",
                "anthropic",
                "statusline",
                "five_hour",
                300,
                55.0,
                1_771_800_000.0,
                1_771_790_000.0,
            ),  # reset
        ]
        db.executemany(
            "INSERT INTO limit_samples(agent, provider, source, limit_id, window_minutes, used_percent, resets_at,"
            " observed_at) VALUES(?,?,?,?,?,?,?,?)",
            rows,
        )
    assert rt.plan_windows(ledger, 1_771_851_500.0) == [
        rt.PlanWindow("codex", "codex", 300, 13.0, 1_771_864_834.0),
        rt.PlanWindow("codex", "codex", 10080, 4.0, 1_772_000_000.0),
    ]


# ---------------------------------------------------------------- the SDK and the exposition
class FakeSource:
    def __init__(self, s: rt.Snapshot) -> None:
        self.s = s

    def snapshot(self) -> rt.Snapshot:
        return self.s


def _scrape(t: tel.Telemetry) -> str:
    assert t.prometheus_url is not None
    with urllib.request.urlopen(t.prometheus_url, timeout=5) as r:
        return r.read().decode()


def test_exposition_names_and_a_session_that_went_quiet_disappears() -> None:
    active = [rt.Active("claude", "s1", "/p/shop", "claude-opus-4-6", 50_000, 200_000, 2.0)]
    windows = [rt.PlanWindow("codex", "codex", 300, 13.0, 1_771_864_834.0)]
    source = FakeSource(snap([rt.Usage("claude", "claude-opus-4-6", "/p/shop", T)], active, windows))
    t = tel.Telemetry(source, TelemetryConfig(), instance_id="x", prometheus=("127.0.0.1", 0))  # type: ignore[arg-type]
    t.start()
    try:
        text = _scrape(t)
        names = {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert names == set(EXPOSED)
        assert (
            'tokwatch_context_used{gen_ai_agent_name="claude",model="claude-opus-4-6",project="shop",session_id="s1"} 50000.0'
            in text
        )
        assert "target_info" not in text and "otel_scope" not in text
        if shutil.which("promtool"):  # Prometheus's own parser and linter
            check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
            assert check.returncode == 0, check.stdout + check.stderr
        assert t.cache is not None and t.cache.collections == 1
        assert _scrape(t) == text  # the same snapshot: served again without a collection
        assert t.cache.collections == 1
        source.s = snap([rt.Usage("claude", "claude-opus-4-6", "/p/shop", T)])
        later = _scrape(t)
        assert "tokwatch_context_used{" not in later and "tokwatch_plan_window" not in later
        assert "tokwatch_token_usage_total{" in later and t.cache.collections == 2
    finally:
        t.shutdown()


def test_restamp_sets_the_ledgers_start_on_counters_only() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    meter.create_counter("c").add(3)
    meter.create_gauge("g").set(1)
    data = tel._restamp(reader.get_metrics_data(), 1_000_000_000)
    (m_c, m_g) = data.resource_metrics[0].scope_metrics[0].metrics
    assert (
        m_c.data.data_points[0].start_time_unix_nano == 1_000_000_000 and m_c.data.data_points[0].value == 3
    )
    assert m_g.data.data_points[0].start_time_unix_nano != 1_000_000_000
    provider.shutdown()


def test_only_the_telemetry_flags_import_opentelemetry() -> None:
    code = (
        "import sys, importlib; importlib.import_module('tokwatch.cli.main').build_parser(); "
        "import tokwatch.output.telemetry, tokwatch.cli.telemetry, tokwatch.reports.telemetry; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'prometheus_client'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_is_an_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("opentelemetry") else real(name, *a),
    )
    from tokwatch.cli.main import main

    assert main(["watch", "--prometheus"]) == 2
    err = capsys.readouterr().err
    assert "tokwatch[telemetry]" in err and "pipx" in err


def test_bad_settings_fail_before_reading_any_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tokwatch.cli.main import main

    assert main(["watch", str(tmp_path), "--otlp", "collector:4318"]) == 2
    assert "expected a URL" in capsys.readouterr().err
    assert main(["watch", "--prometheus", "9464:x"]) == 2
    assert "port" in capsys.readouterr().err
