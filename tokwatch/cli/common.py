"""What every command shares: the common options and the skipped-lines line on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokwatch.ingest.engine import Engine


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", type=Path, help="log files or folders (default: every agent's home)")
    p.add_argument("--config", type=Path, help="config file (default: ~/.config/tokwatch/config.toml)")
    p.add_argument(
        "--force-polling", action="store_true", help="poll instead of OS events (network drives, WSL)"
    )
    p.add_argument("--no-cache", action="store_true", help="read every log from the start; skip the cache")


def report_skips(engine: Engine) -> None:
    """What the user should know after reading: the ledger's notices, then malformed lines."""
    for notice in engine.problems:
        print(f"tokwatch: {notice}", file=sys.stderr)
    if engine.skips.lines:
        print(
            f"tokwatch: skipped {engine.skips.lines} malformed lines in {engine.skips.files} files",
            file=sys.stderr,
        )
