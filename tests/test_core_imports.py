"""The core never drags in Textual; the import-linter contract holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_core_modules_do_not_import_textual() -> None:
    code = (
        "import sys\n"
        "import tokwatch.ingest.engine, tokwatch.core.store, tokwatch.output.export, tokwatch.cli\n"
        "import tokwatch.core.models, tokwatch.core.pricing, tokwatch.core.tailer, tokwatch.ingest.discover, tokwatch.config\n"
        "from tokwatch.agents import all_agents\n"
        "assert {a.name for a in all_agents()} >= {'claude', 'codex', 'gemini'}\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tokwatch.ui')))\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr


def test_export_runs_without_loading_textual(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tokwatch.cli import main\n"
        f"rc = main(['export', {str(tmp_path)!r}, '--format', 'json'])\n"
        "assert rc == 0\n"
        "assert 'textual' not in sys.modules\n"
    )
    env_cache = {"TOKWATCH_CACHE_DIR": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}

    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **env_cache},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_import_linter_contracts_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    assert lint.exists(), f"import-linter's console script is missing next to {sys.executable}"
    r = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" in r.stdout and " 0 broken" in r.stdout
