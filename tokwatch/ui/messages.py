"""Messages from the engine worker thread to the UI thread (`post_message` is thread-safe).

The worker never touches a widget: it only posts these. Textual messages cannot be frozen
dataclasses, so they are plain classes holding copies of what the thread measured.
"""

from __future__ import annotations

from textual.message import Message

from tokwatch.core.store import Changes
from tokwatch.reports.budgets import Usage


class LoadProgress(Message):
    """History is being read: how far along (the engine reports at most every 0.1 s)."""

    def __init__(self, files_done: int, files_total: int, bytes_done: int, bytes_total: int) -> None:
        super().__init__()
        self.files_done = files_done
        self.files_total = files_total
        self.bytes_done = bytes_done
        self.bytes_total = bytes_total

    def can_replace(self, message: Message) -> bool:
        """A newer progress report makes an older, still-queued one pointless."""
        return isinstance(message, LoadProgress)


class LoadDone(Message):
    """History is in the store; following starts now."""


class Problem(Message):
    """Something failed in the engine thread and was worked around (the details are in the log)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ChangesArrived(Message):
    """One batch recorded by the follow loop: its turns and the sessions as they now stand."""

    def __init__(self, changes: Changes) -> None:
        super().__init__()
        self.changes = changes


class UsageComputed(Message):
    """Today's and the running block's totals, computed by the usage worker for the strip."""

    def __init__(self, usage: Usage) -> None:
        super().__init__()
        self.usage = usage
