"""`tokwatch mcp`: the Model Context Protocol server, over stdio, with the official `mcp` SDK.

Three tools answer from a `UsageSource` (all the data access, in `source.py`): `session_status`,
`usage_report` and `list_sessions`. This module only speaks the protocol: it lists the tools with
their JSON schemas, validates arguments, finds out who is calling (`caller.py`), runs each
question in a worker thread (the store is read under its lock while the engine thread follows the
logs) and turns the answer, or the reason there is none, into a tool result. Nothing a client
sends can stop the server: a bad argument or a missing session is a tool error, an unknown
method or malformed parameters a JSON-RPC error, and a line that is not JSON-RPC at all gets a
parse or invalid-request error instead of the silence the SDK would give it.

This module imports the SDK (about a second); only `tokwatch mcp` imports this module.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
import orjson
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from tokwatch import __version__
from tokwatch.core.text import clean, json_escape
from tokwatch.output.mcp.caller import Caller, identify
from tokwatch.output.mcp.schema import (
    ListSessionsArgs,
    SessionStatusArgs,
    ToolArgs,
    UsageReportArgs,
    argument_errors,
    input_schema,
)
from tokwatch.output.mcp.source import Unanswerable, UsageSource

log = logging.getLogger(__name__)

#: How long a call waits for the history to be read (a cold start on years of logs) before
#: answering "ask again shortly".
READY_TIMEOUT = 20.0
#: How long a `roots/list` request to the client may take.
ROOTS_TIMEOUT = 2.0

INSTRUCTIONS = (
    "tokwatch reads the local logs of coding agents (Claude Code, Codex CLI, Gemini CLI, OpenCode, "
    "Copilot CLI and more) and reports their token usage, cost and context window. Call "
    "session_status to learn what this session has used and how full its context is, before "
    "planning costly work. Costs are US dollars; a null cost means unknown (an unpriced model), "
    "never free."
)

DESCRIPTIONS = {
    "session_status": (
        "Usage of the calling agent session (or of session_id): turns; input, output, cache read, "
        "cache write and reasoning tokens; cost in USD; the last request; the context window's "
        "used, size, percent and tokens remaining; configured budgets. The answer says which "
        "session was chosen and why. Call it to budget your remaining work."
    ),
    "usage_report": (
        "Token and cost totals over a date range, one row per day, week, month, project, model, "
        "agent or session, cut to the top_n rows (latest periods, or biggest costs), plus totals "
        "for the whole range. Days are inclusive, in the server's time zone."
    ),
    "list_sessions": (
        "Agent sessions, most recently active first, each with its id, agent, project, model, "
        "tokens, cost and context use. Use it to find a session_id for session_status."
    ),
}


@dataclass(slots=True)
class Options:
    agent: str | None = None  # --agent: who calls, overriding the client's name
    cwd: str | None = None  # --cwd: the caller's project, overriding roots and the working directory
    process_cwd: str = field(default_factory=os.getcwd)


@dataclass(slots=True)
class _Connection:
    """What the client said about itself, kept for the connection (stdio: the process)."""

    roots: list[str] | None = None  # None until asked; [] when the client has none or no answer


class TokwatchServer:
    def __init__(self, source: UsageSource, options: Options | None = None) -> None:
        self.source = source
        self.options = options or Options()
        self.conn = _Connection()
        self.tools: dict[str, tuple[type[ToolArgs], Callable[..., Any]]] = {
            "session_status": (SessionStatusArgs, self._session_status),
            "usage_report": (UsageReportArgs, self._usage_report),
            "list_sessions": (ListSessionsArgs, self._list_sessions),
        }
        self.server: Server[Any] = Server(
            "tokwatch",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )
        self.server.add_notification_handler(
            "notifications/roots/list_changed", types.NotificationParams, self._roots_changed
        )

    # ---------------------------------------------------------------- protocol handlers
    async def list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=name,
                    description=DESCRIPTIONS[name],
                    input_schema=input_schema(model),
                    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
                )
                for name, (model, _) in self.tools.items()
            ]
        )

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        entry = self.tools.get(params.name)
        if entry is None:
            raise MCPError(
                types.INVALID_PARAMS, f"Unknown tool: {params.name!r} (tools: {', '.join(self.tools)})"
            )
        model, run = entry
        try:
            args = model.model_validate(params.arguments or {})
        except ValidationError as e:
            return _error(argument_errors(e, model))
        try:
            answer = _cleaned(await run(ctx, args))
        except Unanswerable as e:
            return _error(str(e))
        except Exception as e:  # a bug of ours must cost one answer, not the server
            log.exception("tokwatch mcp: %s failed", params.name)
            return _error(f"tokwatch failed to answer ({type(e).__name__}: {e}); the server is still running")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json_escape(orjson.dumps(answer)))],
            structured_content=answer,
        )

    async def _roots_changed(self, ctx: Any, params: Any) -> None:
        self.conn.roots = None

    # ---------------------------------------------------------------- tools
    async def _ask(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run a question in a worker thread once the history is read (the loop keeps serving)."""
        source = self.source
        await anyio.to_thread.run_sync(source.wait_ready, READY_TIMEOUT)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kw))

    async def _session_status(self, ctx: Any, args: SessionStatusArgs) -> dict[str, Any]:
        caller = await self.caller(ctx) if args.session_id is None else self._identify(ctx, [])
        return await self._ask(self.source.session_status, caller, args.session_id)

    async def _usage_report(self, ctx: Any, args: UsageReportArgs) -> dict[str, Any]:
        return await self._ask(
            self.source.usage_report,
            group_by=args.group_by,
            since=args.since,
            until=args.until,
            agent=args.agent,
            project=args.project,
            top_n=args.top_n,
        )

    async def _list_sessions(self, ctx: Any, args: ListSessionsArgs) -> dict[str, Any]:
        return await self._ask(
            self.source.list_sessions,
            limit=args.limit,
            agent=args.agent,
            project=args.project,
            active_only=args.active_only,
        )

    # ---------------------------------------------------------------- who is calling
    async def caller(self, ctx: Any) -> Caller:
        if self.options.cwd is None and self.conn.roots is None:
            self.conn.roots = await self._ask_roots(ctx)
        return self._identify(ctx, self.conn.roots or [])

    def _identify(self, ctx: Any, roots: list[str]) -> Caller:
        params = ctx.session.client_params
        client = params.client_info.name if params is not None else ""
        return identify(
            client,
            os.environ,
            forced_agent=self.options.agent,
            forced_cwd=self.options.cwd,
            roots=roots,
            process_cwd=self.options.process_cwd,
        )

    async def _ask_roots(self, ctx: Any) -> list[str]:
        """The client's workspace folders, when it declared the roots capability (Claude Code and
        Gemini CLI do; Codex does not). Deprecated by the 2026-07-28 spec, still what clients send."""
        session = ctx.session
        caps = session.client_capabilities
        if caps is None or caps.roots is None or not session.can_send_request:
            return []
        try:
            with anyio.fail_after(ROOTS_TIMEOUT), warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                result = await session.list_roots()
        except Exception as e:  # no answer, an error, a malformed answer: fall back to the cwd
            log.info("roots/list failed: %r", e)
            return []
        return [str(r.uri) for r in result.roots]

    # ---------------------------------------------------------------- serving
    async def serve_stdio(self) -> None:
        """Serve until the client closes stdin; lines that are not JSON-RPC get an error reply."""
        async with stdio_server() as (read, write):
            forward, inbox = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def sieve() -> None:
                async with forward:
                    async for item in read:
                        if isinstance(item, Exception):
                            await write.send(SessionMessage(_garbled_reply(item)))
                        else:
                            await forward.send(item)

            async with anyio.create_task_group() as tg:
                tg.start_soon(sieve)
                await self.server.run(inbox, write, self.server.create_initialization_options())
                tg.cancel_scope.cancel()


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=clean(text))], is_error=True)


