"""Cline plug-in: classic task folders (real ui_messages.json excerpts) and SDK sessions (Cline's
own fixtures): counted as Cline counts, cancelled requests included, deleted requests and
subagent batches as aggregates, forks and compaction and the Legacy/Next hand-over counted once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from agent_live import following, replace_atomically

from tokwatch.agents import get_agent
from tokwatch.agents.cline import ClineTaskParser
from tokwatch.core.models import Tokens, Turn
from tokwatch.core.store import Store
from tokwatch.ingest.discover import detect
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "cline"
TASKS = FIX / "saoudrizwan.claude-dev" / "tasks"
CLINE_PROVIDER = TASKS / "1767644900000" / "ui_messages.json"  # real, Cline ≥3.37 (modelInfo)
DEEPSEEK = TASKS / "1760534070000" / "ui_messages.json"  # real, Cline 3.3x, DeepSeek provider
SDK = FIX / "sdk"
AGENT = get_agent("cline")


def get_api_metrics(messages: list[dict]) -> dict[str, float]:
    """Cline's own `getApiMetrics` (apps/vscode/src/shared/getApiMetrics.ts), line for line."""
    out = {"tokensIn": 0, "tokensOut": 0, "cacheWrites": 0, "cacheReads": 0, "cost": 0.0}
    for m in messages:
        if m.get("type") == "say" and m.get("say") in (
            "api_req_started",
            "deleted_api_reqs",
            "subagent_usage",
        ):
            d = json.loads(m.get("text") or "{}")
            for k in out:
                if isinstance(d.get(k), int | float):
                    out[k] += d[k]
    return out


def task(tmp_path: Path, messages: list[dict], task_id: str = "1767000000000") -> Path:
    folder = tmp_path / "saoudrizwan.claude-dev" / "tasks" / task_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ui_messages.json"
    path.write_text(json.dumps(messages))
    return path


def parse(path: Path, parser: ClineTaskParser | None = None) -> list[Turn]:
    p = parser or AGENT.parser(path)
    return p.parse_document(path.read_bytes())


def totals(*batches: list[Turn]) -> Tokens:
    store = Store(make_pricer())
    for b in batches:
        store.apply(b)
    return store.totals()


def req(ts: int, **usage: object) -> dict:
    return {
        "ts": ts,
        "type": "say",
        "say": "api_req_started",
        "text": json.dumps({"request": "…", **usage}),
        "modelInfo": {"providerId": "anthropic", "modelId": "claude-sonnet-4-5", "mode": "act"},
    }


# ---------------------------------------------------------------------------- classic, real files
def test_real_sample_counts_as_cline_counts() -> None:
    messages = json.loads(CLINE_PROVIDER.read_bytes())
    turns = parse(CLINE_PROVIDER)
    cline = get_api_metrics(messages)
    # the Cline provider reports tokensIn without the cache: Cline's sums are ours
    assert sum(t.input for t in turns) == cline["tokensIn"] == 123777
    assert sum(t.output for t in turns) == cline["tokensOut"]
    assert sum(t.cache_read for t in turns) == cline["cacheReads"]
    assert sum(t.cache_write for t in turns) == cline["cacheWrites"]
    assert sum(t.cost_usd or 0 for t in turns) == pytest.approx(cline["cost"])
    # 11 requests with usage; the streaming failures (all zero) and the two all-zero
    # deleted_api_reqs aggregates add nothing and are not turns
    assert len(turns) == 11 and all(t.turn_id.isdigit() for t in turns)
    # the model and provider of each request come from its own modelInfo (a switch mid-task)
    assert {t.model for t in turns} == {"x-ai/grok-code-fast-1", "anthropic/claude-sonnet-4.5"}
    first = turns[0]
    assert (first.turn_id, first.input, first.cache_read, first.output) == ("1767644912730", 11495, 512, 16)
    assert first.session_id == "1767644900000" and first.timestamp == 1767644912.73
    # free requests (cost 0) are priced by tokens; the provider-reported cost is kept when positive
    assert first.cost_usd is None
    assert turns[-1].cost_usd == pytest.approx(0.03599985)


