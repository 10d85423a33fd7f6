"""Where tokwatch writes what went wrong: `${XDG_STATE_HOME:-~/.local/state}/tokwatch/tokwatch.log`.

The dashboard owns the terminal (Textual replaces `sys.stderr`), so a warning or a traceback printed
there is lost or garbles the screen. The dashboard sends the `tokwatch` logger to this file, and
backfill worker processes write their standard error to it too (see `ingest.engine`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

LOGGER = "tokwatch"
FILE_NAME = "tokwatch.log"
#: The log is cut back to nothing once it grows past this (it only holds warnings and errors).
MAX_BYTES = 1 << 20


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tokwatch"


def default_path(env: Mapping[str, str] | None = None) -> Path:
    return state_dir(env) / FILE_NAME


def current() -> Path | None:
    """The file the `tokwatch` logger writes to, when `to_file` installed one."""
    for h in logging.getLogger(LOGGER).handlers:
        if isinstance(h, logging.FileHandler):
            return Path(h.baseFilename)
    return None


def to_file(path: Path | None = None) -> Path | None:
    """Send the `tokwatch` logger's warnings and errors (with tracebacks) to `path` and nowhere
    else; None when the file cannot be opened (the messages then go nowhere, never to a screen)."""
    path = default_path() if path is None else path
    logger = logging.getLogger(LOGGER)
    existing = current()
    if existing == path:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > MAX_BYTES:
            path.unlink()
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    except OSError:
        handler, path = logging.NullHandler(), None  # type: ignore[assignment]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # never to the last-resort handler (the terminal)
    return path


def one_line(e: BaseException) -> str:
    """An exception as a person reads it on screen: its type and first line, no traceback (that
    goes to the log)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
