"""The session list: one DataTable row per session, updated in place by row key.

A single column holds an entry laid out by `format.entry` to the list's exact width: two lines
per session when the list is a side pane, one line when it sits on top of a narrow screen. Rows
are only rebuilt when that width or layout changes (a resize); turns update a cell and re-sort.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist, RowKey

from tokwatch.core.models import Session
from tokwatch.core.store import SessionKey, Store
from tokwatch.ui import format as fmt

COLUMN = "entry"


class Entry(Text):
    """A list cell that carries its session's sort order (`DataTable.sort` only sees cell values)."""

    __slots__ = ("order",)

    order: tuple[float, str, str]


def _version(s: Session) -> tuple[object, ...]:
    """Everything an entry shows apart from the clock: equal versions draw equal entries."""
    t = s.totals
    return (
        s.last_seen,
        s.project,
        t.turns,
        t.cost_pico,
        t.unpriced_turns,
        s.context_used,
        s.context_window,
        s.context_window_assumed,
        s.archived,
    )


def row_key(key: SessionKey) -> str:
    return f"{key[0]}\x1f{key[1]}"


class SessionList(DataTable[Text]):
    """Every session (or the active ones, or those matching a filter), most recently active first."""

    BINDINGS = [
        Binding("escape", "app.clear_filter", "Clear filter", id="sessions.clear_filter", show=False),
    ]

    class Relayout(Message):
        """The rows were rebuilt for a new width."""

    class Selected(Message):
        """The highlighted session changed (None: the list is empty)."""

        def __init__(self, key: SessionKey | None) -> None:
            super().__init__()
            self.key = key

    def __init__(self, store: Store, clock: Callable[[], float], active_minutes: float, **kw: str) -> None:
        super().__init__(cursor_type="row", show_header=False, cell_padding=0, **kw)
        self.store = store
        self.clock = clock
        self.active_minutes = active_minutes
        self.active_only = False
        self.query_text = ""
        #: only this project's sessions (exactly; chosen in the insights view), None: every project
        self.project: str | None = None
        self.one_line = False
        self.entry_width = 0
        self.selected: SessionKey | None = None
        #: set once the user moves the cursor: loading then stops re-selecting the top row
        self.user_moved = False
        self._keys: dict[str, SessionKey] = {}
        #: what each row shows that time changes: (ago text, active)
        self._drawn: dict[str, tuple[str, bool, float]] = {}
        #: what each row was drawn from (see `_version`)
        self._versions: dict[str, tuple[object, ...]] = {}

    # ------------------------------------------------------------------ filtering
    def matches(self, s: Session, now: float) -> bool:
        if self.active_only and not fmt.is_active(s, now, self.active_minutes):
            return False
        if self.project is not None and s.project != self.project:
            return False
        q = self.query_text.casefold()
        if not q:
            return True
        return (
            q in s.project.casefold() or q in s.agent.casefold() or any(q in m.casefold() for m in s.by_model)
        )

    @property
    def shown(self) -> int:
        return self.row_count

    # ------------------------------------------------------------------ rows
    def _cell(self, s: Session, now: float) -> Entry:
        active = fmt.is_active(s, now, self.active_minutes)
        text = fmt.entry(s, now, active, self.entry_width, self.one_line)
        cell = Entry.assemble(text, end="", no_wrap=True)
        cell.order = (-s.last_seen, s.agent, s.session_id)
        self._drawn[row_key(s.key)] = (fmt.ago(s.last_seen, now), active, self._due(s, now, active))
        return cell

    def _due(self, s: Session, now: float, active: bool) -> float:
        """When the row's 'x ago' or its active mark may next change."""
        due = fmt.ago_changes_at(s.last_seen, now)
        return min(due, s.last_seen + self.active_minutes * 60 + 1e-3) if active else due

    def _put(self, s: Session, now: float) -> bool:
        """Add, update or remove the row of `s`; True when the set or order of rows may have changed."""
        rk = row_key(s.key)
        present = rk in self._keys
        if not self.matches(s, now):
            if present:
                self._drop(rk)
                return True
            return False
        version = _version(s)
        if present and self._versions.get(rk) == version:
            return False  # nothing it shows changed (the clock is `tick`'s business)
        self._versions[rk] = version
        cell = self._cell(s, now)
        if present:
            self.update_cell(rk, COLUMN, cell)
            return True
        self.add_row(cell, key=rk, height=1 if self.one_line else 2)
        self._keys[rk] = s.key
        return True

    def _drop(self, rk: str) -> None:
        self.remove_row(rk)
        del self._keys[rk]
        self._drawn.pop(rk, None)
        self._versions.pop(rk, None)

    def sync(self, keys: Iterable[SessionKey] | None = None) -> None:
        """Bring the rows of these sessions (all when None) up to date, then re-sort keeping the selection."""
        if not self.entry_width:
            return  # not laid out yet: `relayout` will build everything
        now = self.clock()
        changed = False
        with self.store.lock:
            sessions = self.store.sessions
            targets = sessions.values() if keys is None else (sessions[k] for k in keys if k in sessions)
            for s in targets:
                changed |= self._put(s, now)
        if changed:
            self._resort()

    def refilter(self) -> None:
        """The filter changed: drop rows that no longer match, add those that now do."""
        now = self.clock()
        with self.store.lock:
            for rk, key in list(self._keys.items()):
                s = self.store.sessions.get(key)
                if s is None or not self.matches(s, now):
                    self._drop(rk)
        self.sync()
        self._resort()  # rows went away: the selection may have to move

    def tick(self) -> None:
        """The clock moved: redraw only rows whose 'x ago' or active mark changed."""
        now = self.clock()
        removed = False
        with self.store.lock:
            for rk, key in list(self._keys.items()):
                drawn = self._drawn.get(rk)
                if drawn is not None and now < drawn[2]:
                    continue  # nothing it shows can have moved yet (a side pane idles all day)
                s = self.store.sessions[key]
                active = fmt.is_active(s, now, self.active_minutes)
                if self.active_only and not active:
                    self._drop(rk)
                    removed = True
                elif drawn is None or drawn[:2] != (fmt.ago(s.last_seen, now), active):
                    self.update_cell(rk, COLUMN, self._cell(s, now))
                else:
                    self._drawn[rk] = (*drawn[:2], self._due(s, now, active))
        if removed:
            self._resort()

    def relayout(self, width: int, one_line: bool) -> None:
        """Rebuild every row for a new width or layout (a resize; never per turn)."""
        if width == self.entry_width and one_line == self.one_line and self.row_count == len(self._keys):
            return
        self.entry_width = max(10, width)
        self.one_line = one_line
        self.clear(columns=True)
        self._keys.clear()
        self._drawn.clear()
        self._versions.clear()
        self.add_column("session", key=COLUMN, width=self.entry_width)
        self.sync()
        if not self._keys:
            self._announce()

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Entries as wide as the list; one line per session when the list sits on top (narrow)."""
        width = self.scrollable_content_region.width
        if width > 0:
            self.relayout(width, one_line=self.screen.has_class("-narrow"))
            self.post_message(self.Relayout())

    def _resort(self) -> None:
        self.sort(COLUMN, key=lambda cell: cell.order)
        self._restore_selection()

    def _restore_selection(self) -> None:
        """Keep the cursor on the selected session wherever sorting moved it."""
        if self.row_count == 0:
            self._announce()
            return
        index = 0
        if self.selected is not None:
            try:
                index = self.get_row_index(row_key(self.selected))
            except RowDoesNotExist:
                index = min(self.cursor_row, self.row_count - 1)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)
        else:
            self._announce()

    def select_top(self) -> None:
        """History is in: show the most recent session, unless the user already picked one."""
        if self.row_count and not self.user_moved:
            self.move_cursor(row=0, animate=False)
            self._announce()

    def select_newest(self) -> None:
        """The filter changed: select its newest match (the top row) and scroll it into view."""
        if self.row_count:
            self.move_cursor(row=0, animate=False, scroll=True)
            self.scroll_home(animate=False)
            self._announce()

    def action_cursor_down(self) -> None:
        self.user_moved = True
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        self.user_moved = True
        super().action_cursor_up()

    def action_page_down(self) -> None:
        self.user_moved = True
        super().action_page_down()

    def action_page_up(self) -> None:
        self.user_moved = True
        super().action_page_up()

    def action_scroll_home(self) -> None:
        """Home (and ctrl+home): the first session; DataTable's Home only moves between columns."""
        self.user_moved = True
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_scroll_end(self) -> None:
        """End (and ctrl+end): the last session."""
        self.user_moved = True
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    action_scroll_top = action_scroll_home
    action_scroll_bottom = action_scroll_end

    def on_click(self) -> None:
        self.user_moved = True

    def _announce(self) -> None:
        key: SessionKey | None = None
        if self.row_count:
            try:
                rk, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
                key = self._keys.get(rk.value or "")
            except CellDoesNotExist:
                key = None
        if key != self.selected:
            self.selected = key
            self.post_message(self.Selected(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    def key_for(self, rk: RowKey) -> SessionKey | None:
        return self._keys.get(rk.value or "")