def test_deepseek_misses_reported_as_cache_writes(tmp_path: Path) -> None:
    """Cline's DeepSeek handler: tokensIn always 0, cacheWrites = cache MISSES (uncached input)."""
    turns = parse(DEEPSEEK)
    assert sum(t.output for t in turns) == get_api_metrics(json.loads(DEEPSEEK.read_bytes()))["tokensOut"]
    # no modelInfo in Cline 3.3x and no task_metadata.json: Cline's own fields, provider unknown
    assert (turns[0].input, turns[0].cache_write) == (0, 11145)
    # with the task's model log (task_metadata.json model_usage), the provider is known
    path = task(tmp_path, json.loads(DEEPSEEK.read_bytes()), "1760534070000")
    (path.parent / "task_metadata.json").write_text(
        json.dumps(
            {
                "files_in_context": [],
                "model_usage": [
                    {
                        "ts": 1760534070000,
                        "model_id": "deepseek-chat",
                        "model_provider_id": "deepseek",
                        "mode": "act",
                    }
                ],
            }
        )
    )
    fixed = parse(path)
    t = fixed[0]
    assert (t.model, t.input, t.cache_read, t.cache_write, t.output) == ("deepseek-chat", 11145, 0, 0, 173)
    assert t.cost_usd == pytest.approx(0.00319945)  # = 11145 x $0.27/M + 173 x $1.10/M (miss price)
    assert sum(x.input + x.cache_read + x.cache_write for x in fixed) == sum(
        x.input + x.cache_read + x.cache_write for x in turns
    )


@pytest.mark.parametrize(
    ("provider", "tokens_in", "cache_writes"),
    [
        ("anthropic", 1000, 500),  # uncached tokensIn, real cache writes
        ("openai", 9000, 1000),  # prompt_tokens (cache inside); cacheWrites = the MISS count
        ("litellm", 9500, 500),  # prompt_tokens (cache inside); real cache writes
        ("deepseek", 0, 1000),  # tokensIn always 0; cacheWrites = the MISS count
        (None, 1000, 500),  # no provider known: assumed uncached (the majority)
    ],
)
def test_tokens_in_per_provider(
    tmp_path: Path, provider: str | None, tokens_in: int, cache_writes: int
) -> None:
    """The same request (1000 uncached, 8000 read from cache) as each provider handler reports it."""
    m = req(1767000001000, tokensIn=tokens_in, tokensOut=5, cacheReads=8000, cacheWrites=cache_writes)
    if provider is None:
        del m["modelInfo"]
    else:
        m["modelInfo"]["providerId"] = provider
    (t,) = parse(task(tmp_path, [m]))
    writes = 0 if provider in ("openai", "deepseek") else 500
    assert (t.input, t.cache_read, t.cache_write) == (1000, 8000, writes)


def test_cancelled_requests_are_counted(tmp_path: Path) -> None:
    path = task(
        tmp_path,
        [
            req(1767000001000, tokensIn=10, tokensOut=20, cacheReads=3000, cacheWrites=40, cost=0.01),
            req(
                1767000002000,
                tokensIn=11,
                tokensOut=7,
                cacheReads=3040,
                cacheWrites=0,
                cost=0.002,
                cancelReason="user_cancelled",
            ),
            req(
                1767000003000,
                tokensIn=0,
                tokensOut=0,
                cacheReads=0,
                cacheWrites=0,
                cost=0,
                cancelReason="streaming_failed",
            ),
            req(1767000004000),  # the placeholder of a request not yet streamed
        ],
    )
    turns = parse(path)
    assert [t.turn_id for t in turns] == ["1767000001000", "1767000002000"]
    assert turns[1].output == 7 and turns[1].cost_usd == pytest.approx(0.002)
    # a cancelled request still sent its prompt: it is the context in use
    assert not turns[1].sidechain and turns[1].context == 11 + 3040


def test_a_request_zeroed_for_a_retry_then_refilled(tmp_path: Path) -> None:
    """Cline resets a request to 0 (`streaming_failed`) while auto-retrying it, then the retry's
    usage fills the same message: last write wins, never a sum."""
    path = task(tmp_path, [req(1767000001000, tokensIn=10, tokensOut=2, cacheReads=100)])
    p = AGENT.parser(path)
    store = Store(make_pricer())
    store.apply(parse(path, p))
    path.write_text(
        json.dumps([req(1767000001000, tokensIn=0, tokensOut=0, cost=0, cancelReason="streaming_failed")])
    )
    store.apply(parse(path, p))
    assert store.totals().total == 0 and store.totals().turns == 1
    path.write_text(json.dumps([req(1767000001000, tokensIn=12, tokensOut=30, cacheReads=100, cost=0.003)]))
    store.apply(parse(path, p))
    assert (store.totals().input, store.totals().output, store.totals().turns) == (12, 30, 1)


