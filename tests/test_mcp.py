"""`tokwatch mcp`: the real console script, driven by the MCP SDK's own stdio client, on the real
fixtures; every number is checked against `tokwatch export` on the same logs.

Five server processes in all (the SDK import makes each start cost a second or two): the
read-only tools and their errors, an unknown caller, a turn appended live, raw malformed lines,
SIGTERM. Who is calling and which session is chosen are tested in-process on `caller` and
`UsageSource`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import anyio
import mcp_types as mt
import pytest
from helpers import CLAUDE_MAIN, CLAUDE_SESSION, REAL, append_bytes, claude_line
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tokwatch.config import Budget, BudgetsConfig, Config
from tokwatch.output.export import rows as export_rows
from tokwatch.output.mcp.caller import agent_of_client, identify, root_dir
from tokwatch.output.mcp.source import Unanswerable, UsageSource

TOKWATCH = Path(sys.executable).parent / "tokwatch"
CLAUDE_PROJECT = "/home/USER/projects/spotter-worktrees/spotter-dov"
CODEX_RTCHESS = "019aad50-a7e6-7422-b7a8-0b384290624f"
NUMBERS = {  # answer key -> export column
    "turns": "turns",
    "input": "input_tokens",
    "output": "output_tokens",
    "reasoning": "reasoning_tokens",
    "cacheRead": "cache_read_tokens",
    "cacheWrite": "cache_write_tokens",
    "totalTokens": "total_tokens",
}


# ---------------------------------------------------------------- harness
@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A private copy of the real fixtures (the live test appends to it)."""
    root = tmp_path / "logs"
    shutil.copytree(REAL, root, ignore=shutil.ignore_patterns("*.md"))
    return root


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No agent's variables leak in from the shell running the tests; own ledger, no config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "TOKWATCH_DATA_DIR": str(tmp_path / "data"),
        "TOKWATCH_CACHE_DIR": str(tmp_path / "cache"),
        "TOKWATCH_CONFIG": str(tmp_path / "no-config.toml"),
    }
    env.update(extra)
    return env


