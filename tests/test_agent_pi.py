"""pi plug-in: real pi sessions (pi-mono's fixtures, a v3 lab capture), forks counted once across
files, provider-specific usage conventions, clamping, and a live append."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import Following, append_bytes, feed_all, make_engine, real_lines, write_lines

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine
from tokwatch.agents.pi import PiParser
from tokwatch.ingest.discover import detect

FIX = Path(__file__).resolve().parent / "fixtures" / "agents" / "pi" / "sessions"
BEFORE_COMPACTION = (
    FIX
    / "--Users-badlogic-workspaces-pi-mono--"
    / "2025-12-09T00-53-29-825Z_ffae836b-9420-4060-ac13-7745215f90ff.jsonl"
)
LARGE_HEAD = (
    FIX
    / "--Users-badlogic-workspaces-pi-mono--"
    / "2025-11-20T23-33-50-805Z_d703a1a9-1b7b-4fb1-b512-c9738b1fe617.jsonl"
)
V3 = (
    FIX
    / "--tmp-as-agent-fixture-project--"
    / "2026-05-12T01-02-27-657Z_019e19b4-eb48-746a-aa6b-8dfcfa37954b.jsonl"
)
FORKS = FIX / "--home-u-proj--"
FORK_SOURCE = FORKS / "2026-05-01T10-00-00-000Z_019e2a00-0000-7000-8000-00000000a001.jsonl"
FORK_COPY = FORKS / "2026-05-01T10-05-00-000Z_019e2a05-0000-7000-8000-00000000b002.jsonl"
AGENT = get_agent("pi")


def assistants(path: Path) -> list[dict]:
    """The assistant messages of a real file, read independently of the plug-in."""
    out = []
    for raw in real_lines(path):
        d = json.loads(raw)
        if d.get("type") == "message" and d["message"].get("role") == "assistant":
            out.append(d["message"])
    return out


def header(sid: str, cwd: str = "/home/u/proj", **extra: object) -> bytes:
    return json.dumps({"type": "session", "version": 3, "id": sid, "timestamp": "2026-05-01T10:00:00.000Z",
                       "cwd": cwd, **extra}).encode()  # fmt: skip


def message(
    n: int,
    usage: dict,
    *,
    api: str = "anthropic-messages",
    provider: str = "anthropic",
    model: str = "claude-sonnet-4-5",
    started: int = 1777629601005,
    stop: str = "stop",
) -> bytes:
    return json.dumps(
        {
            "type": "message",
            "id": f"{n:08x}",
            "parentId": f"{n - 1:08x}",
            "timestamp": "2026-05-01T10:00:04.000Z",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok"}],
                "api": api,
                "provider": provider,
                "model": model,
                "usage": {**usage, "cost": {"total": 0}},
                "stopReason": stop,
                "timestamp": started + n,
            },
        }
    ).encode()


def one(line: bytes) -> object:
    (t,) = PiParser(FORK_SOURCE).feed(line)
    return t


# ------------------------------------------------------------------------- real sessions
def test_real_v1_branched_session_counts_every_billed_message() -> None:
    msgs = assistants(BEFORE_COMPACTION)
    billed = [m for m in msgs if any(m["usage"][k] for k in ("input", "output", "cacheRead", "cacheWrite"))]
    assert len(msgs) == 82 and len(billed) == 80  # two aborted requests logged all-zero usage
    engine = make_engine(BEFORE_COMPACTION)
    engine.backfill()
    s = engine.store.sessions[("pi", "ffae836b-9420-4060-ac13-7745215f90ff")]  # the header's id
    assert s.totals.turns == 80
    assert s.totals.input == sum(m["usage"]["input"] for m in billed)
    assert s.totals.cache_read == sum(m["usage"]["cacheRead"] for m in billed)
    assert s.totals.cache_write == sum(m["usage"]["cacheWrite"] for m in billed)
    assert s.totals.output == sum(m["usage"]["output"] for m in billed)
    assert s.project == "/Users/badlogic/workspaces/pi-mono"
    assert s.models == ["claude-opus-4-5"] and s.totals.cost_usd is not None
    last = billed[-1]["usage"]
    assert s.context_used == last["input"] + last["cacheRead"] + last["cacheWrite"]
    assert engine.skips.lines == 0


def test_real_usage_without_total_and_an_aborted_openai_request() -> None:
    turns = feed_all(PiParser(LARGE_HEAD), real_lines(LARGE_HEAD))
    msgs = assistants(LARGE_HEAD)
    assert "totalTokens" not in msgs[1]["usage"]
    assert msgs[0]["api"] == "openai-responses" and msgs[0]["stopReason"] == "aborted"
    assert len(turns) == len(msgs) - 1 == 14
    assert {t.model for t in turns} == {"claude-sonnet-4-5"}
    assert (turns[0].input, turns[0].cache_write, turns[0].output) == (3, 1684, 191)
    assert turns[0].timestamp == pytest.approx(1763681630.793)  # message.timestamp: the request start


def test_real_v3_file_identical_numbers_are_two_requests() -> None:
    turns = feed_all(PiParser(V3), real_lines(V3))
    # the lab capture answers twice with the same usage: two requests, told apart by their start time
    assert [(t.input, t.output) for t in turns] == [(12, 7), (12, 7)]
    assert len({t.turn_id for t in turns}) == 2
    assert {t.session_id for t in turns} == {"019e19b4-eb48-746a-aa6b-8dfcfa37954b"}
    assert {t.project for t in turns} == {"/tmp/as-agent-fixture/project"}


# ------------------------------------------------------------------------- forks
def test_fork_copy_is_counted_once_across_files(tmp_path: Path) -> None:
    shutil.copytree(FORKS, tmp_path / "sessions" / FORKS.name)
    engine = make_engine(tmp_path)
    engine.backfill()
    src = engine.store.sessions[("pi", "019e2a00-0000-7000-8000-00000000a001")]
    copy = engine.store.sessions[("pi", "019e2a05-0000-7000-8000-00000000b002")]
    # 2 requests in the source; the copy repeats the first and adds one of its own
    assert src.totals.turns + copy.totals.turns == 3
    assert src.totals.output + copy.totals.output == 12 + 30 + 8
    assert src.totals.cache_write + copy.totals.cache_write == 4210 + 20 + 25


def test_session_imported_from_another_project_copies_everything_once(tmp_path: Path) -> None:
    """`pi --session <file>` (SessionManager.forkFrom) copies ALL entries into a new file."""
    lines = real_lines(FORK_SOURCE)
    write_lines(tmp_path / "--a--" / "a.jsonl", lines)
    imported = [header("imported-1", "/other/project"), *lines[1:]]
    write_lines(tmp_path / "--b--" / "b.jsonl", imported)
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.store.totals().turns == 2


def test_v1_file_migrated_in_place_with_new_ids_is_not_counted_twice(tmp_path: Path) -> None:
    """pi's v1->v2 migration rewrites the file and assigns NEW random entry ids."""
    log = tmp_path / "sessions" / "--p--" / "2026-05-01T10-00-00-000Z_v1.jsonl"
    v1 = [
        json.dumps(
            {"type": "session", "id": "v1-session", "cwd": "/p", "timestamp": "2026-05-01T10:00:00Z"}
        ).encode()
    ]
    for n in range(3):
        d = json.loads(message(n, {"input": 5, "output": 10 + n, "cacheRead": 100, "cacheWrite": 0}))
        del d["id"], d["parentId"]
        v1.append(json.dumps(d).encode())
    write_lines(log, v1)
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.store.totals().turns == 3
    migrated = [json.dumps({**json.loads(v1[0]), "version": 2}).encode()]
    for n, raw in enumerate(v1[1:]):
        migrated.append(
            json.dumps({**json.loads(raw), "id": f"{0xABC000 + n:08x}", "parentId": None}).encode()
        )
    write_lines(log, migrated)  # rewritten in place (the tailer sees a replaced file)
    engine.refresh([log])
    assert engine.store.totals().turns == 3
    assert engine.store.totals().output == 10 + 11 + 12


