"""Qwen Code plug-in: `projects/<slug>/chats/<session>.jsonl`, Gemini-style `usageMetadata`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine
from tokwatch.agents.qwen import QwenParser, split_usage
from tokwatch.cli import main
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "qwen"
SESSION = "5c0b2f4e-8d1a-4b7e-9f3c-2a6d8e1b4c70"
LOG = FIX / "projects" / "-home-dev-proj" / "chats" / f"{SESSION}.jsonl"
REAL = Path(__file__).resolve().parent / "fixtures" / "real"
AGENT = get_agent("qwen")


def turns_of(path: Path):
    p = QwenParser(path)
    out = []
    for line in path.read_bytes().splitlines():
        out.extend(p.feed(line))
    return out


def test_split_usage_openai_style_thoughts_inside_candidates() -> None:
    # converter.ts: candidatesTokenCount = completion_tokens (reasoning included); total = p + c
    u = {
        "promptTokenCount": 12414,
        "candidatesTokenCount": 76,
        "thoughtsTokenCount": 39,
        "totalTokenCount": 12490,
    }
    assert split_usage(u) == (12414, 0, 76, 39)


def test_split_usage_gemini_native_thoughts_outside() -> None:
    u = {
        "promptTokenCount": 20000,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 200,
        "totalTokenCount": 20250,
        "cachedContentTokenCount": 16000,
    }
    assert split_usage(u) == (4000, 16000, 250, 200)


def test_split_usage_edge_cases() -> None:
    # thoughts larger than candidates cannot be a part of them
    assert split_usage({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 9}) == (
        10,
        0,
        14,
        9,
    )
    # no total: the usual (OpenAI-compatible) convention
    assert split_usage({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3}) == (
        10,
        0,
        5,
        3,
    )
    # cached inside prompt, never more than it; tool-use prompt tokens are prompt tokens
    assert split_usage({"promptTokenCount": 10, "cachedContentTokenCount": 99}) == (0, 10, 0, 0)
    assert split_usage({"promptTokenCount": 10, "toolUsePromptTokenCount": 4, "totalTokenCount": 14}) == (
        14,
        0,
        0,
        0,
    )
    with pytest.raises(BadLine):
        split_usage({"promptTokenCount": -1})


def test_fixture_turns() -> None:
    turns = turns_of(LOG)
    assert [t.turn_id for t in turns] == ["a-0001", "a-0002", "a-0003", "a-0004"]  # no telemetry, no zero
    a1, a2, a3, a4 = turns
    assert (a1.input, a1.cache_read, a1.output, a1.reasoning) == (12414, 0, 76, 39)
    assert (a2.input, a2.cache_read, a2.output) == (15000 - 12288, 12288, 300)
    assert a2.context == 15000 and a2.context_window == 1_000_000
    assert a3.sidechain and a3.model == "qwen3-coder-flash"
    assert (a4.input, a4.cache_read, a4.output, a4.reasoning) == (4000, 16000, 250, 200)
    assert all(t.session_id == SESSION and t.project == "/home/dev/proj" and t.agent == "qwen" for t in turns)
    assert a1.timestamp == pytest.approx(1771856696.857)


def test_engine_totals_and_context_gauge() -> None:
    store = Store(make_pricer())
    Engine(store, [FIX]).backfill()
    s = store.sessions[("qwen", SESSION)]
    assert s.totals.turns == 4
    assert s.totals.input == 12414 + 2712 + 3000 + 4000
    assert s.totals.cache_read == 12288 + 1000 + 16000
    assert s.totals.output == 76 + 300 + 20 + 250
    # the sidechain request does not move the gauge; the last main-chain one does
    assert s.context_used == 20000 and s.context_window == 1_048_576
    assert s.project == "/home/dev/proj"


def test_malformed_and_missing_fields() -> None:
    p = QwenParser(LOG)
    with pytest.raises(BadLine):
        p.feed(b"{not json")
    with pytest.raises(BadLine):
        p.feed(b'{"type":"assistant","usageMetadata":{"promptTokenCount":5}}')  # no uuid
    with pytest.raises(BadLine):
        p.feed(b'{"type":"assistant","uuid":"x","usageMetadata":[1]}')
    assert p.feed(b'{"type":"assistant","uuid":"x"}') == []  # no usage: not a request
    t = p.feed(b'{"type":"assistant","uuid":"y","usageMetadata":{"promptTokenCount":5}}')[0]
    assert t.session_id == SESSION and t.model == "unknown"  # session from the file name


def test_path_and_sniff_claims() -> None:
    assert detect(LOG) is AGENT
    for other in ("claude", "codex", "gemini"):
        a = get_agent(other)
        head = LOG.read_bytes()[:4096]
        assert not (a.owns_path(LOG) or a.sniff(head)) or other == "claude"
    # Claude's loose sniff would match these records; Qwen is asked first and its path rule is strict
    assert get_agent("claude").sniff(LOG.read_bytes()[:4096])
    assert AGENT.owns_path(Path("/h/.qwen/projects/-a/chats/s.jsonl"))
    assert AGENT.owns_path(Path("/h/.qwen/projects/-a/chats/s/subagents/x.jsonl"))
    assert not AGENT.owns_path(Path("/h/.claude/projects/-a/s.jsonl"))
    assert not AGENT.owns_path(Path("/h/.claude/projects/-a/s/subagents/agent-1.jsonl"))
    assert not AGENT.owns_path(Path("/h/.gemini/tmp/abc/chats/session-1.jsonl"))
    assert not AGENT.owns_path(Path("/h/.qwen/projects/-a/chats/s.json"))


def test_sniff_outside_layout(tmp_path: Path) -> None:
    flat = tmp_path / "copied.jsonl"
    shutil.copy(LOG, flat)
    assert detect(flat) is AGENT


@pytest.mark.skipif(not (REAL / "claude").exists(), reason="real Claude fixtures not present")
def test_does_not_steal_real_claude_or_gemini_logs() -> None:
    for p in (REAL / "claude").rglob("*.jsonl"):
        assert not AGENT.owns_path(p)
        assert not AGENT.sniff(p.read_bytes()[:4096]), p
    for p in (REAL / "gemini").rglob("*.json"):
        assert not AGENT.sniff(p.read_bytes()[:4096]), p


def test_roots(tmp_path: Path) -> None:
    home = tmp_path
    assert AGENT.roots({}, home) == [home / ".qwen" / "projects"]
    assert AGENT.roots({"QWEN_HOME": "/q"}, home) == [Path("/q/projects")]
    assert AGENT.roots({"QWEN_HOME": "/q", "QWEN_RUNTIME_DIR": "/r"}, home) == [Path("/r/projects")]


def test_nested_subagent_file_is_sidechain(tmp_path: Path) -> None:
    p = tmp_path / "projects" / "-a" / "chats" / SESSION / "agent-1.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text(
        json.dumps(
            {"type": "assistant", "uuid": "z", "sessionId": SESSION, "usageMetadata": {"promptTokenCount": 7}}
        )
        + "\n"
    )
    assert AGENT.owns_path(p)
    (t,) = turns_of(p)
    assert t.sidechain and t.session_id == SESSION


def test_export_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIX, tmp_path / "qwen")
    assert main(["export", "--no-cache", "--format", "json", str(tmp_path)]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["agent"] == "qwen"]
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {"qwen3-coder-plus", "qwen3-coder-flash", "gemini-2.5-pro"}
    plus = by_model["qwen3-coder-plus"]
    assert (plus["turns"], plus["input_tokens"], plus["cache_read_tokens"], plus["output_tokens"]) == (
        2,
        12414 + 2712,
        12288,
        376,
    )
    assert by_model["gemini-2.5-pro"]["reasoning_tokens"] == 200
    assert all(r["session_id"] == SESSION and r["project"] == "/home/dev/proj" for r in rows)


def test_fuzz_records_only_badline() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(
        [
            "type",
            "uuid",
            "sessionId",
            "cwd",
            "model",
            "usageMetadata",
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "cachedContentTokenCount",
            "totalTokenCount",
            "toolUsePromptTokenCount",
            "contextWindowSize",
            "isSidechain",
            "timestamp",
        ]
    )
    values = st.recursive(
        st.none()
        | st.integers(-5, 10**13)
        | st.sampled_from(["assistant", "u1"])
        | st.floats()
        | st.booleans(),
        lambda c: st.dictionaries(keys, c, max_size=6) | st.lists(c, max_size=3),
        max_leaves=30,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rec=values)
    def check(rec: object) -> None:
        try:
            turns = QwenParser(LOG).feed(json.dumps(rec).encode())
        except BadLine:
            return
        for t in turns:
            assert min(t.input, t.cache_read, t.output, t.reasoning) >= 0
            assert t.reasoning <= t.output

    check()
