"""Roo Code plug-in: task folders (a real Roo 3.5x excerpt, tasks built in both eras' shapes), the
`tokensIn` version rule, deleted requests, condense costs, per-request models, discovery, live."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from agent_live import following, replace_atomically

from tokwatch.agents import get_agent
from tokwatch.agents._vscode import ROO_NEW_ERA_MS
from tokwatch.core.models import Tokens, Turn
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "roo" / "rooveterinaryinc.roo-cline" / "tasks"
NEW = FIX / "0199a1b2-roo-new"
OLD = FIX / "0199a1b2-roo-old"
REAL = FIX / "0198d8a0-roo-real" / "ui_messages.json"
AGENT = get_agent("roo")


def parse(path: Path, parser: object = None) -> list[Turn]:
    p = parser or AGENT.parser(path)
    return p.parse_document(path.read_bytes())  # type: ignore[attr-defined]


def nums(t: Turn) -> tuple[int, int, int, int]:
    return (t.input, t.cache_read, t.cache_write, t.output)


def totals(*batches: list[Turn]) -> Tokens:
    store = Store(make_pricer())
    for b in batches:
        store.apply(b)
    return store.totals()


def req(ts: int, protocol: str | None = "anthropic", **usage: object) -> dict:
    text = {"apiProtocol": protocol, **usage} if protocol else dict(usage)
    return {"ts": ts, "type": "say", "say": "api_req_started", "text": json.dumps(text)}


def task(tmp_path: Path, messages: list[dict], task_id: str = "0199ffff-task") -> Path:
    folder = tmp_path / "rooveterinaryinc.roo-cline" / "tasks" / task_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ui_messages.json").write_text(json.dumps(messages))
    return folder / "ui_messages.json"


def test_new_era_task_tokens_in_holds_the_cache() -> None:
    """Roo ≥ 3.29.5: `tokensIn` is the whole prompt. Expected values from the notes (§7)."""
    turns = parse(NEW / "ui_messages.json")
    by_id = {t.turn_id: t for t in turns}
    assert nums(by_id["1767225610000"]) == (12, 0, 15000, 400)
    assert nums(by_id["1767225625000"]) == (850, 15000, 1200, 220)
    assert nums(by_id["1767225640000"]) == (5, 16200, 300, 40)  # cancelled: billed, counted
    condense = by_id["1767225660000"]
    assert condense.total == 0 and condense.cost_usd == pytest.approx(0.0123)
    assert nums(by_id["1767225670000"]) == (3, 0, 2150, 150)
    deleted = by_id["sum@1767225690000:deleted"]
    assert nums(deleted) == (500, 8000, 500, 300) and deleted.kind == "aggregate" and deleted.sidechain
    assert "1767225700000" not in by_id  # the trailing placeholder (no usage yet)
    assert {t.model for t in turns} == {"claude-sonnet-4-5"} and {t.project for t in turns} == {
        "/home/me/app"
    }
    store = Store(make_pricer())
    store.apply(turns)
    s = store.sessions[("roo", "0199a1b2-roo-new")]
    assert s.context_used == 2153  # the last finished request's whole prompt
    # Roo's own total (history_item.json) is api_req_started + condense costs: ours adds the
    # deleted requests, which were billed too
    item = json.loads((NEW / "history_item.json").read_bytes())
    assert sum(t.cost_usd or 0 for t in turns if t.kind != "aggregate") == pytest.approx(item["totalCost"])
    assert sum(t.output for t in turns if t.kind != "aggregate") == item["tokensOut"]


def test_old_era_task_tokens_in_is_uncached() -> None:
    turns = parse(OLD / "ui_messages.json")
    assert [nums(t) for t in turns] == [
        (12, 0, 15000, 400),  # anthropic protocol, 12 < 15000 cached: uncached input
        (850, 15000, 1200, 220),
        (1000, 8000, 0, 300),  # openai protocol: cache-inclusive in every era
    ]


def test_real_openai_protocol_excerpt() -> None:
    turns = parse(REAL)
    raw = [json.loads(m["text"]) for m in json.loads(REAL.read_bytes()) if m.get("say") == "api_req_started"]
    assert [t.input for t in turns] == [r["tokensIn"] for r in raw] == [30760, 33240, 34412, 42625]
    assert [t.cost_usd for t in turns] == pytest.approx([r["cost"] for r in raw])
    assert all(t.model == "unknown" for t in turns)  # the excerpt has no api_conversation_history.json


@pytest.mark.parametrize(
    ("protocol", "ts", "tokens_in", "expect_input", "why"),
    [
        ("openai", ROO_NEW_ERA_MS - 1, 9000, 500, "openai: cache-inclusive in both eras"),
        ("anthropic", ROO_NEW_ERA_MS + 1, 9000, 500, "new era: the whole prompt"),
        ("anthropic", ROO_NEW_ERA_MS + 1, 500, 500, "smaller than its cache: an old build"),
        ("anthropic", ROO_NEW_ERA_MS - 1, 9000, 9000, "before Roo 3.29.5: uncached"),
        (None, ROO_NEW_ERA_MS - 1, 500, 500, "no apiProtocol (before 2025-07): an old build"),
        # the documented limit: an old build run after the release with uncached input >= its
        # cache reads as the new era (the files cannot tell them apart)
        ("anthropic", ROO_NEW_ERA_MS + 1, 8600, 100, "ambiguous: read as the new era"),
    ],
)
def test_version_rule(
    tmp_path: Path, protocol: str | None, ts: int, tokens_in: int, expect_input: int, why: str
) -> None:
    path = task(
        tmp_path, [req(ts, protocol, tokensIn=tokens_in, tokensOut=1, cacheReads=8000, cacheWrites=500)]
    )
    (t,) = parse(path)
    assert (t.input, t.cache_read, t.cache_write) == (expect_input, 8000, 500), why


def test_deleted_requests_counted_once_warm_or_cold(tmp_path: Path) -> None:
    ts = ROO_NEW_ERA_MS + 10_000_000
    first = [req(ts, tokensIn=15012, tokensOut=400, cacheWrites=15000, cost=0.06)]
    gone = [
        req(ts + 1000, tokensIn=17050, tokensOut=220, cacheReads=15000, cacheWrites=1200, cost=0.015),
        req(ts + 2000, tokensIn=16505, tokensOut=40, cacheReads=16200, cacheWrites=300, cost=0.0066),
    ]
    path = task(tmp_path, first + gone)
    p = AGENT.parser(path)
    before = parse(path, p)
    aggregate = {
        "tokensIn": 17050 + 16505,
        "tokensOut": 260,
        "cacheWrites": 1500,
        "cacheReads": 31200,
        "cost": 0.0216,
    }
    restored = [
        *first,
        {"ts": ts + 5000, "type": "say", "say": "api_req_deleted", "text": json.dumps(aggregate)},
    ]
    path.write_text(json.dumps(restored))
    warm = totals(before, parse(path, p))
    cold = totals(parse(path, AGENT.parser(path)))
    assert (warm.input, warm.cache_read, warm.cache_write, warm.output) == (
        cold.input,
        cold.cache_read,
        cold.cache_write,
        cold.output,
    )
    assert warm.input == 12 + 850 + 5 and warm.cost_pico == cold.cost_pico


def test_condense_sets_the_gauge(tmp_path: Path) -> None:
    ts = ROO_NEW_ERA_MS + 10_000_000
    condense = {"ts": ts + 10, "type": "say", "say": "condense_context",
                "contextCondense": {"cost": 0.02, "prevContextTokens": 90000, "newContextTokens": 4000}}  # fmt: skip
    path = task(tmp_path, [req(ts, tokensIn=90000, tokensOut=10, cacheReads=80000), condense])
    store = Store(make_pricer())
    turns = parse(path)
    changes = store.apply(turns)
    s = store.sessions[("roo", "0199ffff-task")]
    assert s.context_used == 4000 and s.totals.turns == 2
    cost = next(c.cost for c in changes.turns if c.turn.turn_id == turns[1].turn_id)
    assert cost == 20_000_000_000  # Roo's cost for the condensing call ($0.02)


def test_model_of_each_request_follows_the_prompt(tmp_path: Path) -> None:
    """A model switch mid-task: each request's model is the one its prompt named (the user message
    Roo writes right after the request's placeholder), not the last one of the file."""
    ts = ROO_NEW_ERA_MS + 10_000_000
    path = task(tmp_path, [req(ts, tokensIn=100, tokensOut=1), req(ts + 1000, tokensIn=200, tokensOut=2)])

    def user(at: int, model: str) -> dict:
        env = f"<environment_details>\n# Current Mode\n<slug>code</slug>\n<model>{model}</model>\n\n# Current Workspace Directory (/w/p) Files\n</environment_details>"
        return {"role": "user", "ts": at, "content": [{"type": "text", "text": env}]}

    history = [
        user(ts + 300, "claude-sonnet-4-5"),
        {"role": "assistant", "content": "ok"},
        user(ts + 1300, "gpt-5"),
    ]
    (path.parent / "api_conversation_history.json").write_text(json.dumps(history))
    a, b = parse(path)
    assert (a.model, b.model) == ("claude-sonnet-4-5", "gpt-5")
    assert a.project == "/w/p"