def export(logs: Path, tmp_path: Path) -> list[dict[str, Any]]:
    assert TOKWATCH.exists(), f"the console script is missing next to {sys.executable}"
    r = subprocess.run(
        [str(TOKWATCH), "export", str(logs), "--format", "json", "--no-cache"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


def sums(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, dict[str, Any]]:
    """Export rows summed per key: the token columns, and the cost (None when any row's is)."""
    out: dict[Any, dict[str, Any]] = defaultdict(lambda: dict.fromkeys([*NUMBERS, "cost"], 0))
    for r in rows:
        s = out[key(r)]
        for k, col in NUMBERS.items():
            s[k] += r[col]
        s["cost"] = None if s["cost"] is None or r["cost_usd"] is None else s["cost"] + r["cost_usd"]
    return dict(out)


def assert_numbers(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k in NUMBERS:
        assert got[k] == want[k], (k, got, want)
    if want["cost"] is None:
        assert got["cost"] is None
    else:
        assert got["cost"] == pytest.approx(want["cost"], abs=1e-8)


@asynccontextmanager
async def server(
    logs: Path,
    tmp_path: Path,
    *,
    client: str = "claude-code",
    roots: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[ClientSession]:
    """The installed `tokwatch mcp` on `logs`, started in a folder with no sessions (so only what
    the client says can point at one), with an SDK client that calls itself `client`."""
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    params = StdioServerParameters(
        command=str(TOKWATCH),
        args=["mcp", str(logs), "--tz", "UTC"],
        env=clean_env(tmp_path, **(env or {})),
        cwd=str(tmp_path / "elsewhere"),
    )

    async def list_roots(ctx: Any) -> mt.ListRootsResult:
        return mt.ListRootsResult(roots=[mt.Root(uri=u) for u in roots or []])

    with open(tmp_path / "server-stderr.txt", "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(
                read,
                write,
                client_info=mt.Implementation(name=client, version="1.0"),
                list_roots_callback=list_roots if roots is not None else None,
            ) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    res = await session.call_tool(tool, args)
    text = res.content[0].text if res.content else ""
    assert not res.is_error, text
    doc: dict[str, Any] = json.loads(text)
    assert res.structured_content == doc
    return doc


async def tool_error(session: ClientSession, tool: str, **args: Any) -> str:
    res = await session.call_tool(tool, args)
    assert res.is_error, res
    text: str = res.content[0].text
    return text


# ---------------------------------------------------------------- the read-only tools
async def test_tools_answer_with_the_exports_numbers(logs: Path, tmp_path: Path) -> None:
    rows = export(logs, tmp_path)
    per_session = sums(rows, lambda r: (r["agent"], r["session_id"]))
    roots = [f"file://{CLAUDE_PROJECT}"]
    with anyio.fail_after(90):
        async with server(logs, tmp_path, roots=roots) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert sorted(tools) == ["list_sessions", "session_status", "usage_report"]
            for t in tools.values():
                assert t.description and len(t.description) < 600
                assert t.input_schema["type"] == "object"
                assert t.input_schema["additionalProperties"] is False
                assert t.annotations is not None and t.annotations.read_only_hint
            assert "session_id" in tools["session_status"].input_schema["properties"]
            assert tools["usage_report"].input_schema["properties"]["group_by"]["enum"] == [
                "day", "week", "month", "project", "model", "agent", "session",
            ]  # fmt: skip

            # session_status: the calling session, from the client's name and its roots
            st = await call(s, "session_status")
            assert st["session"]["id"] == CLAUDE_SESSION and st["session"]["agent"] == "claude"
            assert st["selection"]["method"] == "agent_and_project"
            assert "claude-code" in st["selection"]["reason"] and "roots" in st["selection"]["reason"]
            assert CLAUDE_PROJECT in st["selection"]["reason"]
            usage = st["usage"]
            assert list(usage) == [
                "session",
                "lastTurn",
                "context",
                "limits",
                "compaction",
            ]  # no budgets configured
            assert_numbers(usage["session"], per_session[("claude", CLAUDE_SESSION)])
            main = next(
                r for r in rows if r["session_id"] == CLAUDE_SESSION and r["model"] == "claude-opus-4-6"
            )
            ctx = usage["context"]
            assert (ctx["used"], ctx["window"]) == (main["context_tokens"], main["context_window"])
            assert ctx["remaining"] == ctx["window"] - ctx["used"]
            assert ctx["percent"] == round(100 * ctx["used"] / ctx["window"], 1)
            last = usage["lastTurn"]
            assert last["model"] == "claude-opus-4-6" and last["at"] == st["session"]["lastSeen"]
            assert (
                last["totalTokens"] == last["input"] + last["output"] + last["cacheRead"] + last["cacheWrite"]
            )

            # session_status by id (a prefix), any agent
            st = await call(s, "session_status", session_id=CODEX_RTCHESS[:13])
            assert st["session"]["id"] == CODEX_RTCHESS and st["selection"]["method"] == "session_id"
            assert_numbers(st["usage"]["session"], per_session[("codex", CODEX_RTCHESS)])

            # list_sessions: every session, newest first, each with the export's numbers
            ls = await call(s, "list_sessions", limit=100)
            assert ls["matching"] == ls["shown"] == len(per_session)
            seen = [x["lastSeen"] or "" for x in ls["sessions"]]
            assert seen == sorted(seen, reverse=True)
            for x in ls["sessions"]:
                assert_numbers(x, per_session[(x["agent"], x["id"])])
                assert x["active"] is False  # fixtures from the past
            top = await call(s, "list_sessions", limit=2, agent="codex")
            assert top["shown"] == 2 and {x["agent"] for x in top["sessions"]} == {"codex"}
            assert top["matching"] == len([k for k in per_session if k[0] == "codex"])

            # usage_report: rows by model / agent / project / session add up to the export
            everything = sums(rows, lambda r: "all")["all"]
            for group, key in (
                ("model", lambda r: r["model"]),
                ("agent", lambda r: r["agent"]),
                ("project", lambda r: r["project"]),
                ("session", lambda r: r["session_id"]),
            ):
                want = sums(rows, key)
                rep = await call(s, "usage_report", group_by=group, top_n=100)
                assert rep["rowCount"] == len(want) == len(rep["rows"]) and "omitted" not in rep
                assert_numbers(rep["totals"], everything)
                for row in rep["rows"]:
                    assert_numbers(row, want[row[group]])
            # cut to the top 2: what is left out is counted, and the totals still cover everything
            rep = await call(s, "usage_report", group_by="model", top_n=2)
            assert len(rep["rows"]) == 2 and rep["omitted"]["rows"] == rep["rowCount"] - 2
            costs = [r["cost"] for r in rep["rows"]]
            assert costs == sorted(costs, reverse=True)
            for k in NUMBERS:
                assert sum(r[k] for r in rep["rows"]) + rep["omitted"][k] == everything[k]
            # days: a range, the latest ones kept
            rep = await call(
                s, "usage_report", group_by="day", since="2025-01-01", until="2026-12-31", top_n=3
            )
            days = [r["day"] for r in rep["rows"]]
            assert days == sorted(days) and len(days) == 3 and rep["range"]["timeZone"] == "UTC"
            assert_numbers(rep["totals"], sums([r for r in rows if r["first_seen"]], lambda r: "all")["all"])

            # bad arguments are tool errors that say what is wrong; the server keeps serving
            assert "unknown argument 'sessionId'" in await tool_error(s, "session_status", sessionId="x")
            assert "No session matches session_id 'nope'" in await tool_error(
                s, "session_status", session_id="nope"
            )
            msg = await tool_error(s, "usage_report", group_by="year", top_n=0, since="yesterday")
            assert "group_by" in msg and "top_n" in msg and "not a day" in msg
            assert "since (2026-02-01) is after until" in await tool_error(
                s, "usage_report", since="2026-02-01", until="2026-01-01"
            )
            assert "agent" in await tool_error(s, "list_sessions", agent="cursor")
            assert "limit" in await tool_error(s, "list_sessions", limit=1000)
            with pytest.raises(MCPError, match="Unknown tool"):
                await s.call_tool("session_stats", {})
            assert (await call(s, "list_sessions", limit=1))["shown"] == 1

            # the client's roots change: the next answers follow them
            roots[:] = ["file:///somewhere/else"]
            with (
                warnings.catch_warnings()
            ):  # roots are deprecated by the 2026-07-28 spec; clients still use them
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await s.send_roots_list_changed()
            for _ in range(100):  # the notification and the next call may be handled in any order
                res = await s.call_tool("session_status", {})
                if res.is_error:
                    break
                await anyio.sleep(0.02)
            assert "No claude session found for the project /somewhere/else (from the client's roots)" in (
                res.content[0].text
            )


async def test_an_unknown_caller_in_a_folder_without_sessions_gets_a_clear_error(
    logs: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(60):
        async with server(logs, tmp_path, client="some-editor") as s:
            msg = await tool_error(s, "session_status")
            assert "No session found for the project" in msg and "elsewhere" in msg
            assert "'some-editor' is not a known agent" in msg and "session_id" in msg


# ---------------------------------------------------------------- live
async def test_a_turn_appended_live_changes_the_next_answer(logs: Path, tmp_path: Path) -> None:
    transcript = logs / CLAUDE_MAIN.relative_to(REAL)
    with anyio.fail_after(90):
        async with server(logs, tmp_path, roots=[f"file://{CLAUDE_PROJECT}"]) as s:
            before = (await call(s, "session_status"))["usage"]
            line = claude_line(
                "msg_live_mcp_1",
                request_id="req_live_mcp_1",
                timestamp="2026-02-12T21:10:00.000Z",
                input_tokens=7,
                cache_read=120_000,
                cache_write=900,
                output=321,
                cwd=CLAUDE_PROJECT,
            )
            append_bytes(transcript, line + b"\n")
            deadline = time.monotonic() + 20
            while True:  # the follow loop picks it up within tens of milliseconds
                after = (await call(s, "session_status"))["usage"]
                if after["session"]["turns"] > before["session"]["turns"] or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.05)
    assert after["session"]["turns"] == before["session"]["turns"] + 1
    assert after["session"]["input"] == before["session"]["input"] + 7
    assert after["session"]["output"] == before["session"]["output"] + 321
    last = after["lastTurn"]
    assert (last["input"], last["cacheRead"], last["cacheWrite"], last["output"]) == (7, 120_000, 900, 321)
    assert last["at"] == "2026-02-12T21:10:00.000Z"
    assert after["context"]["used"] == 7 + 120_000 + 900
    # and the new answer is what an export of the grown logs says
    want = sums(export(logs, tmp_path), lambda r: r["session_id"])[CLAUDE_SESSION]
    assert_numbers(after["session"], want)


# ---------------------------------------------------------------- the protocol itself
def test_malformed_lines_get_protocol_errors_and_the_server_keeps_serving(logs: Path, tmp_path: Path) -> None:
    p = subprocess.Popen(
        [str(TOKWATCH), "mcp", str(logs)],
        env=clean_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert p.stdin is not None and p.stdout is not None

    def send(line: str) -> None:
        assert p.stdin is not None
        p.stdin.write(line.encode() + b"\n")
        p.stdin.flush()

    def reply() -> dict[str, Any]:
        assert p.stdout is not None
        doc: dict[str, Any] = json.loads(p.stdout.readline())
        return doc

    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
        assert reply()["result"]["serverInfo"]["name"] == "tokwatch"
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        send("{this is not json")
        r = reply()
        assert r["id"] is None and r["error"]["code"] == -32700
        send(json.dumps({"jsonrpc": "2.0", "id": 7, "params": {}}))  # no method
        r = reply()
        assert r["id"] == 7 and r["error"]["code"] == -32600
        send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"nom": "x"}}))
        assert reply()["error"]["code"] == -32602
        send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "no/such/method"}))
        assert reply()["error"]["code"] == -32601
        send(json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}))
        r = reply()
        assert r["id"] == 10 and len(r["result"]["tools"]) == 3
    finally:
        p.stdin.close()  # the client going away ends the server
        assert p.wait(timeout=30) == 0


