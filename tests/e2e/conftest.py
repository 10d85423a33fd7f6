"""Fixtures of the end-to-end tests: the product as a user meets it, a built wheel installed the
way the README says (pipx, in a fresh environment of its own), run in a real terminal (tmux) with
an empty home. Everything expensive is made once per test session: the wheel, the installation,
the corpus.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import CORPUS_MB, REPO, Installed, _run, pipx_install, readme_user_install, terminal


@pytest.fixture(scope="session")
def pipx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipx, as a user would have it (installed here in a throwaway environment)."""
    tools = tmp_path_factory.mktemp("pipx-tool")
    _run([sys.executable, "-m", "venv", str(tools)])
    _run([str(tools / "bin" / "pip"), "install", "--quiet", "pipx"])
    return tools / "bin" / "pipx"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once from this checkout (what `pipx install tokwatch-*.whl` takes)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)])
    (found,) = out.glob("tokwatch-*.whl")
    return found


@pytest.fixture(scope="session")
def installed(pipx: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """tokwatch installed by the README's command from this clone: pipx builds the wheel and
    installs it into a fresh environment of its own. Once per test session."""
    command = readme_user_install()
    assert command[:2] == ["pipx", "install"], command
    return pipx_install(pipx, command[2], tmp_path_factory.mktemp("installed"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated history just above the parallel-backfill threshold."""
    out = tmp_path_factory.mktemp("corpus") / "c"
    _run(
        [
            sys.executable,
            str(REPO / "bench" / "make_corpus.py"),
            "--size-mb",
            str(CORPUS_MB),
            "--out",
            str(out),
        ]
    )
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["all"]["bytes"] > 48 << 20
    return out


@pytest.fixture
def tmux() -> Iterator[terminal.Tmux]:
    if not terminal.available():
        message = "the end-to-end tests need tmux (apt-get install tmux)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    t = terminal.Tmux(100, 30)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home folder: no agent logs, no config, no cache."""
    h = tmp_path / "home"
    h.mkdir()
    return h
