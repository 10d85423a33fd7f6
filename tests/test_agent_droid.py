"""Factory Droid plug-in: `<id>.settings.json` running totals as observed steps (`tokenUsage`, never
`inclusiveTokenUsage`), never counted twice across a restart, resets, moved sessions, live."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from agent_live import following, replace_atomically

from tokwatch.agents import get_agent
from tokwatch.agents.droid import model_name
from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Turn
from tokwatch.core.store import Store
from tokwatch.core.tailer import open_cursor
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "droid" / "sessions"
PARENT, CHILD = "7f9c2b1e-1111-4a2b-9c3d-aaaaaaaaaaaa", "7f9c2b1e-2222-4a2b-9c3d-bbbbbbbbbbbb"
AGENT = get_agent("droid")


def home(tmp_path: Path) -> Path:
    sessions = tmp_path / ".factory" / "sessions"
    shutil.copytree(FIX, sessions)
    return sessions / "-home-me-app"


def read(path: Path, parser: object = None) -> list[Turn]:
    p = parser or AGENT.parser(path)
    cursor = open_cursor(path)
    assert cursor is not None
    return p.read_changed(cursor) or []  # type: ignore[attr-defined]


def rewrite_in_place(path: Path, **usage: int) -> None:
    """Droid rewrites its settings file in place whenever it spends tokens."""
    d = json.loads(path.read_bytes())
    d["tokenUsage"].update(usage)
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(json.dumps(d, indent=2).encode())
        f.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def numbers(store: Store, sid: str) -> tuple[int, int, int, int, int]:
    t = store.sessions[("droid", sid)].totals
    return (t.input, t.cache_read, t.cache_write, t.output, t.reasoning)


def test_token_usage_only_children_are_their_own_sessions(tmp_path: Path) -> None:
    folder = home(tmp_path)
    store = Store(make_pricer())
    for sid in (PARENT, CHILD):
        store.apply(read(folder / f"{sid}.settings.json"))
    # the parent's own tokenUsage; its inclusiveTokenUsage (own + child) is never added
    assert numbers(store, PARENT) == (18234, 1520000, 64000, 9120, 2100)
    assert numbers(store, CHILD) == (2000, 80000, 6000, 500, 0)
    (t,) = store.turns_of(("droid", PARENT))
    assert t.kind == "step" and t.model == "claude-sonnet-4-5-20250929" and t.project == "/home/me/app"
    assert t.sidechain  # one step is not one request: the context in use is not known


def test_steps_and_resets(tmp_path: Path) -> None:
    path = home(tmp_path) / f"{PARENT}.settings.json"
    p = AGENT.parser(path)
    store = Store(make_pricer())
    store.apply(read(path, p))
    rewrite_in_place(path, inputTokens=18300, outputTokens=9200, cacheReadTokens=1530000)
    (step,) = read(path, p)
    assert (step.input, step.output, step.cache_read, step.cache_write) == (66, 80, 10000, 0)
    store.apply([step])
    assert read(path, p) == []  # the same totals again
    rewrite_in_place(path, inputTokens=10, outputTokens=5, cacheReadTokens=0, cacheCreationTokens=0)
    assert read(path, p) == []  # went down (restored from a backup): a new baseline
    rewrite_in_place(path, inputTokens=30, outputTokens=9)
    store.apply(read(path, p))
    assert numbers(store, PARENT)[:4:3] == (18300 + 20, 9200 + 4)


def test_never_counted_twice_across_a_restart(tmp_path: Path) -> None:
    """Through the engine and its cache: the file rewritten in place while tokwatch was not
    running is resumed with what was already counted, and only the growth is added."""
    folder = home(tmp_path)
    ledger_dir = tmp_path / "ledger"
    e1 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [tmp_path / ".factory"])
    e1.backfill()
    rewrite_in_place(folder / f"{PARENT}.settings.json", inputTokens=20000, outputTokens=10000)
    e2 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [tmp_path / ".factory"])
    e2.backfill()
    assert numbers(e2.store, PARENT)[:4:3] == (20000, 10000)
    assert e2.store.sessions[("droid", PARENT)].totals.turns == 2
    e3 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [tmp_path / ".factory"])
    e3.backfill()
    assert numbers(e3.store, PARENT)[:4:3] == (20000, 10000)


def test_a_session_moved_into_a_project_folder_counts_once(tmp_path: Path) -> None:
    folder = home(tmp_path)
    old = folder.parent / f"{PARENT}.settings.json"  # the pre-migration flat copy
    shutil.copy(folder / f"{PARENT}.settings.json", old)
    assert AGENT.owns_path(old)
    assert read(old) == []
    assert len(read(folder / f"{PARENT}.settings.json")) == 1


def test_model_names() -> None:
    assert model_name({"model": "custom:Claude-Opus-4.1-[Anthropic]-0"}) == "Claude-Opus-4.1"
    assert (
        model_name({"model": "auto", "effectiveFactoryRouterModel": {"modelId": "gpt-5-codex"}})
        == "gpt-5-codex"
    )
    assert model_name({}) == "unknown"


def test_owned_files(tmp_path: Path) -> None:
    folder = home(tmp_path)
    assert detect(folder / f"{PARENT}.settings.json") is AGENT
    assert not AGENT.owns_path(folder / f"{PARENT}.jsonl")
    assert not AGENT.owns_path(folder / f"{PARENT}.settings.json.bak")
    assert not AGENT.owns_path(tmp_path / "elsewhere" / "sessions" / "x" / f"{PARENT}.settings.json")
    assert AGENT.roots({}, tmp_path) == [tmp_path / ".factory" / "sessions"]


def test_live_settings_rewrite(tmp_path: Path) -> None:
    folder = home(tmp_path)
    engine = Engine(Store(make_pricer()), [tmp_path / ".factory"], debounce_ms=20, step_ms=10)
    engine.backfill()
    with following(engine) as live:
        rewrite_in_place(folder / f"{PARENT}.settings.json", inputTokens=18300, outputTokens=9300)
        t = live.wait_for(lambda t: t.session_id == PARENT and t.kind == "step" and t.output == 180)
    assert t.input == 66
    with engine.store.lock:
        assert numbers(engine.store, PARENT)[:4:3] == (18300, 9300)


def test_replaced_while_away_is_not_counted_twice(tmp_path: Path) -> None:
    folder = home(tmp_path)
    ledger_dir = tmp_path / "ledger"
    e1 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [tmp_path / ".factory"])
    e1.backfill()
    path = folder / f"{PARENT}.settings.json"
    d = json.loads(path.read_bytes())
    d["tokenUsage"]["inputTokens"] = 20000
    replace_atomically(path, json.dumps(d).encode())
    e2 = Engine(Store(make_pricer(), Ledger.at(ledger_dir)), [tmp_path / ".factory"])
    e2.backfill()
    assert numbers(e2.store, PARENT)[0] == 20000