def test_api_req_finished_merges_into_its_request(tmp_path: Path) -> None:
    path = task(
        tmp_path,
        [
            req(1767000001000),
            {
                "ts": 1767000001500,
                "type": "say",
                "say": "api_req_finished",
                "text": json.dumps({"tokensIn": 9, "tokensOut": 4, "cost": 0.001}),
            },
        ],
    )
    (t,) = parse(path)
    assert (t.turn_id, t.input, t.output) == ("1767000001000", 9, 4)


def test_subagent_usage_is_one_aggregate_turn(tmp_path: Path) -> None:
    batch = {
        "source": "subagents",
        "tokensIn": 400,
        "tokensOut": 90,
        "cacheWrites": 10,
        "cacheReads": 7000,
        "cost": 0.04,
    }
    messages = [
        req(1767000001000, tokensIn=10, tokensOut=20, cacheReads=3000, cost=0.01),
        {**req(1767000002000), "say": "subagent_usage", "text": json.dumps(batch)},
    ]
    turns = parse(task(tmp_path, messages))
    agg = turns[1]
    assert agg.turn_id == "sum@1767000002000:subagents"
    assert (agg.input, agg.output, agg.cache_read, agg.cache_write) == (400, 90, 7000, 10)
    assert agg.sidechain and agg.kind == "aggregate"  # not the parent's context
    cline = get_api_metrics(messages)
    assert sum(t.input for t in turns) == cline["tokensIn"]
    assert sum(t.cost_usd or 0 for t in turns) == pytest.approx(cline["cost"])


def restore_checkpoint(messages: list[dict], keep: int, ts: int) -> list[dict]:
    """What Cline's checkpoint restore writes: the messages before the restore point, then one
    `deleted_api_reqs` aggregate of the removed ones (`getApiMetrics` of them)."""
    removed = get_api_metrics(messages[keep:])
    agg = {"tokensIn": removed["tokensIn"], "tokensOut": removed["tokensOut"], "cacheWrites": removed["cacheWrites"],
           "cacheReads": removed["cacheReads"], "cost": removed["cost"]}  # fmt: skip
    tail = {**req(ts), "say": "deleted_api_reqs", "text": json.dumps(agg)}
    return [*messages[:keep], tail]


def test_deleted_requests_counted_once_warm_or_cold(tmp_path: Path) -> None:
    """The real task, then a checkpoint restore that removes its last 6 requests and leaves an
    aggregate: a warm read (tokwatch had counted them) and a cold read give the same totals."""
    real = json.loads(CLINE_PROVIDER.read_bytes())
    starts = [i for i, m in enumerate(real) if m.get("say") == "api_req_started"]
    keep = starts[-6]
    path = task(tmp_path, real)
    p = AGENT.parser(path)
    before = parse(path, p)
    restored = restore_checkpoint(real, keep, 1767648000000)
    path.write_text(json.dumps(restored))
    after = parse(path, p)
    warm = totals(before, after)
    cold = totals(parse(path, AGENT.parser(path)))
    everything = totals(before)
    for f in ("input", "output", "cache_read", "cache_write", "cost_pico"):
        assert getattr(warm, f) == getattr(cold, f) == getattr(everything, f), f
    # warm: the vanished requests stay counted and the aggregate adds nothing; cold: it holds them
    assert not [t for t in after if t.kind == "aggregate"]
    assert len([t for t in parse(path, AGENT.parser(path)) if t.kind == "aggregate"]) == 1
    # a second restore that removes the first aggregate too: Cline's new aggregate includes it
    again = restore_checkpoint(restored, starts[-8], 1767649000000)
    path.write_text(json.dumps(again))
    warm2 = totals(before, after, parse(path, p))
    cold2 = totals(parse(path, AGENT.parser(path)))
    assert (warm2.input, warm2.output, warm2.cache_read) == (cold2.input, cold2.output, cold2.cache_read)
    assert warm2.input == everything.input


def test_requests_deleted_without_an_aggregate_stay_counted(tmp_path: Path) -> None:
    path = task(
        tmp_path, [req(1767000001000, tokensIn=10, tokensOut=1), req(1767000002000, tokensIn=20, tokensOut=2)]
    )
    p = AGENT.parser(path)
    store = Store(make_pricer())
    store.apply(parse(path, p))
    path.write_text(json.dumps([req(1767000001000, tokensIn=10, tokensOut=1)]))
    store.apply(parse(path, p))
    assert store.totals().input == 30  # billed, whatever the file says now


