"""The `tokwatch` entry point: light to import (spawned workers re-import it) and one-shot
commands that skip the interpreter's teardown still deliver all their output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

REAL = Path(__file__).parent / "fixtures" / "real"


def test_the_entry_point_imports_nothing_heavy() -> None:
    code = (
        "import sys, tokwatch.launch, tokwatch.ingest.engine; "
        "print(sorted(m for m in ('pydantic', 'tokwatch.cli', 'genai_prices', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_shot_commands_flush_everything_before_exiting(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), TOKWATCH_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "tokwatch", "export", str(REAL), "--format", "json"]
    first = subprocess.run(cmd, capture_output=True, env=env, check=True)
    rows = orjson.loads(first.stdout)  # the whole document arrived, and parses
    assert rows and {r["agent"] for r in rows} >= {"claude", "codex", "gemini"}
    again = subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm, from the cache
    assert again.stdout == first.stdout
    # through a pipe that closes early: no traceback, a clean exit code
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None
    p.stdout.read(10)
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert b"Traceback" not in err
