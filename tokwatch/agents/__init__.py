"""Agent plug-ins: every module in this package that defines `AGENT` is one supported agent.

Nothing outside this package names an agent; discovery, the engine and the views iterate
`all_agents()`. Sniff order is most specific first (`SNIFF_PRIORITY`, lower first).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from tokwatch.agents.base import Agent


@cache
def all_agents() -> tuple[Agent, ...]:
    found: list[Agent] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        agent = getattr(module, "AGENT", None)
        if isinstance(agent, Agent):
            found.append(agent)
    found.sort(key=lambda a: (getattr(a, "sniff_priority", 50), a.name))
    return tuple(found)


def get_agent(name: str) -> Agent | None:
    return next((a for a in all_agents() if a.name == name), None)


__all__ = ["Agent", "all_agents", "get_agent"]