# ---------------------------------------------------------------------------- SDK sessions
def sdk_session(root: Path, sid: str, messages_file: Path, manifest: Path | None = None) -> Path:
    folder = root / ".cline" / "data" / "sessions" / sid
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sid}.messages.json"
    shutil.copy(messages_file, path)
    if manifest is not None:
        shutil.copy(manifest, folder / f"{sid}.json")
    return path


def test_sdk_per_call_metrics_input_includes_cache(tmp_path: Path) -> None:
    path = sdk_session(tmp_path, "1784094124598_rruoq", SDK / "session.messages.json", SDK / "session.json")
    assert detect(path) is AGENT
    turns = parse(path)
    raw = [m["metrics"] for m in json.loads(path.read_bytes())["messages"] if m.get("metrics")]
    assert len(turns) == len(raw) == 16
    t = next(x for x in turns if x.turn_id == "msg_WLUQWTo-")
    # inputTokens 35912 holds the 34332 cache reads: the uncached input is 1580
    assert (t.input, t.cache_read, t.cache_write, t.output) == (1580, 34332, 0, 164)
    assert t.model == "anthropic/claude-opus-4.8-fast" and t.cost_usd == pytest.approx(0.06539085)
    assert t.project == "/Users/example/dev/cline"  # the manifest's cwd
    assert sum(x.input + x.cache_read + x.cache_write for x in turns) == sum(m["inputTokens"] for m in raw)
    assert all(x.dedup_key == x.turn_id for x in turns)


def test_sdk_fork_copies_are_counted_once(tmp_path: Path) -> None:
    """The fixture session is a fork: its messages (ids and metrics) are copies of the source's."""
    source = sdk_session(tmp_path, "1784094053271_p8pzo", SDK / "session.messages.json")
    fork = sdk_session(tmp_path, "1784094124598_rruoq", SDK / "session.messages.json", SDK / "session.json")
    store = Store(make_pricer())
    store.apply(parse(source))
    store.apply(parse(fork))
    assert store.totals().turns == 16
    assert store.sessions[("cline", "1784094053271_p8pzo")].totals.turns == 16


def test_sdk_compaction_counted_once_warm_or_cold(tmp_path: Path) -> None:
    """Cline's own fixtures: the session, then the same session after a basic compaction (every
    `metrics` stripped, their sum in `usageBefore`)."""
    path = sdk_session(tmp_path, "1784094124598_rruoq", SDK / "session.messages.json", SDK / "session.json")
    p = AGENT.parser(path)
    before = parse(path, p)
    shutil.copy(SDK / "basic.compaction.json", path)
    after = parse(path, p)
    assert after == []  # warm: the stripped requests stay counted; the aggregate adds nothing
    cold = parse(path, AGENT.parser(path))
    assert len(cold) == 1 and cold[0].kind == "aggregate"
    w, c = totals(before, after), totals(cold)
    assert (w.input, w.cache_read, w.output) == (c.input, c.cache_read, c.output) == (95819, 534435, 4395)
    assert w.cost_pico == c.cost_pico


def test_sdk_subagent_file_bills_the_session_as_sidechain(tmp_path: Path) -> None:
    sid = "fixture-success-01"
    folder = tmp_path / ".cline" / "data" / "sessions" / sid
    folder.mkdir(parents=True)
    shutil.copy(SDK / "success.messages.json", folder / "agent_7__task_2.messages.json")
    (t,) = parse(folder / "agent_7__task_2.messages.json")
    assert (t.session_id, t.sidechain, t.input, t.cache_read, t.cache_write) == (sid, True, 17, 3, 1)


