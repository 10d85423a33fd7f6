"""The road to compaction, under the selected session's context gauge.

`Auto-compacts at 167k · 68k to go, ~2 turns at 34k/turn · 1 compaction so far`

The auto-compact point is the agent's own rule (`Agent.compact_threshold`, docs/limits.md); the
gauge marks it. Where tokwatch knows no rule for an agent the road ends at the whole window and
says so. The growth per turn and the count of logged compactions are read from the ledger on a
worker thread each time the session changes; this widget only lays them out.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from tokwatch.core.ledger import Ledger
from tokwatch.core.models import Session
from tokwatch.reports import limits
from tokwatch.reports.limits import Road
from tokwatch.ui import format as fmt

#: Below this many columns the road uses its short form.
COMPACT_WIDTH = 70


def road_text(r: Road, agent: str, width: int) -> Text:
    """The road in words for `width` cells: the long form when it fits, else the short one."""
    if not r.window:
        return Text()  # no window, no road
    long = _join(_long(r, agent)) if width >= COMPACT_WIDTH else None
    if long is not None and long.cell_len <= width:
        return long
    return fmt.fit(_join(_short(r)), width)


def _long(r: Road, agent: str) -> list[Text]:
    if r.threshold is not None:
        parts = [Text.assemble(("Auto-compacts at ", "dim"), (fmt.tokens(r.threshold), "bold"))]
    else:
        parts = [Text(f"No known auto-compact rule for {agent}: the road ends at the window", style="dim")]
    left, turns = r.left, r.turns_left
    if left is not None:
        go = Text(f"{fmt.tokens(left)} to go")
        if turns is not None and r.growth:
            go.append(f", ~{_turns(turns)} at {fmt.tokens(round(r.growth))}/turn")
        parts.append(go)
    count = f"{r.count} compaction{'s' if r.count != 1 else ''}" if r.count else "never compacted"
    parts.append(Text(count, style="dim"))
    return parts


def _short(r: Road) -> list[Text]:
    parts = []
    left, turns = r.left, r.turns_left
    if left is not None:
        t = Text(f"{'compacts' if r.threshold is not None else 'full'} in ~{fmt.tokens(left)} tok")
        if turns is not None:
            t.append(f" ({_turns(turns)})")
        parts.append(t)
    parts.append(Text(f"compacted {r.count}x" if r.count else "never compacted", style="dim"))
    return parts


def _join(parts: list[Text]) -> Text:
    out = Text(no_wrap=True)
    for i, p in enumerate(parts):
        if i:
            out.append(" · ", style="dim")
        out.append_text(p)
    return out


def _turns(n: float) -> str:
    k = int(n)
    return f"{k} turn{'s' if k != 1 else ''}" if k < 1000 else "1000+ turns"


class CompactionRoad(Widget):
    """One line: where the session compacts, how far that is, and how often it already did."""

    DEFAULT_CSS = """
    CompactionRoad {
        height: 1;
    }
    """

    class Computed(Message):
        def __init__(self, key: tuple[str, str], road: Road) -> None:
            super().__init__()
            self.key = key
            self.road = road

    def __init__(self, ledger: Ledger, **kw: str) -> None:
        super().__init__(**kw)
        self.ledger = ledger
        self.key: tuple[str, str] | None = None
        self.road: Road | None = None

    def update_session(self, s: Session) -> None:
        """The shown session (or its numbers) changed: read its road again, off the UI thread."""
        if s.key != self.key:
            self.key, self.road = s.key, None
            self.refresh()
        self._read(s)

    @work(thread=True, exclusive=True, exit_on_error=False, group="road", name="road")
    def _read(self, s: Session) -> None:
        r = limits.road(self.ledger, s)  # `s` is published, never changed: safe to read here
        if not get_current_worker().is_cancelled:
            self.post_message(self.Computed(s.key, r))

    def on_compaction_road_computed(self, message: Computed) -> None:
        message.stop()
        if message.key == self.key:
            self.road = message.road
            self.refresh()

    def render(self) -> Text:
        if self.road is None or self.key is None:
            return Text()
        return road_text(self.road, self.key[0], self.content_size.width)
