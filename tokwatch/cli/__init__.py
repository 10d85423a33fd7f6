"""The command line: `tokwatch [PATHS]` (the dashboard) and the headless commands."""

from tokwatch.cli.main import main

__all__ = ["main"]
