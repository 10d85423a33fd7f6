"""Amp plug-in: `threads/T-<uuid>.json`, one document rewritten whole, usage per assistant message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tokwatch.agents import get_agent
from tokwatch.agents.amp import AmpParser
from tokwatch.agents.base import BadLine
from tokwatch.cli import main
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "amp"
THREAD = "T-019b9d03-62e3-772f-9780-3e637f90eaec"
DOC = FIX / "threads" / f"{THREAD}.json"
AGENT = get_agent("amp")
MODEL = "claude-sonnet-4-5-20250929"


def parse(data: object, path: Path = DOC):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return AmpParser(path).parse_document(raw)


def test_fixture_turns() -> None:
    t1, t3 = parse(DOC.read_bytes())
    assert (t1.turn_id, t3.turn_id) == ("1", "3")
    assert (t1.input, t1.cache_read, t1.cache_write, t1.output) == (3, 0, 14500, 120)
    assert (t3.input, t3.cache_read, t3.cache_write, t3.output) == (5, 14500, 900, 310)
    assert t3.context == 15405  # totalInputTokens
    assert t1.session_id == THREAD and t1.model == MODEL and t1.agent == "amp"
    assert t1.project == "/home/dev/web app"
    assert t1.timestamp == pytest.approx(1767865807.12)


def test_input_that_already_holds_the_cache() -> None:
    doc = {
        "id": THREAD,
        "messages": [
            {
                "role": "assistant",
                "messageId": 1,
                "usage": {
                    "model": "gpt-5",
                    "inputTokens": 1000,
                    "cacheReadInputTokens": 800,
                    "totalInputTokens": 1000,
                    "outputTokens": 50,
                },
            }
        ],
    }
    (t,) = parse(doc)
    assert (t.input, t.cache_read, t.context) == (200, 800, 1000)


def test_ledger_fallback_and_created_timestamp() -> None:
    doc = {
        "id": THREAD,
        "created": 1700000000000,
        "messages": [{"role": "assistant", "messageId": 1, "content": []}],
        "usageLedger": {
            "events": [
                {
                    "id": "ev-1",
                    "timestamp": "2025-11-23T10:00:00.000Z",
                    "model": "claude-haiku-4-5-20251001",
                    "credits": 1.5,
                    "tokens": {"input": 100, "output": 50},
                    "operationType": "inference",
                    "fromMessageId": 0,
                    "toMessageId": 1,
                }
            ]
        },
    }
    (t,) = parse(doc)
    assert (t.turn_id, t.input, t.output, t.model) == ("ledger:ev-1", 100, 50, "claude-haiku-4-5-20251001")
    # message usage without its own timestamp falls back to the thread's creation time
    doc2 = {
        "id": THREAD,
        "created": 1700000000000,
        "messages": [{"role": "assistant", "usage": {"outputTokens": 9}}],
    }
    (u,) = parse(doc2)
    assert (u.turn_id, u.timestamp, u.model) == ("0", 1700000000.0, "unknown")


def test_torn_or_malformed_document() -> None:
    whole = DOC.read_bytes()
    with pytest.raises(BadLine):
        parse(whole[: len(whole) // 2])
    with pytest.raises(BadLine):
        parse(b"[]")
    with pytest.raises(BadLine):
        parse({"id": THREAD, "messages": {"a": 1}})
    # one malformed message is skipped and counted, not the whole thread (issue 12)
    p = AmpParser(DOC)
    bad = {"id": THREAD, "messages": [{"role": "assistant", "usage": {"inputTokens": -3}}]}
    assert p.parse_document(json.dumps(bad).encode()) == [] and p.skipped == 1
    assert parse({"id": THREAD}) == []


def test_rewrite_replaces_by_message(tmp_path: Path) -> None:
    doc_path = tmp_path / "threads" / f"{THREAD}.json"
    doc_path.parent.mkdir()
    shutil.copy(DOC, doc_path)
    store = Store(make_pricer())
    engine = Engine(store, [tmp_path])
    engine.backfill()
    s = store.sessions[("amp", THREAD)]
    assert (s.totals.turns, s.totals.output) == (2, 430)
    # Amp rewrites the whole file: the running message finished, an earlier one unchanged
    doc = json.loads(doc_path.read_text())
    doc["messages"][4]["usage"] = {
        "model": MODEL,
        "inputTokens": 2,
        "outputTokens": 77,
        "cacheCreationInputTokens": 400,
        "cacheReadInputTokens": 15400,
        "totalInputTokens": 15802,
        "timestamp": "2026-01-08T09:51:00.000Z",
    }
    tmp = doc_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(doc_path)
    engine.refresh([doc_path])
    s = store.sessions[("amp", THREAD)]
    assert (s.totals.turns, s.totals.output, s.totals.cache_read) == (3, 507, 14500 + 15400)
    assert s.context_used == 15802
    # a torn rewrite keeps what was counted
    doc_path.write_bytes(b'{"id": "T-019b9d03-62e3')
    engine.refresh([doc_path])
    s = store.sessions[("amp", THREAD)]
    assert s.totals.turns == 3


def test_path_and_sniff_claims(tmp_path: Path) -> None:
    assert detect(DOC) is AGENT
    head = DOC.read_bytes()[:4096]
    for other in ("claude", "codex", "gemini"):
        a = get_agent(other)
        assert not a.owns_path(DOC) and not a.sniff(head), other
    flat = tmp_path / "thread.json"
    shutil.copy(DOC, flat)
    assert detect(flat) is AGENT
    assert not AGENT.owns_path(Path("/h/.local/share/amp/threads/notes.json"))
    assert not AGENT.sniff(b'{"parentUuid":null,"text":"\\"id\\":\\"T-12345678-aaaa"}')


def test_roots(tmp_path: Path) -> None:
    assert AGENT.roots({}, tmp_path) == [tmp_path / ".local" / "share" / "amp" / "threads"]
    assert AGENT.roots({"XDG_DATA_HOME": "/x"}, tmp_path) == [Path("/x/amp/threads")]
    assert AGENT.roots({"AMP_DATA_HOME": "/a", "XDG_DATA_HOME": "/x"}, tmp_path) == [Path("/a/threads")]


def test_export_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIX, tmp_path / "amp")
    assert main(["export", "--no-cache", "--format", "json", str(tmp_path)]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["agent"] == "amp"]
    assert (row["session_id"], row["model"], row["turns"]) == (THREAD, MODEL, 2)
    assert (
        row["input_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
        row["output_tokens"],
    ) == (
        8,
        14500,
        15400,
        430,
    )
    assert row["context_tokens"] == 15405 and row["project"] == "/home/dev/web app"
    assert row["cost_usd"] is not None and row["cost_usd"] > 0


def test_fuzz_only_badline() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(
        [
            "id",
            "messages",
            "role",
            "usage",
            "inputTokens",
            "outputTokens",
            "cacheReadInputTokens",
            "cacheCreationInputTokens",
            "totalInputTokens",
            "model",
            "messageId",
            "usageLedger",
            "events",
            "tokens",
            "input",
            "output",
            "env",
            "initial",
            "trees",
            "uri",
            "created",
            "timestamp",
        ]
    )
    values = st.recursive(
        st.none()
        | st.integers(-5, 10**13)
        | st.sampled_from(["assistant", "T-1", "file:///a b"])
        | st.floats(),
        lambda c: st.dictionaries(keys, c, max_size=5) | st.lists(c, max_size=3),
        max_leaves=30,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=values)
    def check(doc: object) -> None:
        try:
            turns = parse(doc)
        except BadLine:
            return
        for t in turns:
            assert min(t.input, t.cache_read, t.cache_write, t.output) >= 0

    check()