def _cleaned(v: Any) -> Any:
    """Every string of an answer as `clean()` shows it: text from logs (projects, models, ids)
    reaches clients that print tool results on a terminal, and is never an escape sequence there."""
    if isinstance(v, str):
        return clean(v)
    if isinstance(v, dict):
        return {k: _cleaned(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_cleaned(x) for x in v]
    return v


def _garbled_reply(exc: Exception) -> types.JSONRPCError:
    """JSON-RPC's answer to a line it cannot take: a parse error (-32700), or an invalid request
    (-32600) with the line's id when it had one."""
    code, message, rid = types.PARSE_ERROR, "Parse error: the line is not JSON", None
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False)
        if not any(e["type"] == "json_invalid" for e in errors):
            code, message = types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message"
            got = errors[0].get("input") if errors else None
            if isinstance(got, dict):
                i = got.get("id")
                rid = i if isinstance(i, str | int) and not isinstance(i, bool) else None
    return types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code, message=message))


def serve(source: UsageSource, options: Options | None = None) -> int:
    """Run the server on this process's stdin/stdout until the client closes stdin.

    SIGTERM, SIGHUP and SIGINT end it at once, once the engine thread has stopped (every batch it read
    is committed by then) and the ledger is closed: an orderly shutdown of the event loop would
    wait for the SDK's stdin reader, a thread blocked in `readline()` until the client closes the
    pipe (clients that send SIGTERM have usually not done that yet)."""

    def stop(signum: int, frame: object) -> None:
        source.close()
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    server = TokwatchServer(source, options)
    try:
        anyio.run(server.serve_stdio)
    finally:
        source.close()
    return 0
