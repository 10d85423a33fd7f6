"""Kilo Code ≤ 5.x plug-in (`kilocode.kilo-code` task folders, Roo's format): `usageMissing`
requests are of unknown cost, never $0; Kilo's own release date for the `tokensIn` change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from agent_live import following, replace_atomically

from tokwatch.agents import get_agent
from tokwatch.agents._vscode import KILO_NEW_ERA_MS, ROO_NEW_ERA_MS
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "kilo-code" / "kilocode.kilo-code" / "tasks"
TASK = FIX / "1767331200000"
AGENT = get_agent("kilo-code")


def test_task_with_a_missing_usage_request() -> None:
    turns = AGENT.parser(TASK / "ui_messages.json").parse_document((TASK / "ui_messages.json").read_bytes())
    a, missing, b = turns
    assert (a.input, a.cache_read, a.output, a.model) == (3520, 20480, 350, "anthropic/claude-sonnet-4.5")
    assert (b.input, b.cache_read, b.cache_write, b.output) == (400, 24000, 2000, 120)
    assert missing.total == 0 and missing.sidechain  # no prompt known: the gauge stays
    store = Store(make_pricer())
    store.apply(turns)
    s = store.sessions[("kilo-code", "1767331200000")]
    assert s.totals.turns == 3
    assert s.totals.unpriced_turns == 1 and s.totals.cost_usd is None  # unknown, never $0
    assert s.context_used == 26400


def test_kilo_changed_tokens_in_later_than_roo(tmp_path: Path) -> None:
    """Between Roo 3.29.5 and Kilo 4.119.0 a Kilo build still wrote the uncached input."""
    ts = (ROO_NEW_ERA_MS + KILO_NEW_ERA_MS) // 2
    folder = tmp_path / "kilocode.kilo-code" / "tasks" / "t"
    folder.mkdir(parents=True)
    text = {
        "apiProtocol": "anthropic",
        "tokensIn": 9000,
        "tokensOut": 1,
        "cacheReads": 8000,
        "cacheWrites": 500,
    }
    (folder / "ui_messages.json").write_text(
        json.dumps([{"ts": ts, "type": "say", "say": "api_req_started", "text": json.dumps(text)}])
    )
    (t,) = AGENT.parser(folder / "ui_messages.json").parse_document(
        (folder / "ui_messages.json").read_bytes()
    )
    assert t.input == 9000
    (r,) = (
        get_agent("roo")
        .parser(folder / "ui_messages.json")
        .parse_document((folder / "ui_messages.json").read_bytes())
    )
    assert r.input == 500


def test_discovery() -> None:
    assert detect(TASK / "ui_messages.json") is AGENT
    assert not AGENT.owns_path(TASK / "api_conversation_history.json")
    assert not get_agent("roo").owns_path(TASK / "ui_messages.json")
    assert not get_agent("cline").owns_path(TASK / "ui_messages.json")


def test_live_rewrite(tmp_path: Path) -> None:
    dst = tmp_path / "kilocode.kilo-code" / "tasks" / TASK.name
    shutil.copytree(TASK, dst)
    engine = Engine(Store(make_pricer()), [tmp_path], debounce_ms=20, step_ms=10)
    engine.backfill()
    messages = json.loads((dst / "ui_messages.json").read_bytes())
    usage = {"apiProtocol": "openai", "tokensIn": 30000, "tokensOut": 99, "cacheReads": 26000, "cost": 0.01}
    messages.append({"ts": 1767331270000, "type": "say", "say": "api_req_started", "text": json.dumps(usage)})
    with following(engine) as live:
        replace_atomically(dst / "ui_messages.json", json.dumps(messages).encode())
        t = live.wait_for(lambda t: t.turn_id == "1767331270000")
    assert (t.input, t.cache_read, t.output) == (4000, 26000, 99)
    assert t.cost_usd == pytest.approx(0.01)