# ------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("api", ["google-generative-ai", "google-vertex"])
def test_google_prompt_count_with_cache_inside_is_split(api: str) -> None:
    # older pi builds: input = promptTokenCount (cache inside), total = prompt + candidates + thoughts
    old = one(message(1, {"input": 10_000, "output": 300, "cacheRead": 8_000, "cacheWrite": 0,
                          "totalTokens": 10_300}, api=api, provider="google", model="gemini-2.5-pro"))  # fmt: skip
    assert (old.input, old.cache_read, old.output) == (2_000, 8_000, 300)
    # files from before `totalTokens` existed were all written by the older builds
    no_total = one(message(2, {"input": 10_000, "output": 300, "cacheRead": 8_000, "cacheWrite": 0},
                           api=api, provider="google", model="gemini-2.5-pro"))  # fmt: skip
    assert no_total.input == 2_000
    # newer builds subtract the cache themselves: the total then covers all three
    new = one(message(3, {"input": 2_000, "output": 300, "cacheRead": 8_000, "cacheWrite": 0,
                          "totalTokens": 10_300}, api=api, provider="google", model="gemini-2.5-pro"))  # fmt: skip
    assert (new.input, new.cache_read) == (2_000, 8_000)


def test_other_apis_never_have_the_cache_subtracted() -> None:
    for api in ("anthropic-messages", "openai-responses", "bedrock-converse-stream", "google-gemini-cli"):
        t = one(
            message(
                1, {"input": 10, "output": 5, "cacheRead": 8_000, "cacheWrite": 0, "totalTokens": 15}, api=api
            )
        )
        assert t.input == 10, api


