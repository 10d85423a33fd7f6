"""The `tokwatch` command's entry point, importing nothing at module level.

A spawned backfill worker re-imports the script that started its parent, and through it this
module: had it been `tokwatch.cli`, every worker would pay for pydantic and the whole CLI
(~90 ms) before reading a byte.
"""

from __future__ import annotations

import os
import sys

ONE_SHOT = ("export", "cache", "report", "status", "statusline")


def run() -> None:
    """Run the command line. A one-shot command ends without tearing the interpreter down object
    by object (~40 ms after a large backfill): its output is written, flushed and closed by then,
    and the cache was replaced atomically."""
    from tokwatch.cli import main

    code = main()
    if len(sys.argv) > 1 and sys.argv[1] in ONE_SHOT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            code = code or 1
        os._exit(code)
    sys.exit(code)
