"""What the end-to-end tests share besides fixtures: the installed command and its environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))

import loglines  # noqa: E402  (bench/loglines.py: the log-line factory)
import terminal  # noqa: E402  (bench/terminal.py: tmux as a real terminal)

__all__ = ["loglines", "terminal"]

#: Just above the parallel-backfill threshold (48 MiB = 50.3 MB): the cold start spawns workers.
CORPUS_MB = 55


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@dataclass(frozen=True)
class Installed:
    """tokwatch as `pipx install` leaves it: a command on a bin folder, its own environment."""

    bin_dir: Path
    pipx_home: Path

    @property
    def exe(self) -> Path:
        return self.bin_dir / "tokwatch"

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """What a user's shell gives it: a PATH, a HOME, a terminal type and a UTF-8 locale."""
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
        }
        env.update(extra)
        return env


def pipx_install(pipx: Path, target: str, where: Path, cwd: Path = REPO) -> Installed:
    home, bins = where / "pipx-home", where / "bin"
    env = dict(os.environ, PIPX_HOME=str(home), PIPX_BIN_DIR=str(bins), PIPX_MAN_DIR=str(where / "man"))
    env.pop("VIRTUAL_ENV", None)
    _run([str(pipx), "install", "--python", sys.executable, target], env=env, cwd=cwd)
    return Installed(bins, home)


def copy_corpus(corpus: Path, dest: Path) -> Path:
    """A private copy the test may append to (the session's corpus stays as generated)."""
    shutil.copytree(corpus, dest)
    return dest


def readme_user_install() -> list[str]:
    """The README's one command for users, as written there."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### For users", 1)[1].split("###", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return next(line for line in block.splitlines() if line.startswith("pipx install")).split("#")[0].split()