def test_negative_input_is_clamped_never_rejected(tmp_path: Path) -> None:
    """Older openai-completions builds stored `prompt_tokens - cached_tokens`, negative when a
    provider reports more cached than prompt tokens: the request is kept, its input clamped to 0."""
    line = message(1, {"input": -64, "output": 40, "cacheRead": 1_088, "cacheWrite": 0, "totalTokens": 1_064},
                   api="openai-completions", provider="openrouter", model="deepseek/deepseek-chat")  # fmt: skip
    t = one(line)
    assert (t.input, t.cache_read, t.output) == (0, 1_088, 40)
    assert "|-64|" in t.turn_id  # the raw value stays in the copy key
    write_lines(tmp_path / "--p--" / "s.jsonl", [header("neg"), line])
    engine = make_engine(tmp_path)
    engine.backfill()
    assert engine.skips.lines == 0 and engine.store.totals().turns == 1


def test_openai_completions_reasoning_is_taken_when_logged() -> None:
    # builds that store the reasoning count (output = completion_tokens, reasoning inside)
    t = one(message(1, {"input": 100, "output": 900, "cacheRead": 0, "cacheWrite": 0, "reasoningTokens": 700},
                    api="openai-completions", provider="openai", model="o4-mini"))  # fmt: skip
    assert (t.output, t.reasoning) == (900, 700)
    # older builds logged completion + reasoning with no reasoning count: counted as logged (docs)
    t = one(message(2, {"input": 100, "output": 1_600, "cacheRead": 0, "cacheWrite": 0},
                    api="openai-completions", provider="openai", model="o4-mini"))  # fmt: skip
    assert (t.output, t.reasoning) == (1_600, 0)


def test_errored_request_with_usage_is_billed_zero_usage_is_not() -> None:
    p = PiParser(FORK_SOURCE)
    assert p.feed(message(1, {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}, stop="error")) == []
    (t,) = p.feed(message(2, {"input": 900, "output": 3, "cacheRead": 0, "cacheWrite": 0}, stop="aborted"))
    assert t.input == 900


