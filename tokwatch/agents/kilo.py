"""Kilo CLI (`kilo`, an OpenCode fork): SQLite `kilo.db` under `${XDG_DATA_HOME:-~/.local/share}/kilo`.

Kilo keeps OpenCode's tables (`session`, `message`, `part`; `message.data` is the same assistant
JSON), so the OpenCode reader does the work (`opencode.py`); only the names differ:

* the data folder is `kilo`, the override variable `KILO_DB` (`:memory:`, absolute, or relative to
  the data folder), the release channels' database `kilo.db`, other channels `kilo-<channel>.db`,
  or an older `opencode-<channel>.db` in Kilo's own folder;
* Kilo CLI 1.0.x wrote OpenCode's legacy JSON files under `kilo/storage/message/`.

Kilo-specific trap: `/fork` copies every earlier message into the new session with new ids and
`cost: 0` (tokens, model and `time.created` unchanged). The shared reader's `Turn.dedup_key`
counts each request once; the first session seen with it keeps it.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokwatch.agents.opencode import OpenCode


class Kilo(OpenCode):
    name = "kilo"
    sniff_priority = 39  # before OpenCode: an `opencode-<channel>.db` in Kilo's folder is Kilo's
    app = "kilo"
    db_env = "KILO_DB"
    db_names = re.compile(r"^kilo(-[A-Za-z0-9._-]+)?\.db$")
    compact_rule = ""  # OpenCode's reader, not a verified compaction rule

    def compact_threshold(self, model: str, window: int) -> int | None:
        return None

    def _is_db(self, path: Path) -> bool:
        if super()._is_db(path):
            return True
        # a non-release channel's database from before the rename, in Kilo's own folder
        return (
            path.parent.name == self.app
            and path.name != "opencode.db"
            and bool(OpenCode.db_names.match(path.name))
        )

    def owns_path(self, path: Path) -> bool:
        if path.suffix == ".json":
            # the legacy layout inside Kilo's own data folder: kilo/storage/message/ses_*/msg_*.json
            return super().owns_path(path) and len(path.parents) > 3 and path.parents[3].name == self.app
        return self._is_db(path)

    def sniff(self, head: bytes) -> bool:
        return False  # a message JSON alone does not say Kilo: OpenCode's sniff claims it


AGENT = Kilo()
