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

from pathlib import Path

from tokwatch.agents._vscode import TaskFolderAgent


class Roo(TaskFolderAgent):
    name = "roo"
    extension = "rooveterinaryinc.roo-cline"
    setting = "roo-cline.customStoragePath"
    family = "roo"

    def extra_storages(self, home: Path) -> set[Path]:
        return {home / ".vscode-mock" / "global-storage"}  # the Roo CLI's stand-in for VS Code


AGENT = Roo()
