"""Who is calling: the agent behind an MCP client, its session id if it says, and its project folder.

An MCP server over stdio cannot ask the agent which session it serves; it can only read what the
agent hands it (see docs/mcp.md for what each agent sends):

- the `clientInfo.name` of the initialize request (`claude-code`, `codex-mcp-client`,
  `gemini-cli-mcp-client`, `opencode`, `github-copilot-developer`): the agent whose name is
  among its words is the caller;
- environment variables some agents set for their servers (each agent plug-in lists its own:
  `mcp_marker_env`, `mcp_session_env`, `mcp_project_env`); a marker names the agent only when the
  client name is unknown, and a session id counts only when it is the caller's own variable, since
  variables leak to agents started from another agent's shell;
- the project folder: `--cwd`, else the client's first `roots/list` root, else the agent's project
  variable, else the server's working directory (agents start their servers in the project).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from tokwatch.agents import all_agents
from tokwatch.reports.status import norm_dir

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Caller:
    client: str  # clientInfo.name as sent ("" when none)
    agent: str | None  # tokwatch's agent name, None when unknown
    agent_from: str  # how the agent was known, for the answer's `selection.reason`
    session_id: str | None  # the agent's own session id, when it gave one
    session_from: str  # the variable that held it
    cwd: str
    cwd_from: str


def agent_of_client(name: str) -> str | None:
    """The agent whose name's words appear, in order, among the client name's words; the longest
    such name wins (`Kilo Code` is `kilo-code`, not `kilo`)."""
    words = _WORD.findall(name.lower())
    best: tuple[int, str] | None = None
    for a in all_agents():
        mine = _WORD.findall(a.name.lower())
        n = len(mine)
        found = n and any(words[i : i + n] == mine for i in range(len(words) - n + 1))
        if found and (best is None or n > best[0]):
            best = (n, a.name)
    return best[1] if best else None


def root_dir(uris: Sequence[str]) -> str | None:
    """The first local folder among `roots/list` URIs (`file:///home/me/app`)."""
    for uri in uris:
        u = urlparse(uri)
        if u.scheme == "file" and u.path:
            return norm_dir(unquote(u.path))
    return None


def identify(
    client: str,
    env: Mapping[str, str],
    *,
    forced_agent: str | None = None,
    forced_cwd: str | None = None,
    roots: Sequence[str] = (),
    process_cwd: str | None = None,
) -> Caller:
    agent, agent_from = forced_agent, "the --agent option"
    if agent is None and client:
        agent = agent_of_client(client)
        agent_from = f"the MCP client calls itself {client!r}"
    if agent is None:
        for a in all_agents():
            marker = next((v for v in a.mcp_marker_env if env.get(v)), None)
            if marker:
                agent, agent_from = a.name, f"the server was started with {marker} set"
                break
    if agent is None:
        agent_from = f"the MCP client {client!r} is not a known agent" if client else "no client name"
    plug = next((a for a in all_agents() if a.name == agent), None)
    session_id, session_from = None, ""
    if plug is not None and plug.mcp_session_env and env.get(plug.mcp_session_env, "").strip():
        session_id, session_from = env[plug.mcp_session_env].strip(), plug.mcp_session_env
    project_var = plug.mcp_project_env if plug is not None else ""
    root = root_dir(roots)
    if forced_cwd:
        cwd, cwd_from = norm_dir(forced_cwd), "the --cwd option"
    elif root:
        cwd, cwd_from = root, "the client's roots"
    elif project_var and env.get(project_var, "").strip():
        cwd, cwd_from = norm_dir(env[project_var]), project_var
    else:
        cwd, cwd_from = norm_dir(process_cwd or os.getcwd()), "the server's working directory"
    return Caller(client, agent, agent_from, session_id, session_from, cwd, cwd_from)