def test_sigterm_exits_at_once_with_the_ledger_written(logs: Path, tmp_path: Path) -> None:
    """Clients stop servers with SIGTERM, often with stdin still open."""
    p = subprocess.Popen(
        [str(TOKWATCH), "mcp", str(logs)],
        env=clean_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert p.stdin is not None and p.stdout is not None
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    p.stdin.write(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}).encode() + b"\n"
    )
    p.stdin.flush()
    assert json.loads(p.stdout.readline())["id"] == 1
    call = {"name": "list_sessions", "arguments": {"limit": 1}}  # answered once history is read
    p.stdin.write(
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}).encode() + b"\n"
    )
    p.stdin.flush()
    assert json.loads(p.stdout.readline())["result"]["isError"] is False
    p.terminate()
    try:
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        p.stdin.close()
    ledger = tmp_path / "data" / "ledger.db"
    assert ledger.stat().st_size > 0 and not Path(f"{ledger}-wal").exists()  # closed: checkpointed


# ---------------------------------------------------------------- who is calling (in-process)
def test_the_agent_comes_from_the_client_name_then_from_its_variables() -> None:
    names = {
        "claude-code": "claude",
        "codex-mcp-client": "codex",
        "gemini-cli-mcp-client": "gemini",
        "opencode": "opencode",
        "github-copilot-developer": "copilot",
        "qwen-code": "qwen",
        "amp": "amp",
        "Visual Studio Code": None,
        "example-client": None,  # no substring matches: "example" is not "amp"
        "Kilo Code": "kilo-code",  # the longest name whose words appear wins
        "kilo": "kilo",
        "kimi-code-client": "kimi-code",
    }
    for client, agent in names.items():
        assert agent_of_client(client) == agent, client
    c = identify("", {"GEMINI_CLI": "1"}, process_cwd="/w/app")
    assert (c.agent, c.cwd, c.cwd_from) == ("gemini", "/w/app", "the server's working directory")
    # a session id counts only in the caller's own variable: variables leak into agents that were
    # started from another agent's shell
    leaked = {"CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": "abc", "CLAUDE_PROJECT_DIR": "/w/other"}
    c = identify("opencode", leaked, process_cwd="/w/app")
    assert (c.agent, c.session_id, c.cwd) == ("opencode", None, "/w/app")
    c = identify("claude-code", leaked, process_cwd="/w/app")
    assert (c.agent, c.session_id, c.session_from, c.cwd) == (
        "claude",
        "abc",
        "CLAUDE_CODE_SESSION_ID",
        "/w/other",
    )
    c = identify("claude-code", leaked, roots=["file:///w/from%20roots"], process_cwd="/w/app")
    assert (c.cwd, c.cwd_from) == ("/w/from roots", "the client's roots")
    c = identify("claude-code", {}, forced_agent="codex", forced_cwd="/w/x/../y", roots=["file:///r"])
    assert (c.agent, c.cwd) == ("codex", "/w/y")
    assert c.agent_from == "the --agent option" and c.cwd_from == "the --cwd option"
    assert root_dir(["https://example.com/x", "file:///a/b"]) == "/a/b"
    assert root_dir([]) is None


