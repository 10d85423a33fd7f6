"""Find log files under roots and tell which agent wrote each one.

Path conventions decide first (cheap and certain), a sniff of the first bytes second. Only regular
files are ever opened: FIFOs, sockets and devices named `*.jsonl` would block or lie, and
symlinked folders are not followed (loops).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tokwatch.agents import Agent, all_agents
from tokwatch.fsio import open_regular

SNIFF_BYTES = 4096


def suffixes() -> tuple[str, ...]:
    """Every file ending some agent reads (agents declare theirs)."""
    out: list[str] = []
    for a in all_agents():
        out.extend(x for x in a.suffixes if x not in out)
    return tuple(out)


def default_roots(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """Every agent's home folders, existing or not (a missing one is watched for later)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    roots: list[Path] = []
    for agent in all_agents():
        for r in agent.roots(env, home):
            if r not in roots:
                roots.append(r)
    return roots


def is_candidate(path: Path) -> bool:
    return path.name.endswith(suffixes())


def detect(path: Path, head: bytes | None = None) -> Agent | None:
    """The agent that wrote `path`, or None. Reads at most SNIFF_BYTES when the path is not enough."""
    agents = all_agents()
    for agent in agents:
        if agent.owns_path(path):
            return agent
    if head is None:
        f = open_regular(path)
        if f is None:
            return None
        try:
            with f:
                head = f.read(SNIFF_BYTES)
        except OSError:
            return None
    for agent in agents:
        if agent.sniff(head):
            return agent
    return None


def walk(root: Path) -> Iterator[Path]:
    """Candidate regular files below `root` (or `root` itself), never following symlinked folders."""
    for path, _ in walk_stat(root):
        yield path


def walk_stat(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """`walk`, with each file's stat (taken anyway to check that it is a regular file)."""
    try:
        st = os.stat(root)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        if is_candidate(root) or root.suffix:
            yield root, st
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    ends = suffixes()
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(d / e.name)
                # stat() follows a symlink to a file; still refuse anything but a regular file
                elif e.name.endswith(ends) and stat.S_ISREG((fst := e.stat()).st_mode):
                    yield d / e.name, fst  # (joining is cheaper than parsing a whole path string)
            except OSError:
                continue


def discover(roots: Iterable[Path]) -> Iterator[tuple[Path, Agent]]:
    seen: set[Path] = set()
    for root in roots:
        for path in walk(root):
            if path in seen:
                continue
            seen.add(path)
            agent = detect(path)
            if agent is not None:
                yield path, agent
