"""The key footer of both screens: Textual's Footer, rebuilt once per burst of binding changes and
only when what it shows changed.

Textual's Footer recomposes (a new widget per key, each styled) after EVERY bindings update, and a
screen publishes one on each focus change, mount and `refresh_bindings`: opening the insights view
queued about twenty rebuilds of identical footers, a third of the time before it showed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen


class KeyFooter(Footer):
    """A Footer that coalesces binding updates into one check once the messages queued are done."""

    def __init__(self, *, compact: bool = False, show_command_palette: bool = True) -> None:
        super().__init__(compact=compact, show_command_palette=show_command_palette)
        self._queued = False
        self._shown: tuple[object, ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self._queue()

    def watch_compact(self) -> None:
        self._queue()

    def watch_show_command_palette(self) -> None:
        self._queue()

    def _queue(self) -> None:
        if self._queued or not self.is_attached or not self._bindings_ready:
            return
        self._queued = True
        # after the messages already queued here, not after a refresh as Textual's: a screen
        # with nothing else to redraw (the insights view shown with numbers counted ahead)
        # ran that only at its next change, its keys missing for 0.3-0.5 s
        self.call_later(self._rebuild)

    def _signature(self) -> tuple[object, ...]:
        keys = tuple(
            (b.key, b.description, b.action, b.group, enabled, tooltip)
            for _, b, enabled, tooltip in self.screen.active_bindings.values()
            if b.show
        )
        return (keys, self.compact, self.show_command_palette)

    async def _rebuild(self) -> None:
        self._queued = False
        if not self.is_attached or not self.screen.is_current:
            return  # (a screen covered by another: its keys are built again when it resumes)
        signature = self._signature()
        if signature == self._shown:
            return
        self._shown = signature
        await self.recompose()