OLDER = "0ld5e551-0000-4000-8000-000000000001"


@pytest.fixture
def source(logs: Path) -> UsageSource:
    """The real fixtures plus an older Claude session of the same project, on a ledger in memory."""
    older = logs / CLAUDE_MAIN.relative_to(REAL).parent / f"{OLDER}.jsonl"
    line = claude_line(
        "msg_older_1", session_id=OLDER, timestamp="2026-02-01T10:00:00.000Z", cwd=CLAUDE_PROJECT
    )
    older.write_bytes(line + b"\n")
    src = UsageSource([logs], Config(), use_cache=False)
    src.engine.backfill()
    return src


def test_the_chosen_session_is_the_callers_own(source: UsageSource) -> None:
    claude = identify("claude-code", {}, process_cwd=CLAUDE_PROJECT)
    ch = source.choose(claude, None)
    assert (ch.target.session_id, ch.method) == (CLAUDE_SESSION, "agent_and_project")
    # the agent's own session id wins over the project's latest session
    with_id = identify("claude-code", {"CLAUDE_CODE_SESSION_ID": OLDER}, process_cwd=CLAUDE_PROJECT)
    ch = source.choose(with_id, None)
    assert (ch.target.session_id, ch.method) == (OLDER, "agent_session_env")
    assert "CLAUDE_CODE_SESSION_ID" in ch.reason
    # an id that names nothing tokwatch read: the project's latest, and the answer says so
    stale = identify("claude-code", {"CLAUDE_CODE_SESSION_ID": "gone-0000"}, process_cwd=CLAUDE_PROJECT)
    ch = source.choose(stale, None)
    assert ch.target.session_id == CLAUDE_SESSION and "gone-0000" in ch.reason
    # another agent in the same project is never the answer
    codex_here = identify("codex-mcp-client", {}, process_cwd=CLAUDE_PROJECT)
    with pytest.raises(Unanswerable, match="No codex session found for the project"):
        source.choose(codex_here, None)
    # an explicit id beats everything, whoever asks
    ch = source.choose(codex_here, CODEX_RTCHESS[:8])
    assert (ch.target.session_id, ch.method) == (CODEX_RTCHESS, "session_id")


