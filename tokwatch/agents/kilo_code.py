"""Kilo Code ≤ 5.x (VS Code extension `kilocode.kilo-code`, a Roo Code fork): task folders.

`<globalStorage>/kilocode.kilo-code/tasks/<taskId>/ui_messages.json` under every VS Code fork, or
`<kilo-code.customStoragePath>/tasks/`. Same format as Roo (`_vscode.TaskParser`), plus
`usageMissing: true` on a request whose usage never came: its tokens are unknown, so it counts as
a request of unknown cost, never as $0. `tokensIn` holds the whole prompt from Kilo 4.119.0 on.

Kilo Code 7.x is a rewrite on the Kilo CLI (an OpenCode fork) and keeps its sessions in `kilo.db`,
not in task folders: those are read by the Kilo CLI plug-in, not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents._vscode import TaskParser, custom_storage, global_storage, is_task_file
from tokwatch.agents.base import Agent, LogParser

EXTENSION = "kilocode.kilo-code"
SETTING = "kilo-code.customStoragePath"


class KiloCode(Agent):
    name = "kilo-code"
    mode = "document"
    sniff_priority = 40
    suffixes = (".json",)

    def __init__(self) -> None:
        self._storages: set[Path] | None = None

    def _known(self, env: Mapping[str, str], home: Path) -> set[Path]:
        found = {*global_storage(env, home, EXTENSION), *custom_storage(env, home, SETTING)}
        self._storages = (self._storages or set()) | found
        return found

    def storages(self) -> set[Path]:
        """Computed on first use too: a backfill worker process never calls `roots()`."""
        if self._storages is None:
            return self._known(os.environ, Path(os.environ.get("HOME") or Path.home()))
        return self._storages

    def roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        return sorted(s / "tasks" for s in self._known(env, home))

    def owns_path(self, path: Path) -> bool:
        if not is_task_file(path):
            return False
        storage = path.parents[2]
        return storage.name == EXTENSION or storage in self.storages()

    def parser(self, path: Path) -> LogParser:
        return TaskParser(path, "kilo-code", "kilo")


AGENT = KiloCode()