def test_legacy_next_handover_not_double_counted(tmp_path: Path) -> None:
    """A classic task resumed by Cline's Next bundle: the SDK session is seeded with the classic
    history (its last assistant message carrying the classic totals) and Cline writes the new SDK
    turns back into the classic ui_messages.json, after `baseUiMessageCount`."""
    classic = [req(1767000001000, tokensIn=100, tokensOut=10, cacheReads=1000, cost=0.01)]
    path = task(tmp_path, classic, "1767000000000")
    # the write-back: one SDK turn translated to an api_req_started (Cline's own normalized numbers)
    written = [*classic, req(1767000009000, tokensIn=5, tokensOut=50, cacheReads=2000, cost=0.02)]
    path.write_text(json.dumps(written))
    (path.parent / "sdk_writeback.json").write_text(
        json.dumps(
            {
                "version": 1,
                "baseApiMessageCount": 2,
                "baseUiMessageCount": 1,
                "writtenApiMessageCount": 4,
                "writtenUiMessageCount": 2,
            }
        )
    )
    sdk = {
        "version": 1,
        "sessionId": "1767000000000",
        "messages": [
            {"id": "u1", "role": "user", "content": "fix it"},
            {"id": "a1", "role": "assistant", "content": "done",
             "metrics": {"inputTokens": 1100, "outputTokens": 10, "cacheReadTokens": 1000, "cacheWriteTokens": 0,
                         "cost": 0.01}, "modelInfo": {"id": "claude-sonnet-4-5", "provider": "unknown"}},
            {"id": "w", "role": "user", "content": "Warning: this is a legacy conversation, which means tool names "
             "may have changed. Please use the most up-to-date tools you are aware of."},
            {"id": "u2", "role": "user", "content": "and the docs"},
            {"id": "a2", "role": "assistant", "ts": 1767000009000, "content": "ok",
             "metrics": {"inputTokens": 2005, "outputTokens": 50, "cacheReadTokens": 2000, "cacheWriteTokens": 0,
                         "cost": 0.02}, "modelInfo": {"id": "claude-sonnet-4-5", "provider": "anthropic"}},
        ],
    }  # fmt: skip
    sdk_path = tmp_path / ".cline" / "data" / "sessions" / "1767000000000" / "1767000000000.messages.json"
    sdk_path.parent.mkdir(parents=True)
    sdk_path.write_text(json.dumps(sdk))
    both = totals(parse(path), parse(sdk_path))
    assert (both.input, both.output, both.cache_read, both.turns) == (105, 60, 3000, 2)


# ---------------------------------------------------------------------------- discovery, live, views
def test_roots_cover_every_vscode_fork_and_the_cli(tmp_path: Path) -> None:
    import sys

    if sys.platform != "linux":
        pytest.skip("Linux layout")
    for fork in ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf", "SomeNewFork"):
        (tmp_path / ".config" / fork / "User" / "globalStorage").mkdir(parents=True)
    (tmp_path / ".vscode-server" / "data" / "User").mkdir(parents=True)
    roots = AGENT.roots({}, tmp_path)
    for fork in ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf", "SomeNewFork"):
        assert (
            tmp_path / ".config" / fork / "User" / "globalStorage" / "saoudrizwan.claude-dev" / "tasks"
            in roots
        )
    assert (
        tmp_path / ".vscode-server" / "data" / "User" / "globalStorage" / "saoudrizwan.claude-dev" / "tasks"
        in roots
    )
    assert (
        tmp_path / ".cline" / "data" / "tasks" in roots and tmp_path / ".cline" / "data" / "sessions" in roots
    )
    env = {"CLINE_DIR": str(tmp_path / "c"), "CLINE_SESSION_DATA_DIR": str(tmp_path / "s")}
    roots = AGENT.roots(env, tmp_path)
    assert tmp_path / "c" / "data" / "tasks" in roots and tmp_path / "s" in roots
    assert AGENT.owns_path(tmp_path / "s" / "x" / "x.messages.json")


def test_owns_path_is_strict() -> None:
    base = Path("/h/.config/Code/User/globalStorage")
    assert AGENT.owns_path(base / "saoudrizwan.claude-dev/tasks/1/ui_messages.json")
    assert not AGENT.owns_path(base / "saoudrizwan.claude-dev/tasks/1/api_conversation_history.json")
    assert not AGENT.owns_path(base / "saoudrizwan.claude-dev/state/taskHistory.json")
    assert not AGENT.owns_path(base / "rooveterinaryinc.roo-cline/tasks/1/ui_messages.json")
    assert not AGENT.owns_path(Path("/h/.cline/data/sessions/s/s.json"))  # the manifest
    assert AGENT.owns_path(Path("/h/.cline/data/sessions/s/s.messages.json"))
    assert detect(CLINE_PROVIDER) is AGENT
    for other in ("roo", "kilo-code", "gemini", "amp", "opencode"):
        assert not get_agent(other).owns_path(CLINE_PROVIDER), other