def test_status_answer_adds_reasoning_selection_and_context_left(source: UsageSource) -> None:
    caller = identify("codex-mcp-client", {}, process_cwd="/nowhere")
    doc = source.session_status(caller, CODEX_RTCHESS)
    assert list(doc) == ["session", "selection", "usage", "asOf"]
    s = doc["usage"]["session"]
    assert (s["input"], s["cacheRead"], s["output"], s["reasoning"]) == (1130901, 29513728, 183421, 82880)
    row = next(r for r in export_rows(source.store) if r.session_id == CODEX_RTCHESS)
    ctx = doc["usage"]["context"]
    assert (ctx["used"], ctx["window"]) == (row.context_tokens, row.context_window)
    assert ctx["remaining"] == row.context_window - row.context_tokens
    assert doc["usage"]["lastTurn"]["model"] == "gpt-5.1-codex-max"
    assert doc["selection"]["method"] == "session_id" and doc["asOf"].endswith("Z")


def test_a_session_that_has_no_turn_yet_is_the_callers(source: UsageSource, logs: Path) -> None:
    """A session just started (its log has no billed turn yet) in the caller's project wins over
    the project's older sessions: its turns are coming."""
    fresh_id = "f4e5a000-0000-4000-8000-00000000beef"
    fresh = logs / CLAUDE_MAIN.relative_to(REAL).parent / f"{fresh_id}.jsonl"
    first = {"type": "user", "sessionId": fresh_id, "cwd": CLAUDE_PROJECT, "message": {"role": "user"}}
    fresh.write_text(json.dumps(first) + "\n")
    source.engine.refresh([fresh])
    doc = source.session_status(identify("claude-code", {}, process_cwd=CLAUDE_PROJECT))
    assert doc["session"]["id"] == fresh_id and doc["selection"]["method"] == "agent_and_project"
    usage = doc["usage"]
    assert usage["session"]["turns"] == 0 and usage["session"]["cost"] == 0 and usage["lastTurn"] is None
    assert usage["context"]["used"] == 0 and usage["context"]["window"] == 200_000


