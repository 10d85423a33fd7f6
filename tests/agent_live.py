"""Live tests of the agent plug-ins: follow an engine (`helpers.Following`: the watcher is awaited,
each test waits for the turn it expects, never for a fixed time), and replace files as agents do."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import Following

from tokwatch.ingest.engine import Engine


def following(engine: Engine) -> Following:
    """`engine.follow` in a thread, entered once its OS watches exist (nothing is missed after)."""
    return Following(engine)


def replace_atomically(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path` and rename it over it, as the agents do."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
