"""Roo Code (VS Code extension, `rooveterinaryinc.roo-cline`): classic task folders.

`<globalStorage>/rooveterinaryinc.roo-cline/tasks/<taskId>/ui_messages.json` under every VS Code
fork, or `<roo-cline.customStoragePath>/tasks/` when that setting is set, and the Roo CLI's
`~/.vscode-mock/global-storage/tasks/`. Read by `_vscode.TaskParser` (docs/agents.md): every
`api_req_started`, cancelled ones included; `api_req_deleted` aggregates (which Roo's own total
leaves out, though those requests were billed); `condense_context` costs. `tokensIn` holds the
whole prompt from Roo 3.29.5 on, the provider's own figure before: see `_vscode._roo_counts`.
The model of each request is the `<model>` its prompt names (`api_conversation_history.json`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tokwatch.agents._vscode import TaskParser, custom_storage, global_storage, is_task_file
from tokwatch.agents.base import Agent, LogParser

EXTENSION = "rooveterinaryinc.roo-cline"
SETTING = "roo-cline.customStoragePath"


class Roo(Agent):
    name = "roo"
    mode = "document"
    sniff_priority = 40
    suffixes = (".json",)

    def __init__(self) -> None:
        self._storages: set[Path] | None = None

    def _known(self, env: Mapping[str, str], home: Path) -> set[Path]:
        cli = home / ".vscode-mock" / "global-storage"  # the Roo CLI's stand-in for VS Code
        found = {cli, *global_storage(env, home, EXTENSION), *custom_storage(env, home, SETTING)}
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
        return TaskParser(path, "roo", "roo")


AGENT = Roo()