def test_custom_storage_path_and_cli_roots(tmp_path: Path) -> None:
    import sys

    if sys.platform != "linux":
        pytest.skip("Linux layout")
    user = tmp_path / ".config" / "Code" / "User"
    (user / "globalStorage").mkdir(parents=True)
    (user / "settings.json").write_text(
        '{\n  // comments are allowed here\n  "roo-cline.customStoragePath": "'
        + str(tmp_path / "roo-data")
        + '",\n}'
    )
    roots = AGENT.roots({}, tmp_path)
    assert tmp_path / "roo-data" / "tasks" in roots
    assert user / "globalStorage" / "rooveterinaryinc.roo-cline" / "tasks" in roots
    assert tmp_path / ".vscode-mock" / "global-storage" / "tasks" in roots  # the Roo CLI
    assert AGENT.owns_path(tmp_path / "roo-data" / "tasks" / "t1" / "ui_messages.json")
    assert not AGENT.owns_path(tmp_path / "roo-data" / "tasks" / "_index.json")
    assert not AGENT.owns_path(tmp_path / "roo-data" / "tasks" / "t1" / "history_item.json")
    assert detect(NEW / "ui_messages.json") is AGENT


def test_live_rewrite(tmp_path: Path) -> None:
    src = tmp_path / "rooveterinaryinc.roo-cline" / "tasks" / NEW.name
    shutil.copytree(NEW, src)
    path = src / "ui_messages.json"
    engine = Engine(Store(make_pricer()), [tmp_path], debounce_ms=20, step_ms=10)
    engine.backfill()
    s = engine.store.sessions[("roo", NEW.name)]
    assert s.totals.turns == 6
    messages = json.loads(path.read_bytes())
    with following(engine) as live:
        # the trailing placeholder gets its usage (Roo rewrites the file whole)
        messages[-1]["text"] = json.dumps(
            {
                "apiProtocol": "anthropic",
                "tokensIn": 2400,
                "tokensOut": 77,
                "cacheReads": 2150,
                "cacheWrites": 200,
            }
        )
        replace_atomically(path, json.dumps(messages).encode())
        t = live.wait_for(lambda t: t.turn_id == "1767225700000")
        assert nums(t) == (50, 2150, 200, 77)
        s = engine.store.sessions[("roo", NEW.name)]  # (published anew with each batch)
        assert (s.totals.turns, s.context_used) == (7, 2400)
