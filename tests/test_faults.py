"""Faults found by the adversarial test of issue 12: each kept by a test that failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tokwatch.core.models import Tokens
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

TESTS = Path(__file__).resolve().parent
GEMINI_DOC = TESTS / "fixtures" / "real" / "gemini" / "yoavf-ai-sessions__gemini-cli-pomodoro-timer.json"
AMP_DOC = TESTS / "fixtures" / "agents" / "amp" / "threads" / "T-019b9d03-62e3-772f-9780-3e637f90eaec.json"
BAD_COUNTS: list[Any] = ["12", 1.0, -1, True, 1e3, 10**13, [1], {"n": 1}]


def backfill(root: Path) -> Engine:
    engine = Engine(Store(make_pricer()), [root])
    engine.backfill()
    return engine


def totals(engine: Engine) -> Tokens:
    return engine.store.totals()


# ---------------------------------------------------------------- one bad message, not the document
def _gemini(root: Path, doc: dict[str, Any]) -> Path:
    p = root / ".gemini" / "tmp" / "proj" / "chats" / "session-2026-01-01T00-00-abc.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_one_bad_gemini_message_skips_only_itself(tmp_path: Path, bad: Any) -> None:
    doc = json.loads(GEMINI_DOC.read_bytes())
    whole = backfill(_gemini(tmp_path / "whole", doc).parents[4])
    billed = [i for i, m in enumerate(doc["messages"]) if m.get("type") == "gemini" and m["tokens"]["total"]]
    victim = billed[len(billed) // 2]
    lost = dict(doc["messages"][victim]["tokens"])
    doc["messages"][victim]["tokens"]["tool"] = bad
    engine = backfill(_gemini(tmp_path / "bad", doc).parents[4])
    w, t = totals(whole), totals(engine)
    assert t.turns == w.turns - 1
    assert t.output == w.output - lost["output"] - lost["thoughts"]
    assert t.input + t.cache_read == w.input + w.cache_read - lost["input"] - lost["tool"]
    assert engine.skips.lines == 1


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_one_bad_amp_message_skips_only_itself(tmp_path: Path, bad: Any) -> None:
    root = tmp_path / "threads"
    root.mkdir()
    doc = json.loads(AMP_DOC.read_bytes())
    doc["messages"][1]["usage"]["outputTokens"] = bad
    (root / AMP_DOC.name).write_text(json.dumps(doc))
    engine = backfill(root)
    t = totals(engine)
    assert (t.turns, t.input, t.cache_read, t.cache_write, t.output) == (1, 5, 14500, 900, 310)
    assert engine.skips.lines == 1


def test_a_fixed_document_clears_its_skipped_count(tmp_path: Path) -> None:
    root = tmp_path / "threads"
    root.mkdir()
    doc = json.loads(AMP_DOC.read_bytes())
    good = json.dumps(doc)
    doc["messages"][3]["usage"]["inputTokens"] = "5"
    path = root / AMP_DOC.name
    path.write_text(json.dumps(doc))
    engine = backfill(root)
    assert (totals(engine).turns, engine.skips.lines) == (1, 1)
    path.write_text(good + " ")  # rewritten whole, now valid
    engine.refresh([path])
    assert engine.skips.lines == 0