def test_live_rewrite_of_ui_messages(tmp_path: Path) -> None:
    path = task(tmp_path, [req(1767000001000, tokensIn=10, tokensOut=1, cacheReads=100)])
    engine = Engine(Store(make_pricer()), [tmp_path], debounce_ms=20, step_ms=10)
    engine.backfill()
    s = engine.store.sessions[("cline", "1767000000000")]
    with following(engine) as live:
        # the request streams: the same message is rewritten with growing numbers, then a new one
        msgs = [req(1767000001000, tokensIn=10, tokensOut=1, cacheReads=100), req(1767000002000)]
        replace_atomically(path, json.dumps(msgs).encode())
        msgs[1] = req(1767000002000, tokensIn=7, tokensOut=42, cacheReads=110, cost=0.001)
        replace_atomically(path, json.dumps(msgs).encode())
        live.wait_for(lambda t: t.turn_id == "1767000002000" and t.output == 42)
        s = engine.store.sessions[("cline", "1767000000000")]  # (published anew with each batch)
        assert (s.totals.turns, s.totals.output, s.context_used) == (2, 43, 117)


def test_export_shows_the_classic_and_sdk_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tokwatch.cli import main

    shutil.copytree(FIX / "saoudrizwan.claude-dev", tmp_path / "saoudrizwan.claude-dev")
    sdk_session(tmp_path, "1784094124598_rruoq", SDK / "session.messages.json", SDK / "session.json")
    assert main(["export", "--no-cache", "--format", "json", str(tmp_path)]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["agent"] == "cline"]
    assert {r["session_id"] for r in rows} == {"1767644900000", "1760534070000", "1784094124598_rruoq"}
    assert sum(r["turns"] for r in rows if r["session_id"] == "1767644900000") == 11


def test_usage_messages_fast_path_equals_a_full_parse() -> None:
    """Cline writes `JSON.stringify(uiMessages)` (compact): only the usage messages are parsed.
    The excerpt fixtures are pretty-printed: those are parsed whole, with the same result."""
    from tokwatch.agents._vscode import usage_messages

    says = {"api_req_started", "deleted_api_reqs", "subagent_usage", "api_req_finished"}
    for path in (CLINE_PROVIDER, DEEPSEEK):
        messages = json.loads(path.read_bytes())
        assert usage_messages(path.read_bytes()) is None  # pretty-printed: the whole-file path
        compact = json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()
        fast = usage_messages(compact)
        assert fast == [m for m in messages if m.get("type") == "say" and m.get("say") in says]
        p = AGENT.parser(CLINE_PROVIDER)
        assert p.parse_document(compact) == AGENT.parser(CLINE_PROVIDER).parse_document(path.read_bytes())
    # a nested object with its own "ts", or another key order: the cut fails, the whole file is read
    odd = b'[{"ts":1,"type":"say","say":"text","x":[{"ts":2},{"ts":3}]},{"type":"say","ts":4,"say":"api_req_started","text":"{}"}]'
    assert usage_messages(odd) is None


def test_sdk_agentic_compaction_keeps_what_was_counted(tmp_path: Path) -> None:
    """An agentic compaction replaces the conversation by a summary and keeps no usage of what it
    removed: counted calls stay counted (warm); a cold read only sees the calls left (documented)."""
    path = sdk_session(tmp_path, "1784094124598_rruoq", SDK / "session.messages.json", SDK / "session.json")
    p = AGENT.parser(path)
    before = parse(path, p)
    shutil.copy(SDK / "agentic.compaction.json", path)
    after = parse(path, p)
    assert [t.turn_id for t in after] == ["msg_Fy5COtRH"]  # the one call left, the same numbers
    assert totals(before, after).input == totals(before).input
    assert [t.turn_id for t in parse(path, AGENT.parser(path))] == ["msg_Fy5COtRH"]


def test_roots_on_macos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "platform", "darwin")
    support = tmp_path / "Library" / "Application Support"
    for fork in ("Code", "Cursor", "Windsurf"):
        (support / fork / "User" / "globalStorage").mkdir(parents=True)
    roots = AGENT.roots({}, tmp_path)
    for fork in ("Code", "Cursor", "Windsurf"):
        assert support / fork / "User" / "globalStorage" / "saoudrizwan.claude-dev" / "tasks" in roots
    assert not any(".config" in r.parts for r in roots)
