"""Prices: RateCards agree with genai-prices per real turn; tiers, 1h writes, unknowns, overrides."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from helpers import (
    CLAUDE_PROJECT,
    CODEX_8BFE,
    CODEX_POMODORO,
    CODEX_RTCHESS,
    GEMINI_POMODORO,
    GEMINI_PRO,
    REAL,
    claude_line,
    isolate_env,
    make_engine,
    turn,
    write_lines,
)

from tokwatch.cli import main
from tokwatch.config import load_config
from tokwatch.core.models import Turn
from tokwatch.core.pricing import normalize_model
from tokwatch.core.store import Store
from tokwatch.ingest.setup import make_pricer

PROVIDER = {"claude": "anthropic", "codex": "openai", "gemini": "google"}
MODELS = {
    "claude-opus-4-6": CLAUDE_PROJECT,
    "claude-sonnet-4-5-20250929": CLAUDE_PROJECT,
    "gpt-5.3-codex": CODEX_8BFE,
    "gpt-5.1-codex-max": CODEX_RTCHESS,
    "gpt-5-codex": CODEX_POMODORO,
    "gemini-3.1-pro-preview": GEMINI_PRO,
    "gemini-2.5-pro": GEMINI_POMODORO,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_env(monkeypatch, tmp_path)


def reference_usd(t: Turn) -> Decimal:
    """genai-prices on one turn: its input_tokens is the whole prompt, cache parts inside it."""
    usage = Usage(
        input_tokens=t.input + t.cache_read + t.cache_write,
        cache_read_tokens=t.cache_read,
        cache_write_tokens=t.cache_write,
        cache_write_1h_tokens=t.cache_write_1h,
        output_tokens=t.output,
    )
    return calc_price(usage, t.model, provider_id=PROVIDER[t.agent]).total_price


def _real_turns(model: str) -> list[Turn]:
    engine = make_engine(MODELS[model])
    engine.backfill()
    out = [
        t for s in engine.store.sessions.values() for t in engine.store.turns_of(s.key) if t.model == model
    ]
    assert out, model
    return out


@pytest.mark.parametrize("model", sorted(MODELS))
def test_rate_card_equals_genai_prices_on_real_turns(model: str) -> None:
    pricer = make_pricer()
    turns = _real_turns(model)
    sample = turns[:: max(1, len(turns) // 40)]  # up to ~40 turns per model, spread over the session
    for t in sample:
        got = pricer.cost_pico(t)
        assert got is not None, t
        assert abs(Decimal(got) / Decimal(10**12) - reference_usd(t)) <= Decimal("1e-9"), t


def test_export_costs_equal_sum_of_genai_prices_per_turn(capsys: pytest.CaptureFixture[str]) -> None:
    """Per-turn pricing (never a session's sum) is what `export` reports, for every row."""
    assert main(["export", str(REAL), "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["agent"] in PROVIDER]
    engine = make_engine(REAL)
    engine.backfill()
    assert rows
    for r in rows:
        turns = [t for t in engine.store.turns_of((r["agent"], r["session_id"])) if t.model == r["model"]]
        assert len(turns) == r["turns"]
        expected = sum((reference_usd(t) for t in turns), Decimal(0))
        assert abs(Decimal(str(r["cost_usd"])) - expected) <= Decimal("1e-9"), r


def test_tier_applies_to_the_whole_request_claude_sonnet_45() -> None:
    pricer = make_pricer()
    below = turn("a", model="claude-sonnet-4-5-20250929", input=199_999, output=1000)
    above = turn("b", model="claude-sonnet-4-5-20250929", input=200_001, output=1000)
    # $3 / $15 per MTok up to 200k prompt tokens; $6 / $22.50 for the WHOLE request above
    assert pricer.cost_pico(below) == 199_999 * 3_000_000 + 1000 * 15_000_000
    assert pricer.cost_pico(above) == 200_001 * 6_000_000 + 1000 * 22_500_000
    for t in (below, above):
        assert Decimal(pricer.cost_pico(t)) / Decimal(10**12) == reference_usd(t)
    # the prompt is input + cache reads + cache writes: a mostly-cached prompt crosses too
    cached = turn(
        "c", model="claude-sonnet-4-5-20250929", input=1, cache_read=199_998, cache_write=2, output=10
    )
    assert pricer.cost_pico(cached) == 1 * 6_000_000 + 199_998 * 600_000 + 2 * 7_500_000 + 10 * 22_500_000
    assert Decimal(pricer.cost_pico(cached)) / Decimal(10**12) == reference_usd(cached)


def test_tier_is_per_turn_not_per_session() -> None:
    store = Store(make_pricer())
    halves = [
        turn(str(i), model="claude-sonnet-4-5-20250929", input=150_000, output=0, timestamp=1e9 + i)
        for i in range(2)
    ]
    store.apply(halves)
    # two 150k-prompt requests: both at the base rate, though the session sums to 300k
    assert store.sessions[("claude", "s1")].totals.cost_pico == 2 * 150_000 * 3_000_000


def test_gemini_25_pro_tier() -> None:
    pricer = make_pricer()
    t = turn("g", agent="gemini", model="gemini-2.5-pro", input=100_001, cache_read=100_000, output=1000)
    assert pricer.cost_pico(t) == 100_001 * 2_500_000 + 100_000 * 250_000 + 1000 * 15_000_000
    assert Decimal(pricer.cost_pico(t)) / Decimal(10**12) == reference_usd(t)


def test_one_hour_cache_writes_have_their_own_rate() -> None:
    pricer = make_pricer()
    m = "claude-opus-4-6"
    five = turn("5", model=m, cache_write=1_000_000)
    hour = turn("h", model=m, cache_write=1_000_000, cache_write_1h=1_000_000)
    base = turn("i", model=m, input=1_000_000)
    assert pricer.cost_pico(base) == 5 * 10**12  # $5 / MTok
    assert pricer.cost_pico(hour) == 2 * pricer.cost_pico(base)  # 1h writes: 2x input
    assert pricer.cost_pico(five) * 4 == pricer.cost_pico(base) * 5  # 5m writes: 1.25x input
    mixed = turn("x", model=m, input=10, cache_write=3000, cache_write_1h=1000, output=7)
    assert pricer.cost_pico(mixed) == 10 * 5_000_000 + 2000 * 6_250_000 + 1000 * 10_000_000 + 7 * 25_000_000
    for t in (five, hour, mixed):
        assert Decimal(pricer.cost_pico(t)) / Decimal(10**12) == reference_usd(t)


def test_one_hour_cache_write_from_a_claude_line_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "projects" / "-p" / "sess-1h.jsonl"
    write_lines(
        path,
        [
            claude_line(
                "msg_1h",
                session_id="sess-1h",
                input_tokens=0,
                cache_write=1000,
                cache_write_1h=1000,
                output=0,
            )
        ],
    )
    engine = make_engine(tmp_path)
    engine.backfill()
    s = engine.store.sessions[("claude", "sess-1h")]
    assert s.totals.cost_pico == 1000 * 10_000_000


def test_unknown_model_has_unknown_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pricer = make_pricer()
    t = turn("u", model="zz-unknown-model-9000", input=100, output=100)
    assert pricer.card("claude", "zz-unknown-model-9000") is None
    assert pricer.cost_pico(t) is None
    assert not pricer.is_known("claude", "zz-unknown-model-9000")
    assert pricer.cost_pico(turn("u2", model="unknown", input=1)) is None
    store = Store(pricer)
    store.apply([t, turn("k", model="claude-opus-4-6", input=100, output=100)])
    assert store.sessions[("claude", "s1")].totals.cost_usd is None
    # export: JSON null and an empty CSV cell, never 0
    path = tmp_path / "projects" / "-p" / "sess-u.jsonl"
    write_lines(path, [claude_line("msg_u", session_id="sess-u", model="zz-unknown-model-9000", output=5)])
    assert main(["export", str(tmp_path), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cost_usd"] is None
    assert row["total_tokens"] == 6
    assert main(["export", str(tmp_path)]) == 0
    header, values = capsys.readouterr().out.splitlines()
    cols = header.split(",")
    assert values.split(",")[cols.index("cost_usd")] == ""


CONFIG = """
[prices."my-local-model"]
input = 1.0
output = 2.0
cache_read = 0.1

[prices."gpt-5.3-codex"]
input = 10.0
output = 20.0
cache_read = 1.0

[prices."tiered-model"]
input = 1.0
output = 2.0
tiers = [{ start = 100000, input = 3.0, output = 5.0 }]

[aliases]
"my-proxy-opus" = "claude-opus-4-6"

[context_windows]
"claude-opus-4-6" = 500000
"gpt-5.3-codex" = 400000
"""


@pytest.fixture()
def config_path(tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(CONFIG)
    return p


def test_config_override_for_unknown_and_known_models(config_path: Path) -> None:
    pricer = make_pricer(load_config(config_path))
    local = turn(
        "l", agent="codex", model="my-local-model", input=1_000_000, cache_read=1_000_000, output=1_000_000
    )
    assert pricer.cost_pico(local) == 3_100_000_000_000  # $1 + $0.10 + $2
    known = turn("k", agent="codex", model="gpt-5.3-codex", input=1000, cache_read=2000, output=300)
    assert pricer.cost_pico(known) == 1000 * 10_000_000 + 2000 * 1_000_000 + 300 * 20_000_000
    assert make_pricer().cost_pico(known) != pricer.cost_pico(known)  # genai-prices would say otherwise
    small = turn("t1", agent="codex", model="tiered-model", input=100_000, output=10)
    big = turn("t2", agent="codex", model="tiered-model", input=100_001, output=10)
    assert pricer.cost_pico(small) == 100_000 * 1_000_000 + 10 * 2_000_000
    assert pricer.cost_pico(big) == 100_001 * 3_000_000 + 10 * 5_000_000
    aliased = turn("a", model="my-proxy-opus", input=1000)
    assert pricer.cost_pico(aliased) == 1000 * 5_000_000


def test_config_override_through_the_cli(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(CODEX_8BFE), "--format", "json", "--config", str(config_path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (59525, 238848, 1123)
    assert row["cost_usd"] == pytest.approx((59525 * 10 + 238848 * 1 + 1123 * 20) / 1e6, abs=1e-12)
    assert row["context_window"] == 400000  # config beats the log's 258400


def test_bad_config_is_an_error_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[prices."x"]\ninput = -1\noutput = 2\n')
    assert main(["export", str(CODEX_8BFE), "--config", str(p)]) == 2
    assert "invalid config" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("Claude-Opus-4-6", "claude-opus-4-6"),
        ("gpt-5.1-codex-max", "gpt-5.1-codex-max"),  # dots stay in non-Claude names
        ("gemini-3.1-pro-preview", "gemini-3.1-pro-preview"),
    ],
)
def test_normalize_model(name: str, normalized: str) -> None:
    assert normalize_model(name) == normalized


@pytest.mark.parametrize(
    ("agent", "variant", "canonical"),
    [
        ("gemini", "models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("claude", "claude-sonnet-4.5", "claude-sonnet-4-5-20250929"),
        ("claude", "anthropic/claude-opus-4-6[1m]", "claude-opus-4-6"),
    ],
)
def test_name_variants_price_like_the_canonical_name(agent: str, variant: str, canonical: str) -> None:
    pricer = make_pricer()
    a, b = pricer.card(agent, variant), pricer.card(agent, canonical)
    assert a is not None and b is not None
    assert (a.base, a.tiers) == (b.base, b.tiers)


def test_context_windows() -> None:
    p = make_pricer()
    assert p.context_window("claude", "claude-opus-4-6", 0, 150_000) == 200_000
    assert p.context_window("claude", "claude-opus-4-6", 0, 200_000) == 200_000
    assert p.context_window("claude", "claude-opus-4-6", 0, 200_001) == 1_000_000
    assert p.context_window("claude", "claude-opus-4-6[1m]", 0, 10) == 1_000_000
    assert p.context_window("codex", "gpt-5.3-codex", 258_400, 0) == 258_400  # from the log
    assert p.context_window("codex", "gpt-5-codex", 0, 0) == 272_000
    assert p.context_window("gemini", "gemini-2.5-pro", 0, 10) == 1_048_576


def test_context_window_switches_to_1m_when_a_prompt_exceeds_200k() -> None:
    store = Store(make_pricer())
    store.apply([turn("a", input=1, cache_read=150_000, output=1, timestamp=1e9)])
    assert store.sessions[("claude", "s1")].context_window == 200_000
    store.apply([turn("b", input=1, cache_read=250_000, output=1, timestamp=1e9 + 1)])
    assert store.sessions[("claude", "s1")].context_window == 1_000_000
    store.apply([turn("c", input=1, cache_read=20_000, output=1, timestamp=1e9 + 2)])  # compacted
    assert (
        store.sessions[("claude", "s1")].context_window == 1_000_000
    )  # the session has shown it has a 1M window
    assert store.sessions[("claude", "s1")].context_used == 20_001


def test_context_window_config_override(config_path: Path) -> None:
    p = make_pricer(load_config(config_path))
    assert p.context_window("claude", "claude-opus-4-6", 0, 10) == 500_000
    assert p.context_window("claude", "anthropic/claude-opus-4-6[1m]", 0, 10) == 500_000
    assert p.context_window("codex", "gpt-5.3-codex", 258_400, 0) == 400_000
    assert p.context_window("gemini", "gemini-2.5-pro", 0, 0) == 1_048_576  # not overridden
    store = Store(p)
    store.apply([turn("a", input=1, output=1)])
    assert store.sessions[("claude", "s1")].context_window == 500_000
