"""Kilo Code ≤ 5.x (VS Code extension `kilocode.kilo-code`, a Roo Code fork): task folders.

`<globalStorage>/kilocode.kilo-code/tasks/<taskId>/ui_messages.json` under every VS Code fork, or
`<kilo-code.customStoragePath>/tasks/`. Same format as Roo (`_vscode.TaskParser`), plus
`usageMissing: true` on a request whose usage never came: its tokens are unknown, so it counts as
a request of unknown cost, never as $0. `tokensIn` holds the whole prompt from Kilo 4.119.0 on.

Kilo Code 7.x is a rewrite on the Kilo CLI (an OpenCode fork) and keeps its sessions in `kilo.db`,
not in task folders: those are read by the Kilo CLI plug-in, not here.
"""

from __future__ import annotations

from tokwatch.agents._vscode import TaskFolderAgent


class KiloCode(TaskFolderAgent):
    name = "kilo-code"
    extension = "kilocode.kilo-code"
    setting = "kilo-code.customStoragePath"
    family = "kilo"


AGENT = KiloCode()