def test_configured_budgets_are_in_the_answer(logs: Path) -> None:
    config = Config(budgets=BudgetsConfig(daily=Budget(usd=20), session=Budget(tokens=1_000_000)))
    src = UsageSource(
        [logs], config, use_cache=False, tz=UTC, clock=lambda: 1770931000.0
    )  # 2026-02-12 21:16Z
    src.engine.backfill()
    doc = src.session_status(identify("claude-code", {}, process_cwd=CLAUDE_PROJECT))
    budgets = doc["usage"]["budgets"]
    assert list(budgets) == ["daily", "session"]
    assert budgets["session"] == {
        "used": doc["usage"]["session"]["totalTokens"],
        "limit": 1_000_000,
        "percent": round(doc["usage"]["session"]["totalTokens"] / 10_000, 1),
        "unit": "tokens",
    }
    assert budgets["daily"]["unit"] == "usd" and budgets["daily"]["used"] > 0


def test_no_other_command_imports_the_sdk(tmp_path: Path) -> None:
    """The SDK costs about half a second to import: only `tokwatch mcp` may pay for it."""
    code = (
        "import sys\n"
        "from tokwatch.cli import main\n"
        f"assert main(['export', {str(REAL)!r}, '--format', 'json']) == 0\n"
        f"assert main(['status', {str(REAL)!r}, '--json']) == 0\n"
        f"assert main(['report', 'daily', {str(REAL)!r}, '--json']) == 0\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'anyio', 'starlette'))\n"
        "assert not bad, bad[:5]\n"
        "assert 'tokwatch.output.mcp.server' not in sys.modules\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]


async def test_text_from_logs_never_reaches_a_client_as_an_escape_sequence(logs: Path) -> None:
    """Projects, models and ids come from logs: a client may print a tool's answer on a terminal."""
    from tokwatch.output.mcp.server import TokwatchServer

    hostile = "/w/\x1b]0;pwned\x07evil\u202eexe"
    evil = logs / "claude" / "projects" / "-w-evil" / "e5e5e5e5-0000-4000-8000-000000000001.jsonl"
    line = claude_line("msg_evil_1", session_id=evil.stem, timestamp="2026-11-01T10:00:00.000Z", cwd=hostile)
    evil.parent.mkdir(parents=True)
    evil.write_bytes(line + b"\n")
    src = UsageSource([logs], Config(), use_cache=False)
    src.engine.backfill()
    res = await TokwatchServer(src).call_tool(
        None, mt.CallToolRequestParams(name="list_sessions", arguments={})
    )
    text = res.content[0].text
    assert not any(c in text for c in "\x1b\x07\u202e"), text
    got = json.loads(text)["sessions"][0]
    assert (
        got["project"]
        == "/w/\\x1b]0;pwned\\x07evil\\u202eexe"
        == res.structured_content["sessions"][0]["project"]
    )
