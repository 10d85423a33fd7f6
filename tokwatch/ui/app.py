"""The live dashboard: a Textual app over the core's `Store`, fed by the `Engine` in a thread worker.

Data flow, and why it is safe:

* One thread worker runs `engine.backfill()` then `engine.follow()`: it is the only code that
  changes the store and the ledger. During the backfill it posts throttled `LoadProgress`
  messages; while following, ONE `ChangesArrived` message per batch, carrying the batch's
  `Changes` (its turns and the sessions as they now stand). Session objects the store publishes
  are never changed afterwards (a later batch folds into a copy and swaps it in under
  `store.lock`), so the widgets read plain, stable data and never see half a batch.
* Widgets are updated in place: session rows by row key, model rows by model, the other
  widgets redraw their own few lines. A 1 s timer only refreshes "x ago" (and who is active),
  the block countdown, and the skipped-lines mark.
* "Today / current block" (`TodayStrip`) comes from `budgets.current_usage`, computed in a second
  thread worker (it takes `store.lock` itself) after the history is in and after each batch, and
  posted back as `UsageComputed`; requests made while one runs are coalesced into one more run.
  The 1 s timer asks again only when the day or the block is over. Budget alarms (80% / 100%,
  once per period: `budgets.BudgetAlarm`) are checked on the UI thread when a result arrives
  (day and block) and when a batch changes a session (session budget).
* The Limits panel (`ui/limits.py`) reads the plan windows from the ledger on its own worker
  thread once the history is in, after each batch that brought limit samples (a rollout's, or
  another process's: the engine hears `tokwatch statusline` write to the ledger) and when a
  window's period ends; it alerts like the budgets. The road to compaction (`ui/road.py`) reads a
  session's growth and compactions the same way when the selected session changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Header, Input, ProgressBar, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import Worker, WorkerState, get_current_worker

from tokwatch.config import Config, with_top_level_key
from tokwatch.core import logs
from tokwatch.core.models import Session
from tokwatch.core.store import Changes, SessionKey
from tokwatch.core.text import clean
from tokwatch.ingest.engine import Engine, Progress
from tokwatch.output import export
from tokwatch.reports import budgets
from tokwatch.reports.budgets import BudgetAlarm, BudgetState, Crossing, Usage
from tokwatch.ui import format as fmt
from tokwatch.ui.detail import Detail
from tokwatch.ui.footer import KeyFooter
from tokwatch.ui.help import HelpScreen
from tokwatch.ui.insights import Drill, InsightsScreen
from tokwatch.ui.limits import LimitsPanel
from tokwatch.ui.messages import ChangesArrived, LoadDone, LoadProgress, Problem, UsageComputed
from tokwatch.ui.sessions import SessionList, row_key
from tokwatch.ui.skipped import SkippedScreen
from tokwatch.ui.strip import TodayStrip

log = logging.getLogger(__name__)

MOVE = Binding.Group("Move", compact=True)
#: After the follow loop fails, how long to wait before starting it again (doubling up to the max).
FOLLOW_RETRY_SECONDS = (2.0, 60.0)
#: Longer project names are cut in the header (Gemini names projects by a 64-digit hash).
TITLE_PROJECT_MAX = 28
#: Below this many columns the session list moves on top and the totals get compact.
NARROW_BELOW = 90
#: From this many columns the session list grows with the terminal (names are cut less).
XWIDE_FROM = 150


class FilterInput(Input):
    """The `/` filter: typing filters live; Up/Down still move the list; Enter or Esc leave it."""

    BINDINGS = [
        Binding("down", "app.select_next", "Next session", id="filter.next", show=False),
        Binding("up", "app.select_previous", "Previous session", id="filter.previous", show=False),
        Binding("escape", "app.clear_filter", "Clear filter", id="filter.clear"),
    ]


class TokwatchApp(App[None]):
    """`tokwatch [PATHS...]`: every agent session, the selected one in detail, live."""

    CSS_PATH = ["app.tcss", "insights.tcss"]  # (both at start: opening the insights view re-styles nothing)
    TITLE = "tokwatch"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide"), (XWIDE_FROM, "-xwide")]
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("a", "toggle_active", "Active", id="toggle_active"),
        # priority: handled as the key arrives, so the box has the focus before the letters typed
        # right after it (`/gem` comes from the terminal in one burst) are handed out
        Binding("slash", "filter", "Filter", id="filter", key_display="/", priority=True),
        Binding("e", "export", "Export", id="export"),
        Binding("i", "insights", "Insights", id="insights"),
        # only while a project or session chosen in the insights view is shown (see check_action)
        Binding("escape", "insights_back", "Back to insights", id="insights_back", show=False),
        Binding("exclamation_mark", "skipped", "Skipped lines", id="skipped", key_display="!", show=False),
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
        tz: tzinfo | None = None,
        config_path: Path | None = None,
    ) -> None:
        """`clock` is "now" in unix seconds: injectable so tests and snapshots never read the wall clock.

        `tz` is the zone "today" is cut in (None: the machine's local zone, as `tokwatch report`).
        `config_path` is where a theme picked in the palette is remembered (None: nowhere).
        """
        super().__init__()
        self.engine = engine
        self.store = engine.store
        self.config = config or Config()
        self.config_path = config_path
        self.export_dir = Path(export_dir) if export_dir is not None else Path.cwd()
        self.demo = demo
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.tz = tz
        self.loaded = False
        #: the newest CSV written by `e` (None before the first)
        self.last_export: Path | None = None
        self._stop = threading.Event()
        #: today and the running block, as last computed (None until the history is in)
        self.usage: Usage | None = None
        #: which budget crossings were announced (each once per day, block or session)
        self.alarm = BudgetAlarm()
        #: malformed log lines skipped so far, as the header shows them
        self.skipped_lines = 0
        self._usage_running = False
        self._usage_pending = False
        self._usage_failed = False
        #: when the day or the running block ends: the clock then asks for fresh usage
        self._usage_expires = math.inf
        #: the insights view (`i`), made on first use and kept, with its range, tab and cursor
        self._insights: InsightsScreen | None = None
        #: True while the dashboard shows what was chosen in the insights view (Esc goes back)
        self._drilled = False

    # ------------------------------------------------------------------ layout
    @property
    def _main(self) -> Screen:
        """The dashboard screen, even while help or the command palette is on top of it."""
        return self.screen_stack[0]

    def compose(self) -> ComposeResult:
        yield Header(icon="◔")
        yield TodayStrip(self.clock, self.config.budgets.agents, id="strip")
        yield LimitsPanel(self.store.ledger, self.clock, self.config.limits, id="limits")
        with Container(id="body"):
            with Vertical(id="side"):
                yield FilterInput(placeholder="filter: project or model", id="filter", compact=True)
                yield Static(Text("Reading history…"), id="loading-label")
                yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="loading")
                yield SessionList(self.store, self.clock, self.config.active_minutes, id="sessions")
            yield Detail(self.store, self.clock, id="detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._update_sub_title()
        self._main.query_one(Detail).set_empty_text(self._empty_text())
        self._main.query_one(Detail).show(None)
        self._update_side_title()
        self._main.query_one(SessionList).focus()
        self.set_interval(self.tick_seconds, self._tick, name="clock")
        self._trap_signals(True)
        self._apply_theme()
        # after the first frame: reading history (a thread, but it holds the GIL for long
        # stretches) must not hold back the first paint
        self.call_after_refresh(self._run_engine)

    def _apply_theme(self) -> None:
        """The theme remembered in the config; from then on, the one picked is remembered."""
        wanted = self.config.theme
        if wanted and wanted in self.available_themes:
            self.theme = wanted
        elif wanted:
            self.notify(f"Unknown theme {wanted!r} in the config", severity="warning", markup=False)
        self.watch(self, "theme", self._remember_theme, init=False)

    def _remember_theme(self, theme: str) -> None:
        if self.config_path is None or theme == self.config.theme:
            return
        path = self.config_path
        try:
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            path.parent.mkdir(parents=True, exist_ok=True)
            export.write_atomic(path, with_top_level_key(text, "theme", theme))
        except (OSError, UnicodeDecodeError) as e:
            self.notify(f"Could not save the theme in {path}: {e}", severity="warning", markup=False)
            return
        self.config.theme = theme

    def _trap_signals(self, on: bool) -> None:
        """SIGTERM and SIGHUP (`kill`, systemd, a closed terminal) quit like `q`: the engine thread
        stops and the terminal is restored (every batch is already in the ledger: nothing is lost)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                if on:
                    loop.add_signal_handler(sig, self._quit_on_signal)
                else:
                    loop.remove_signal_handler(sig)

    def _quit_on_signal(self) -> None:
        self._stop_engine()
        self.exit()

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header: the selected session, plus discreet `demo` and `⚠ N skipped` marks (all literal)."""
        content = Content(title)
        if sub_title:
            content = Content.assemble(content, ("  ", ""), (sub_title, "dim italic"))
        return content

    def on_resize(self, event: events.Resize) -> None:
        """A tighter footer when narrow, so every key of ours still fits in 60 columns."""
        try:
            footer = self._main.query_one(KeyFooter)
        except (NoMatches, IndexError):
            return
        footer.compact = event.size.width < NARROW_BELOW
        footer.show_command_palette = event.size.width >= NARROW_BELOW  # ctrl+p still works
        self._update_title()

    @on(SessionList.Relayout)
    def _sessions_relayout(self) -> None:
        self._update_side_title()

    # ------------------------------------------------------------------ engine
    @work(thread=True, exclusive=True, exit_on_error=False, group="engine", name="engine")
    def _run_engine(self) -> None:
        """Backfill with throttled progress, then follow until `_stop` (set on unmount and on quit).

        Nothing here fails silently or leaves a dead screen: a failed backfill is said on screen,
        logged with its traceback, and the follow loop (whose first rescan reads every file not
        read yet) takes over; a failed follow loop is said, logged and started again.
        """

        def progress(p: Progress) -> None:
            self.post_message(LoadProgress(p.files_done, p.files_total, p.bytes_done, p.bytes_total))

        self.engine.on_problem = self._engine_problem
        try:
            self.engine.backfill(progress)
        except Exception as e:
            log.exception("reading history failed")
            self._engine_problem(
                f"Reading history failed ({logs.one_line(e)}); reading the logs again one by one"
            )
        finally:
            self.post_message(LoadDone())  # even after an error: show what was read
        delay = FOLLOW_RETRY_SECONDS[0]
        while not self._stop.is_set():
            try:
                self.engine.follow(self._stop, self._follow_changes)
            except Exception as e:
                log.exception("following the logs failed")
                self._engine_problem(
                    f"Following the logs failed ({logs.one_line(e)}); trying again in {delay:.0f} s"
                )
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, FOLLOW_RETRY_SECONDS[1])

    def _engine_problem(self, text: str) -> None:
        """Called on the engine thread: shown on the UI thread (details in the log file)."""
        self.post_message(Problem(text))

    def on_problem(self, message: Problem) -> None:
        where = logs.current()
        detail = f"\nDetails: {where}" if where is not None else ""
        self.notify(clean(message.text) + detail, title="Problem", severity="error", timeout=30, markup=False)

    def _follow_changes(self, changes: Changes) -> None:
        """Called on the worker thread once a batch is recorded: hand it over, touch no widget."""
        self.post_message(ChangesArrived(changes))

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
        skips = self._skips()
        self._update_skips(skips)
        if skips:
            files = sum(1 for n in skips.values() if n)
            self.notify(
                f"Skipped {sum(skips.values())} malformed lines in {files} files"
                f" (press {self._bound_key('skipped', '!')} for the list)",
                severity="warning",
                markup=False,
            )
        self._seed_session_alarms()
        self._request_usage()
        self._main.query_one(LimitsPanel).request()
        insights = self._insights_view()
        insights.data_changed(None)  # (opened while history was read: count it all again)
        insights.count_ahead()  # (not opened yet: count now, so the first `i` shows numbers at once)

    def on_changes_arrived(self, message: ChangesArrived) -> None:
        """One recorded batch: update only what it changed."""
        if self._stop.is_set():
            return
        changes = message.changes
        self._update_skips()
        if not changes:
            return
        if changes.limits:
            self._main.query_one(LimitsPanel).request()
        with self.batch_update():
            self._main.query_one(SessionList).sync(changes.sessions)
            detail = self._main.query_one(Detail)
            if detail.key in changes.sessions or detail.key in changes.compactions:
                detail.update_session()
            self._update_side_title()
        self._check_session_budgets(changes.sessions)
        self._request_usage()
        if self._insights is not None:
            dated = [c.turn.timestamp for c in changes.turns if c.turn.timestamp > 0]
            self._insights.data_changed(min(dated) if dated else math.inf)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """Worker failures surface here, in one place (exit_on_error=False keeps the app up)."""
        if event.worker.group == "engine" and event.state is WorkerState.ERROR:
            error = event.worker.error
            log.error("the engine thread failed", exc_info=error)
            self.post_message(
                Problem(f"Reading logs stopped ({logs.one_line(error) if error else 'unknown error'})")
            )
        elif event.worker.group == "usage" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._usage_running = False
            if event.state is WorkerState.ERROR and not self._usage_failed:
                self._usage_failed = True  # said once: the next batch tries again anyway
                self.notify(
                    clean(f"Counting today's usage failed: {event.worker.error}"),
                    severity="error",
                    markup=False,
                )

    # ------------------------------------------------------------------ today, block, budgets
    def _request_usage(self) -> None:
        """Recompute today and the running block off the UI thread; one run at a time, coalesced."""
        if not self.loaded or self._stop.is_set():
            return
        if self._usage_running:
            self._usage_pending = True
            return
        self._usage_running, self._usage_pending = True, False
        chain_from = self.usage.last_start if self.usage is not None else None
        self._compute_usage(self.clock(), chain_from)

    @work(thread=True, exclusive=True, exit_on_error=False, group="usage", name="usage")
    def _compute_usage(self, now: float, chain_from: float | None) -> None:
        """On a worker thread: `current_usage` reads the store under its lock; post the result."""
        usage = budgets.current_usage(
            self.store, now, self.tz, agents=self.config.budgets.agents, chain_from=chain_from
        )
        if not get_current_worker().is_cancelled:
            self.post_message(UsageComputed(usage))

    def on_usage_computed(self, message: UsageComputed) -> None:
        self._usage_running = False
        if self._stop.is_set():
            return
        u = self.usage = message.usage
        states = u.states(self.config.budgets)  # daily and block (a session budget needs a session)
        try:
            self._main.query_one(TodayStrip).set(u, states)
        except NoMatches:
            return
        day_end = budgets.day_bounds(u.now, self.tz)[2]
        self._usage_expires = min(day_end, u.block.end if u.block is not None else math.inf)
        periods = budgets.period_keys(u)
        self._announce(
            self.alarm.check({n: (periods[n], st) for n, st in states.items() if n in ("daily", "block")})
        )
        if self._usage_pending:
            self._request_usage()

    def _session_states(self, sessions: Iterable[Session]) -> Iterable[tuple[Session, BudgetState]]:
        limit = self.config.budgets.session
        if limit is None:
            return
        for s in sessions:
            yield s, budgets.evaluate("session", limit, s.totals)

    def _check_session_budgets(self, keys: Iterable[SessionKey]) -> None:
        """The sessions a batch changed: announce each one's first 80% and 100% of the session budget."""
        if self.config.budgets.session is None:
            return
        crossings: list[tuple[Crossing, Session]] = []
        with self.store.lock:
            changed = [s for k in keys if (s := self.store.sessions.get(k)) is not None]
            for s, st in self._session_states(changed):
                crossings += [(c, s) for c in self.alarm.check({"session": (_period(s), st)})]
        for c, s in crossings:
            self._announce([c], s)

    def _seed_session_alarms(self) -> None:
        """History is in: active sessions already past a threshold are announced, older ones never."""
        if self.config.budgets.session is None:
            return
        now, minutes = self.clock(), self.config.active_minutes
        with self.store.lock:
            sessions = list(self.store.sessions.values())
        active = [s for s in sessions if fmt.is_active(s, now, minutes)]
        for s, st in self._session_states(s for s in sessions if not fmt.is_active(s, now, minutes)):
            self.alarm.check({"session": (_period(s), st)})  # remembered, not said
        self._check_session_budgets(s.key for s in active)

    def _announce(self, crossings: list[Crossing], session: Session | None = None) -> None:
        """A notification (literal text) and the terminal bell for each new crossing."""
        for c in crossings:
            title = "Budget"
            if session is not None:
                title = f"Budget · {clean(session.agent)} · {fmt.project_name(session.project)}"
            self.notify(
                c.message(),
                title=title,
                severity="error" if c.threshold >= 100 else "warning",
                timeout=10,
                markup=False,
            )
            self.bell()

    # ------------------------------------------------------------------ skipped lines
    def _skips(self) -> dict[Path, int]:
        """A copy of the engine's skipped-line counts (the engine thread may be adding to them)."""
        for _ in range(3):
            try:
                return {p: n for p, n in dict(self.engine.skips.by_file).items() if n}
            except RuntimeError:  # changed size during the copy: try again
                continue
        return {}

    def _update_skips(self, skips: dict[Path, int] | None = None) -> None:
        n = sum((self._skips() if skips is None else skips).values())
        if n != self.skipped_lines:
            self.skipped_lines = n
            self._update_sub_title()

    def _update_sub_title(self) -> None:
        parts = ["demo"] if self.demo else []
        if self.skipped_lines:
            parts.append(f"⚠ {self.skipped_lines:,} skipped")
        self.sub_title = "  ".join(parts)

    def _stop_engine(self) -> None:
        self._stop.set()

    def on_unmount(self) -> None:
        self._stop_engine()
        self._trap_signals(False)

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
                short = fmt.short_id(s.session_id)
                # The project gives way first: agent and the 8-character id always fit whole
                # (the header also holds the clock, the subtitle and the loading spinner).
                agent = clean(s.agent)
                room = self.size.width - len(agent) - len(short) - len(self.sub_title) - 28
                limit = max(6, min(TITLE_PROJECT_MAX, room))
                name = fmt.project_name(s.project)
                if len(name) > limit:
                    name = name[: limit - 1] + "…"
                self.title = f"{agent} · {name} · {short}"

    def _update_side_title(self) -> None:
        sessions = self._main.query_one(SessionList)
        side = self._main.query_one("#side")
        side.border_title = "Active sessions" if sessions.active_only else "Sessions"
        if sessions.project is not None:
            side.border_title += f" · {fmt.project_name(sessions.project)}"
        total = len(self.store.sessions)
        side.border_subtitle = f"{sessions.shown} of {total}" if sessions.shown != total else f"{total}"

    def _tick(self) -> None:
        if self._stop.is_set() or not self.screen_stack:
            return  # quitting: the widgets may already be gone
        try:
            sessions, detail = self._main.query_one(SessionList), self._main.query_one(Detail)
            strip = self._main.query_one(TodayStrip)
            panel = self._main.query_one(LimitsPanel)
        except NoMatches:
            return
        with self.batch_update():
            sessions.tick()
            detail.tick()
            strip.tick()
            panel.tick()
        self._update_skips()
        if self.loaded and self.clock() >= self._usage_expires:
            self._usage_expires = math.inf  # asked once; the result sets the next expiry
            self._request_usage()

    def _empty_text(self) -> Text:
        if not self.loaded:
            return Text("Reading history…", style="dim")
        roots = "\n".join(f"  {clean(str(r))}" for r in self.engine.roots)
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`/` opens the filter only on the dashboard itself, and is a plain character in the
        filter box and in other screens' inputs (the command palette). Esc goes back to the
        insights view only after a drill-down, from the dashboard itself. The insights view has
        no session list: the list's keys are hidden from its footer (and left alone)."""
        if action == "insights_back":
            return self._drilled and self.screen is self._main
        if action in _DASHBOARD_ONLY and isinstance(self.screen, InsightsScreen):
            return False
        elsewhere = self.screen is not self._main or isinstance(self.focused, Input)
        return not (action == "filter" and elsewhere)

    def action_filter(self) -> None:
        """Open the filter box and focus it now: `focus()` waits its turn behind keys already
        queued, and a fast typist's first letters (`/gem`) went to the list."""
        box = self._main.query_one(FilterInput)
        box.add_class("-visible")
        self._main.set_focus(box)

    def action_clear_filter(self) -> None:
        """Esc, from the filter box or the list: no filter, every session back, the box hidden.
        After a drill-down from the insights view with no filter typed: back to that view."""
        box = self._main.query_one(FilterInput)
        if self._drilled and not box.value and not box.has_class("-visible"):
            self.action_insights_back()
            return
        box.value = ""
        box.remove_class("-visible")
        sessions = self._main.query_one(SessionList)
        if sessions.query_text:  # (the Changed event of `value = ""` comes later: refilter now)
            sessions.query_text = ""
            sessions.refilter()
            self._update_side_title()
        sessions.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        sessions = self._main.query_one(SessionList)
        text = event.value.strip()
        if text == sessions.query_text:
            return
        sessions.query_text = text
        sessions.refilter()
        if text:
            sessions.user_moved = True
            sessions.select_newest()
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
            self.notify(clean(f"Export failed: {e}"), title="Export", severity="error", markup=False)
            return
        self.last_export = path
        self.notify(clean(f"{len(rows)} rows written to {path.absolute()}"), title="Exported", markup=False)

    # ------------------------------------------------------------------ insights (`i`)
    def action_insights(self) -> None:
        """Open the insights view (made once, then kept); leaves a drill-down it opened."""
        if isinstance(self.screen, InsightsScreen):
            return
        self._undrill()
        self._insights_view()
        self.push_screen("insights")

    def _insights_view(self) -> InsightsScreen:
        if self._insights is None:
            self._insights = InsightsScreen(self.store, config=self.config, clock=self.clock, tz=self.tz)
            self.install_screen(self._insights, "insights")
        return self._insights

    @on(Drill)
    def _drill(self, event: Drill) -> None:
        """Enter in the insights view: that project's sessions, or that session, on the dashboard."""
        if isinstance(self.screen, InsightsScreen):
            self.pop_screen()
        sessions = self._main.query_one(SessionList)
        if event.project is not None:
            sessions.project = event.project
            sessions.refilter()
            sessions.user_moved = True
            if sessions.row_count:
                sessions.move_cursor(row=0, animate=False)
        if event.session is not None:
            self._show_session(sessions, event.session)
        self._drilled = True
        self._update_side_title()
        self._main.query_one(Detail).set_empty_text(self._empty_text())
        sessions.focus()

    def _show_session(self, sessions: SessionList, key: SessionKey) -> None:
        """Select a session, dropping the list's filters first if they hide it."""
        with self.store.lock:
            s = self.store.sessions.get(key)
        if s is None:
            self.notify("That session is not in the list (it was pruned).", severity="warning")
            return
        if not sessions.matches(s, self.clock()):
            sessions.project = None
            sessions.active_only = False
            box = self._main.query_one(FilterInput)
            box.value = ""
            box.remove_class("-visible")
            sessions.query_text = ""
            sessions.refilter()
        sessions.user_moved = True
        with contextlib.suppress(RowDoesNotExist):
            sessions.move_cursor(row=sessions.get_row_index(row_key(key)), animate=False)

    def _undrill(self) -> None:
        if not self._drilled:
            return
        self._drilled = False
        sessions = self._main.query_one(SessionList)
        if sessions.project is not None:
            sessions.project = None
            sessions.refilter()
            self._update_side_title()

    def action_insights_back(self) -> None:
        """Esc after a drill-down: the dashboard as it was, and the insights view again."""
        self.action_insights()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.help_keys(), self.config.active_minutes))

    def action_skipped(self) -> None:
        """`!`: the files with skipped (malformed) lines, and how many."""
        if isinstance(self.screen, SkippedScreen):
            self.screen.dismiss()
            return
        self.push_screen(SkippedScreen(self._skips()))

    def _bound(self) -> dict[str, list[str]]:
        bound: dict[str, list[str]] = {}
        for active in self.active_bindings.values():
            b = active.binding
            if b.id:
                bound.setdefault(b.id, []).append(self.get_key_display(b))
        return bound

    def _bound_key(self, binding_id: str, default: str) -> str:
        return "/".join(self._bound().get(binding_id, [default]))

    def help_keys(self) -> list[tuple[str, str]]:
        """The keys as bound right now (read from the active bindings, so a user keymap shows)."""
        bound = self._bound()

        def key(binding_id: str, default: str) -> str:
            return "/".join(bound.get(binding_id, [default]))

        move = f"{key('select_next', 'j')}/{key('select_previous', 'k')}  ↓/↑"
        return [
            (move, "next / previous session (the main pane follows)"),
            (key("toggle_active", "a"), "all sessions / active only"),
            (key("filter", "/"), "filter by project, model or agent (Enter keeps it, Esc clears)"),
            (key("export", "e"), f"write a CSV snapshot to {clean(str(self.export_dir))}"),
            (
                key("insights", "i"),
                "insights: cost over time, projects, models, cache efficiency, top sessions",
            ),
            (key("skipped", "!"), "list the log lines that could not be read, by file"),
            (key("help", "?"), "this help"),
            ("ctrl+p", "command palette: themes, export, filter…"),
            (key("quit", "q"), "quit"),
        ]

    async def action_quit(self) -> None:
        """Stop the follow loop first, so the worker thread ends and the app exits promptly."""
        self._stop_engine()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own "Keys" (its key panel) would sit beside our "Keys and legend": one is enough.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")
        yield SystemCommand(
            "Export CSV snapshot",
            f"Write tokwatch-*.csv to {clean(str(self.export_dir))}",
            self.action_export,
        )
        yield SystemCommand(
            "Toggle active sessions only", "All sessions / active only", self.action_toggle_active
        )
        yield SystemCommand("Filter sessions", "By project, model or agent", self.action_filter)
        yield SystemCommand("Keys and legend", "The help screen: every key and mark (?)", self.action_help)
        yield SystemCommand(
            "Insights",
            "Cost over time, projects, models, cache efficiency, top sessions",
            self.action_insights,
        )
        yield SystemCommand("Skipped lines", "Log lines that could not be read, by file", self.action_skipped)


#: Keys that act on the session list, not shown (nor acting) while the insights view is on top.
_DASHBOARD_ONLY = frozenset({"toggle_active", "filter", "select_next", "select_previous", "skipped"})


def _period(s: Session) -> str:
    """The `BudgetAlarm` period of a session budget: the session itself."""
    return f"{s.agent}:{s.session_id}"