def test_model_from_model_change_when_a_message_names_none() -> None:
    p = PiParser(FORK_SOURCE)
    p.feed(
        json.dumps({"type": "model_change", "provider": "anthropic", "modelId": "claude-opus-4-5"}).encode()
    )
    d = json.loads(message(1, {"input": 1, "output": 1}))
    del d["message"]["model"]
    (t,) = p.feed(json.dumps(d).encode())
    assert t.model == "claude-opus-4-5"


def test_malformed_lines_are_badlines() -> None:
    p = PiParser(FORK_SOURCE)
    for bad in (b"not json", b"[1]", b'{"type":"message","message":"x"}',
                message(1, {"input": "many", "output": 1})):  # fmt: skip
        with pytest.raises(BadLine):
            p.feed(bad)


# ------------------------------------------------------------------------- discovery
def test_roots_ownership_and_sniff(tmp_path: Path) -> None:
    assert AGENT.roots({}, tmp_path) == [tmp_path / ".pi" / "agent" / "sessions"]
    assert AGENT.roots({"PI_CODING_AGENT_DIR": "/x/agent"}, tmp_path) == [Path("/x/agent/sessions")]
    assert AGENT.owns_path(BEFORE_COMPACTION) and AGENT.owns_path(FORK_COPY)
    assert not AGENT.owns_path(tmp_path / "sessions" / "proj" / "x.jsonl")
    for f in (BEFORE_COMPACTION, LARGE_HEAD, V3):
        assert detect(f) is AGENT
    flat = tmp_path / "flat.jsonl"  # `--session-dir` puts sessions in any folder
    shutil.copy(V3, flat)
    assert detect(flat) is AGENT
    head = V3.read_bytes()[:4096]
    for other in ("claude", "codex", "gemini", "qwen", "copilot", "openclaw", "kimi", "kimi-code"):
        a = get_agent(other)
        assert not a.owns_path(V3) and not a.sniff(head), other


# ------------------------------------------------------------------------- live
def test_live_append_is_followed(tmp_path: Path) -> None:
    log = tmp_path / "sessions" / "--home-u-proj--" / FORK_SOURCE.name
    write_lines(log, real_lines(FORK_SOURCE))
    engine = make_engine(tmp_path)
    engine.backfill()
    s = engine.store.sessions[("pi", "019e2a00-0000-7000-8000-00000000a001")]
    assert s.totals.turns == 2
    with Following(engine) as f:
        usage = {"input": 4, "output": 77, "cacheRead": 4230, "cacheWrite": 0}
        append_bytes(log, message(7, usage, started=1777629700000) + b"\n")
        t = f.wait_for(lambda t: t.output == 77)
        assert t.agent == "pi" and t.session_id == s.session_id
    s = engine.store.sessions[s.key]  # (sessions are published anew with each batch)
    assert s.totals.turns == 3 and s.context_used == 4 + 4230


def test_fuzz_usage_never_crashes_and_never_goes_negative() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(["input", "output", "cacheRead", "cacheWrite", "totalTokens", "reasoningTokens",
                            "prompt_tokens", "cached_tokens"])  # fmt: skip
    values = st.none() | st.integers(-(10**13), 10**13) | st.floats() | st.text(max_size=3) | st.booleans()
    apis = st.sampled_from(["google-generative-ai", "anthropic-messages", "openai-completions", None])

    @settings(max_examples=300, deadline=None)
    @given(usage=st.dictionaries(keys, values, max_size=7), api=apis)
    def check(usage: dict, api: str | None) -> None:
        line = json.dumps({"type": "message", "message": {"role": "assistant", "api": api, "usage": usage,
                                                          "timestamp": 1777629601005}}).encode()  # fmt: skip
        try:
            turns = PiParser(FORK_SOURCE).feed(line)
        except BadLine:
            return
        for t in turns:
            assert min(t.input, t.cache_read, t.cache_write, t.output, t.reasoning) >= 0
            assert t.reasoning <= t.output

    check()
