"""A real terminal for the end-to-end tests and the benchmark: a private tmux server.

tokwatch runs in a tmux pane of a given size, keys are sent with `send-keys`, and the screen is
read back as text with `capture-pane`. Each `Tmux` uses its own server socket (`-L`), so it never
touches a user's tmux, and `close()` ends that server and everything running in it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: How often the screen is read while waiting for something to appear on it (seconds).
POLL = 0.02


class ScreenTimeout(AssertionError):
    """What was awaited never appeared; carries the last screen seen."""


def available() -> bool:
    return shutil.which("tmux") is not None


class Tmux:
    def __init__(self, width: int = 100, height: int = 30) -> None:
        self.width, self.height = width, height
        self._dir = Path(tempfile.mkdtemp(prefix="tokwatch-tmux-"))
        self.socket = f"tokwatch-{os.getpid()}-{id(self):x}"
        conf = self._dir / "tmux.conf"
        # No status line (the pane is the whole window), no escape delay, nothing from the user.
        conf.write_text("set -g status off\nset -sg escape-time 0\nset -g remain-on-exit off\n")
        self._conf = conf
        self._n = 0
        self.target = ""

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self._conf), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        """Run `argv` in a new pane of `width` x `height`, with exactly `env` (nothing inherited).

        When it exits, the shell prints `EXITED <code>` and waits, so the exit code can be read.
        """
        self._n += 1
        name = f"w{self._n}"
        cmd = " ".join(shlex.quote(a) for a in argv)
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        script = f"env -i {assignments} {cmd}; echo EXITED $?; sleep 3600"
        if cwd is not None:
            script = f"cd {shlex.quote(str(cwd))} && {script}"
        self._tmux(
            "new-session", "-d", "-s", name, "-x", str(self.width), "-y", str(self.height), "sh", "-c", script
        )
        self.target = f"{name}:0.0"

    def screen(self) -> str:
        """The pane's text now: `height` lines, no colours."""
        return self._tmux("capture-pane", "-p", "-t", self.target).stdout

    def send(self, *keys: str) -> None:
        """Keys by tmux name (`q`, `Escape`, `Home`, `PageDown`, `C-p`) or literal text."""
        self._tmux("send-keys", "-t", self.target, *keys)

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._tmux("resize-window", "-t", self.target, "-x", str(width), "-y", str(height))

    def wait_for(
        self, predicate: Callable[[str], bool] | str, timeout: float = 60.0, what: str = ""
    ) -> tuple[str, float]:
        """Read the screen until `predicate(screen)` holds (or the text appears); the screen and
        the time it took. Raises `ScreenTimeout` with the last screen after `timeout` seconds."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        t0 = time.perf_counter()
        screen = ""
        while True:
            screen = self.screen()
            if test(screen):
                return screen, time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                label = what or (predicate if isinstance(predicate, str) else "the awaited screen")
                raise ScreenTimeout(f"{label!r} not on screen after {timeout:.0f} s; last screen:\n{screen}")
            time.sleep(POLL)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """The exit code of the program started last, once it has exited."""
        screen, _ = self.wait_for(lambda s: "EXITED " in s, timeout, "the program's exit")
        line = next(x for x in screen.splitlines() if x.startswith("EXITED "))
        return int(line.split()[1])

    def close(self) -> None:
        self._tmux("kill-server", check=False)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
