"""The live dashboard: a Textual app over the core's `Store`, fed by the `Engine` in a thread worker.

Data flow, and why it is safe:

* One thread worker runs `engine.backfill()` then `engine.follow()`. During the backfill the
  worker mutates the store (inside `Store.apply`, under `store.lock`) and posts throttled
  `LoadProgress` messages; the UI thread reads the store under the same lock when it draws.
* While following, the worker does not touch the store at all: `on_turns` posts ONE
  `TurnsArrived` message per batch and the UI thread applies it (`store.apply` is cheap for the
  few turns a batch holds). So from then on the store is only ever mutated on the UI thread, and
  the widgets never see a half-applied batch. See `TokwatchApp._follow_turns`.
* Widgets are updated in place: session rows by row key, model rows by model, the other
  widgets redraw their own few lines. A 1 s timer only refreshes "x ago" (and who is active).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, ProgressBar, Static
from textual.worker import Worker, WorkerState

from tokwatch import export
from tokwatch.config import Config
from tokwatch.engine import Engine, Progress
from tokwatch.models import Turn
from tokwatch.ui import format as fmt
from tokwatch.ui.detail import Detail
from tokwatch.ui.help import HelpScreen
from tokwatch.ui.messages import LoadDone, LoadProgress, TurnsArrived
from tokwatch.ui.sessions import SessionList

MOVE = Binding.Group("Move", compact=True)
#: Longer project names are cut in the header (Gemini names projects by a 64-digit hash).
TITLE_PROJECT_MAX = 28
#: Below this many columns the session list moves on top and the totals get compact.
NARROW_BELOW = 90


class FilterInput(Input):
    """The `/` filter: typing filters live; Up/Down still move the list; Enter or Esc leave it."""

    BINDINGS = [
        Binding("down", "app.select_next", "Next session", id="filter.next", show=False),
        Binding("up", "app.select_previous", "Previous session", id="filter.previous", show=False),
        Binding("escape", "app.clear_filter", "Clear filter", id="filter.clear"),
    ]


class TokwatchApp(App[None]):
    """`tokwatch [PATHS...]`: every agent session, the selected one in detail, live."""

    CSS_PATH = "app.tcss"
    TITLE = "tokwatch"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("a", "toggle_active", "Active", id="toggle_active"),
        Binding("slash", "filter", "Filter", id="filter", key_display="/"),
        Binding("e", "export", "Export", id="export"),
        Binding("j", "select_next", "Next", id="select_next", group=MOVE),
        Binding("k", "select_previous", "Previous", id="select_previous", group=MOVE),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        config: Config | None = None,
        export_dir: Path | str | None = None,
        demo: bool = False,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = 1.0,
    ) -> None:
        """`clock` is "now" in unix seconds: injectable so tests and snapshots never read the wall clock."""
        super().__init__()
        self.engine = engine
        self.store = engine.store
        self.config = config or Config()
        self.export_dir = Path(export_dir) if export_dir is not None else Path.cwd()
        self.demo = demo
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.loaded = False
        #: the newest CSV written by `e` (None before the first)
        self.last_export: Path | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ layout
    @property
    def _main(self) -> Screen:
        """The dashboard screen, even while help or the command palette is on top of it."""
        return self.screen_stack[0]

    def compose(self) -> ComposeResult:
        yield Header(icon="◔")
        with Container(id="body"):
            with Vertical(id="side"):
                yield FilterInput(placeholder="filter: project or model", id="filter", compact=True)
                yield Static(Text("Reading history…"), id="loading-label")
                yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="loading")
                yield SessionList(self.store, self.clock, self.config.active_minutes, id="sessions")
            yield Detail(self.store, self.clock, id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "demo" if self.demo else ""
        self._main.query_one(Detail).set_empty_text(self._empty_text())
        self._main.query_one(Detail).show(None)
        self._update_side_title()
        self._main.query_one(SessionList).focus()
        self.set_interval(self.tick_seconds, self._tick, name="clock")
        self._run_engine()

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header: the selected session, plus a discreet `demo` mark (both literal text)."""
        content = Content(title)
        if sub_title:
            content = Content.assemble(content, ("  ", ""), (sub_title, "dim italic"))
        return content

    def on_resize(self, event: events.Resize) -> None:
        """A tighter footer when narrow, so every key of ours still fits in 60 columns."""
        try:
            footer = self._main.query_one(Footer)
        except (NoMatches, IndexError):
            return
        footer.compact = event.size.width < NARROW_BELOW
        footer.show_command_palette = event.size.width >= NARROW_BELOW  # ctrl+p still works

    @on(SessionList.Relayout)
    def _sessions_relayout(self) -> None:
        self._update_side_title()

    # ------------------------------------------------------------------ engine
    @work(thread=True, exclusive=True, exit_on_error=False, group="engine", name="engine")
    def _run_engine(self) -> None:
        """Backfill with throttled progress, then follow until `_stop` (set on unmount and on quit)."""

        def progress(p: Progress) -> None:
            self.post_message(LoadProgress(p.files_done, p.files_total, p.bytes_done, p.bytes_total))

        try:
            self.engine.backfill(progress)
        finally:
            self.post_message(LoadDone())  # even after an error: show what was read
        if not self._stop.is_set():
            self.engine.follow(self._stop, self._follow_turns)
        self.engine.save_cache()  # a no-op without a cache; the next start resumes from here

    def _follow_turns(self, turns: list[Turn]) -> None:
        """Called on the worker thread: hand the batch over, touch nothing (see the module docstring)."""
        self.post_message(TurnsArrived(turns))

    def on_load_progress(self, message: LoadProgress) -> None:
        """Move the bar and show the sessions read so far (the worker is mutating the store: lock)."""
        if self._stop.is_set():
            return
        bar = self._main.query_one("#loading", ProgressBar)
        bar.update(total=max(1, message.bytes_total), progress=message.bytes_done)
        self._main.query_one("#loading-label", Static).update(
            Text(f"Reading history… {message.files_done}/{message.files_total} files")
        )
        self._main.query_one(SessionList).sync()
        self._main.query_one(Detail).update_session()
        self._update_side_title()

    def on_load_done(self, message: LoadDone) -> None:
        if self._stop.is_set():
            return
        self.loaded = True
        self._main.query_one("#side").add_class("-loaded")
        sessions = self._main.query_one(SessionList)
        sessions.sync()
        sessions.select_top()
        self._main.query_one(Detail).update_session()
        self._main.query_one(Detail).set_empty_text(self._empty_text())
        self._update_side_title()
        skips = self.engine.skips
        if skips.lines:
            self.notify(
                f"Skipped {skips.lines} malformed lines in {skips.files} files",
                severity="warning",
                markup=False,
            )

    def on_turns_arrived(self, message: TurnsArrived) -> None:
        """Apply one batch on the UI thread, then update only what it changed."""
        if self._stop.is_set():
            return
        changes = self.store.apply(message.turns)
        if not changes:
            return
        with self.batch_update():
            self._main.query_one(SessionList).sync(changes.sessions)
            detail = self._main.query_one(Detail)
            if detail.key in changes.sessions:
                detail.update_session()
            self._update_side_title()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """Worker failures surface here, in one place (exit_on_error=False keeps the app up)."""
        if event.worker.group == "engine" and event.state is WorkerState.ERROR:
            self.notify(f"Reading logs failed: {event.worker.error}", severity="error", markup=False)

    def _stop_engine(self) -> None:
        self._stop.set()

    def on_unmount(self) -> None:
        self._stop_engine()

    # ------------------------------------------------------------------ selection
    @on(SessionList.Selected)
    def _selected(self, event: SessionList.Selected) -> None:
        self._main.query_one(Detail).show(event.key)
        self._update_title()

    def _update_title(self) -> None:
        key = self._main.query_one(Detail).key
        with self.store.lock:
            s = self.store.sessions.get(key) if key else None
            if s is None:
                self.title = "tokwatch"
            else:
                name = fmt.project_name(s.project)
                if len(name) > TITLE_PROJECT_MAX:
                    name = name[: TITLE_PROJECT_MAX - 1] + "…"
                self.title = f"{s.agent} · {name} · {fmt.short_id(s.session_id)}"

    def _update_side_title(self) -> None:
        sessions = self._main.query_one(SessionList)
        side = self._main.query_one("#side")
        side.border_title = "Active sessions" if sessions.active_only else "Sessions"
        total = len(self.store.sessions)
        side.border_subtitle = f"{sessions.shown} of {total}" if sessions.shown != total else f"{total}"

    def _tick(self) -> None:
        if self._stop.is_set() or not self.screen_stack:
            return  # quitting: the widgets may already be gone
        try:
            sessions, detail = self._main.query_one(SessionList), self._main.query_one(Detail)
        except NoMatches:
            return
        with self.batch_update():
            sessions.tick()
            detail.tick()

    def _empty_text(self) -> Text:
        if not self.loaded:
            return Text("Reading history…", style="dim")
        roots = "\n".join(f"  {r}" for r in self.engine.roots)
        if self.store.sessions:
            return Text("No session matches the filter.", style="dim")
        return Text.assemble(
            "No agent sessions yet. Watching:\n",
            (roots, "dim"),
            "\n\nA session appears here as soon as its agent writes a turn.",
        )

    # ------------------------------------------------------------------ actions
    def action_select_next(self) -> None:
        self._main.query_one(SessionList).action_cursor_down()

    def action_select_previous(self) -> None:
        self._main.query_one(SessionList).action_cursor_up()

    def action_toggle_active(self) -> None:
        sessions = self._main.query_one(SessionList)
        sessions.active_only = not sessions.active_only
        sessions.refilter()
        self._update_side_title()
        self._main.query_one(Detail).set_empty_text(self._empty_text())

    def action_filter(self) -> None:
        box = self._main.query_one(FilterInput)
        box.add_class("-visible")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self._main.query_one(FilterInput)
        box.value = ""
        box.remove_class("-visible")
        self._main.query_one(SessionList).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        sessions = self._main.query_one(SessionList)
        sessions.query_text = event.value.strip()
        sessions.refilter()
        self._update_side_title()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self._main.query_one(FilterInput).remove_class("-visible")
        self._main.query_one(SessionList).focus()

    def action_export(self) -> None:
        """Write the export's CSV to `export_dir/tokwatch-YYYYmmdd-HHMMSS.csv` and say where."""
        stamp = datetime.fromtimestamp(self.clock()).strftime("%Y%m%d-%H%M%S")
        path = self.export_dir / f"tokwatch-{stamp}.csv"
        n = 2
        while path.exists():  # two snapshots in one second: never overwrite the first
            path = self.export_dir / f"tokwatch-{stamp}-{n}.csv"
            n += 1
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            rows = export.rows(self.store)
            export.write_atomic(path, export.to_csv(rows))
        except OSError as e:
            self.notify(f"Export failed: {e}", title="Export", severity="error", markup=False)
            return
        self.last_export = path
        self.notify(f"{len(rows)} rows written to {path.absolute()}", title="Exported", markup=False)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.help_keys(), self.config.active_minutes))

    def help_keys(self) -> list[tuple[str, str]]:
        """The keys as bound right now (read from the active bindings, so a user keymap shows)."""
        bound: dict[str, list[str]] = {}
        for active in self.active_bindings.values():
            b = active.binding
            if b.id:
                bound.setdefault(b.id, []).append(self.get_key_display(b))

        def key(binding_id: str, default: str) -> str:
            return "/".join(bound.get(binding_id, [default]))

        move = f"{key('select_next', 'j')}/{key('select_previous', 'k')}  ↓/↑"
        return [
            (move, "next / previous session (the main pane follows)"),
            (key("toggle_active", "a"), "all sessions / active only"),
            (key("filter", "/"), "filter by project, model or agent (Enter keeps it, Esc clears)"),
            (key("export", "e"), f"write a CSV snapshot to {self.export_dir}"),
            (key("help", "?"), "this help"),
            ("ctrl+p", "command palette: themes, export, filter…"),
            (key("quit", "q"), "quit"),
        ]

    async def action_quit(self) -> None:
        """Stop the follow loop first, so the worker thread ends and the app exits promptly."""
        self._stop_engine()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Export CSV snapshot", f"Write tokwatch-*.csv to {self.export_dir}", self.action_export
        )
        yield SystemCommand(
            "Toggle active sessions only", "All sessions / active only", self.action_toggle_active
        )
        yield SystemCommand("Filter sessions", "By project, model or agent", self.action_filter)
        yield SystemCommand("Keys and legend", "The help screen", self.action_help)
