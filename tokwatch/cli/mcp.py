"""`tokwatch mcp`: the MCP server's command line; the SDK is imported only here.

The SDK is imported before history starts loading, not during: both hold the GIL, and on a cold
start (an empty ledger, gigabytes of logs) a backfill running alongside the import delayed the answer
to `initialize` by seconds (clients give a server 10-30 s to start). Afterwards the backfill
thread leaves the event loop its turn every few milliseconds, and tool calls wait for it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokwatch.config import Config


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from tokwatch.agents import all_agents

    m = sub.add_parser(
        "mcp",
        help="a Model Context Protocol server on stdin/stdout: agents ask it for their own usage",
        description="Serve session_status, usage_report and list_sessions to an MCP client over stdio "
        "(see docs/mcp.md for each agent's setup).",
    )
    common(m)
    m.add_argument(
        "--agent",
        choices=[a.name for a in all_agents()],
        help="the agent that starts this server (default: from the MCP client's name)",
    )
    m.add_argument(
        "--cwd", help="the caller's project folder (default: the client's roots, else the working directory)"
    )
    m.add_argument("--tz", help="time zone for days and 'today' (default: local)")


def cmd_mcp(args: argparse.Namespace, config: Config) -> int:
    from tokwatch.output.mcp.source import UsageSource
    from tokwatch.reports.report import parse_tz

    try:
        tz = parse_tz(args.tz)
    except ValueError as e:
        print(f"tokwatch: {e}", file=sys.stderr)
        return 2
    source = UsageSource(args.paths, config, use_cache=not args.no_cache, tz=tz)
    from tokwatch.output.mcp.server import Options, serve

    source.start()
    return serve(source, Options(agent=args.agent, cwd=args.cwd))
