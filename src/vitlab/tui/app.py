"""The vitlab TUI: set up runs (forms, presets, a queue), watch them train live, compare the results.

Training runs in a child process (`vitlab worker`, see child.py): the UI never shares a GIL with torch,
and a run outlives the TUI (hang-up, or quit with "leave it training"). One such process is started ahead
(`--standby`: it loads torch and the engine and waits), so ctrl+r trains at once. A thread worker relays the
child's events as messages (see bridge.py). The TUI itself imports torch only for the Setup view's profiler.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pydantic import ValidationError
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.lazy import Lazy
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from ..config import ExperimentConfig, RunConfig
from ..engine.events import RunEnded, RunKept, RunStarted
from ..engine.store import resume_command
from ..engine.wire import RunNotStarted
from ..errors import CannotStart, PresetError, VitlabError
from ..presets import describe_errors, load_preset, save_preset, user_preset_dir
from ..report import EXPORTS, runs_count, seed_groups
from .bridge import EngineEvent, LiveState, QueueProblem, outcome
from .child import TrainingChild, lost_run
from .screens.dialogs import DEFAULT_EXPERIMENT, Choice, PathPrompt, default_preset_path
from .screens.presets import PresetPicker
from .settings import load_settings, save_settings
from .themes import DEFAULT_THEME, load_themes
from .views.results import ResultsView, run_key
from .views.setup import SetupView

if TYPE_CHECKING:
    from .views.live import LiveView

REFRESH_S = 1.0  # the Live view redraws at most once a second (charts, log: every 3 s): CPU for training
STANDBY_AFTER_S = 1.0  # the standby training process starts this long after the first paint


# The Derived pane's FLOPs trace a real model in this process: not above this many parameters (~0.4 GB of fp32
# weights; a patchify ViT's FLOPs then come from the closed form), so typing a big size never costs gigabytes.
TRACE_LIMIT = 100_000_000


def default_profiler(cfg: RunConfig):
    from ..engine.profile import profile_run  # imports torch: only ever called from a worker thread

    return profile_run(cfg, trace_limit=TRACE_LIMIT)


class VitlabApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "vitlab"
    WIDE_COLUMNS = 110  # from here on, the Setup form and sidebar widen
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", priority=True, tooltip="Train the queue (or the form when the queue is empty)"),
        Binding("ctrl+x", "cancel", "Cancel", priority=True, tooltip="Cancel the current run (asks first)"),
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Save the queue as a preset YAML"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "show('setup')", "Setup", show=False),
        Binding("f2", "show('live')", "Live", show=False),
        Binding("f3", "show('results')", "Results", show=False),
        Binding("escape", "hide_help_panel", "Hide keys", show=False),  # the palette's "Show keys" panel
        # the Live view's tabs at 80x24 (wide terminals show every pane): shown in the footer only then
        Binding("1", "live_tab('tab-loss')", "Loss"),
        Binding("2", "live_tab('tab-accuracy')", "Accuracy"),
        Binding("3", "live_tab('tab-log')", "Log"),
    ]

    def __init__(self, preset: Path | None = None, runs_dir: Path = Path("runs"), *,
                 profiler: Callable[[RunConfig], Any] | None = default_profiler, standby: bool = True) -> None:
        super().__init__()
        self.preset = preset
        self.runs_dir = Path(runs_dir)
        # removed on the way out when they hold nothing: a session that trained nothing leaves no folders behind
        self._made_dirs = [d for d in (self.runs_dir / ".tui", self.runs_dir) if not d.exists()]
        self.profiler = profiler
        self.state = LiveState()
        self.experiment_name = ""
        self.experiment_description = ""
        self.written_paths: set[Path] = set()  # presets and exports this session wrote: replaced unasked
        self.running = False
        self.child: TrainingChild | None = None  # the training process of the queue in progress
        # a `vitlab worker --standby` with torch loaded, so ctrl+r trains at once instead of in ~4 s
        self.standby_wanted = standby
        self.standby: TrainingChild | None = None
        self._quit_pending = False
        self._cancel_asked: tuple[Choice, str] | None = None  # the open "Cancel the run?" dialog and its run
        self.nproc = 1  # processes of the queue training (or last trained)
        self._last_ended: dict[str, Any] | None = None  # the summary of the queue's last run that ended
        themes, self.theme_problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self._setup = SetupView(self.profiler, id="setup-view")
        self._live: LiveView | None = None  # built after the first paint: its charts' imports are slow
        self._results = ResultsView(self.runs_dir, id="results-view")
        self.saved_theme = load_settings().get("theme")
        self.theme = self.saved_theme if self.saved_theme in self.available_themes else DEFAULT_THEME

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Plain text, always (widgets' notify asks for markup too): vitlab's messages quote run names, paths
        and errors, whose brackets are not markup (`[type=...]` in an error used to crash the app)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The view keys are priority bindings, so they would reach through a dialog: ctrl+r in the Save dialog
        # started a training behind it, ctrl+x twice stacked two cancel dialogs. ctrl+q still quits.
        if action in ("run", "cancel", "save", "show", "presets", "export") and isinstance(self.screen, ModalScreen):
            return False
        if action == "live_tab":  # not under a dialog: the keys would switch tabs behind it
            return (self.views.active == "live" and self.live_ready and not self.live.wide
                    and not isinstance(self.screen, ModalScreen))
        return True

    async def on_event(self, event: events.Event) -> None:
        """Keys in the order they were typed. Textual gives a printable key to the focused Input at once but runs a
        bound key (End, Backspace, ctrl+u, Tab, ctrl+o, ...) only once it has bubbled back up to the app, so keys
        arriving faster than the app handles them (its busy first second, keystrokes replayed over SSH) landed out
        of order: "End x" as "x End", a digit typed after Tab in the field Tab left (textual#6605). A focused
        Input's keys are handled here one after another instead: a bound key by the focus chain's bindings, as its
        bubbling would end, a printable one by the Input. Another focused widget takes the keys it was sent
        before a Tab moves the focus on."""
        if isinstance(event, events.Key) and not event.is_forwarded and not self.screen.maximized:
            focused = self.focused
            if isinstance(focused, Input):
                self.app_focus = True
                if not await self._check_bindings(event.key, priority=True):
                    if event.is_printable:
                        await focused._on_key(event)  # what Input does with it (types it, or replaces the selection)
                    elif not await self._check_bindings(event.key):
                        focused._forward_event(event)  # nobody binds it: Textual's own way
                return
            if event.key in ("tab", "shift+tab") and focused is not None:
                await caught_up(focused)
                if self.focused is focused and (await self._check_bindings(event.key, priority=True)
                                                or await self._check_bindings(event.key)):
                    self.app_focus = True
                    return
        await super().on_event(event)

    def action_live_tab(self, tab: str) -> None:
        self.live.show_tab(tab)

    def action_show_help_panel(self) -> None:
        super().action_show_help_panel()
        # at 80 columns the panel's 30 beside form and queue left the form 14: the queue makes way meanwhile
        self._setup.add_class("-keys")

    def action_hide_help_panel(self) -> None:
        super().action_hide_help_panel()
        self._setup.remove_class("-keys")

    def action_help_quit(self) -> None:
        """ctrl+c, pressed to quit out of habit: say which key quits (Textual's hint is markup, see notify)."""
        keys = [key for key, active in self.active_bindings.items() if active.binding.action in ("quit", "app.quit")]
        if keys:
            self.notify(f"Press {keys[0]} to quit the app", title="Do you want to quit?")

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # classed before mounting: switching it after the first resize would restyle the whole form
        self._setup.set_class(self.size.width >= self.WIDE_COLUMNS, "-wide")
        yield Header(show_clock=False, icon="◆")
        with TabbedContent(id="views", initial="setup"):
            with TabPane("Setup F1", id="setup"):
                yield self._setup
            with TabPane("Live F2", id="live"):
                pass  # the Live view mounts after the first paint (see on_mount)
            with TabPane("Results F3", id="results"):
                yield Lazy(self._results)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = DEFAULT_EXPERIMENT
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.screen_change_signal.subscribe(self, self._footer_for)
        for problem in self.theme_problems:
            self.notify(problem, title="Theme not loaded", severity="warning")
        if self.preset is not None:
            self.load_preset_file(self.preset)
        self._redraw_timer = self.set_interval(REFRESH_S, self._tick, pause=True)  # runs while Live shows
        self.call_after_refresh(self._mount_live)

    def _footer_for(self, screen: Screen) -> None:
        """No footer under a dialog: it listed the keys of the view behind it (ctrl+n Add run under Save), which do
        nothing there; a dialog says its own keys."""
        self._setup.screen.query_one(Footer).display = not isinstance(screen, ModalScreen)

    def _mount_live(self) -> None:
        from .views.live import LiveView

        self._live = LiveView(self.state, id="live-view")
        self.query_one("TabPane#live").mount(self._live)
        self.set_timer(STANDBY_AFTER_S, self._keep_standby)

    def _keep_standby(self) -> None:
        """Have a standby training process ready (not while a queue trains: its loading would slow training)."""
        if not self.standby_wanted or self.running:
            return
        if self.standby is not None:
            if self.standby.proc.poll() is None:
                return
            self.standby.dismiss()  # it died: reap it (its log stays when it says why)
        try:
            self.standby = TrainingChild.standby(self.runs_dir)
        except OSError:  # an unwritable runs dir: ctrl+r says so when it is pressed
            self.standby = None

    def on_unmount(self) -> None:
        if self.standby is not None:
            self.standby.dismiss()
        for folder in self._made_dirs:  # RUNS_DIR/.tui, then RUNS_DIR: rmdir leaves one that holds something
            with contextlib.suppress(OSError):
                folder.rmdir()

    def on_resize(self, event) -> None:
        wide = event.size.width >= self.WIDE_COLUMNS
        if self.setup.has_class("-wide") != wide:  # only restyle on a real change of layout
            self.setup.set_class(wide, "-wide")
        if self.live_ready:
            self.live.fit(event.size.width, event.size.height)

    @property
    def views(self) -> TabbedContent:
        """The Setup/Live/Results tabs (looked up from the main screen, even under a dialog)."""
        return self._setup.screen.query_one("#views", TabbedContent)

    @property
    def setup(self) -> SetupView:
        return self._setup

    @property
    def live(self) -> LiveView | None:
        return self._live

    @property
    def live_ready(self) -> bool:
        return self._live is not None and self._live.is_mounted

    @property
    def results(self) -> ResultsView:
        return self._results

    def left_training(self) -> list[str]:
        """Runs an earlier vitlab left training (Results follows them; Live shows this session's runs only)."""
        return [f"{s.get('experiment')}/{s.get('name')}" for s in self._results.history
                if s.get("status") == "running" and not self._results.of_session(s)]

    def _remember_theme(self, theme) -> None:
        if theme.name != self.saved_theme:
            self.saved_theme = theme.name
            save_settings(theme=theme.name)

    def _tick(self) -> None:
        if self.live_ready:
            self.live.redraw()

    # -- views ------------------------------------------------------------------------------------
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id != "views":
            return
        self.refresh_bindings()  # the Live tabs' keys come and go with the view
        if event.pane.id == "live":
            self._redraw_timer.resume()
            if self.live_ready:
                self.live.redraw(force=True)
        else:
            self._redraw_timer.pause()  # no drawing, nor waking up, for a hidden view
        if event.pane.id == "setup":
            self.call_after_refresh(self.setup.show_focused)  # laid out by then (F1 focuses before that)
        if event.pane.id == "results" and self.results.is_mounted:
            self.results.reload()  # runs on disk move on without us (left training, another terminal)

    def action_show(self, tab: str) -> None:
        self.views.active = tab
        if tab == "setup":
            self.setup.focus_last()
        elif tab == "results":
            for table in self.results.query("#results-table"):  # none yet before its lazy mount
                table.focus()

    # -- presets ------------------------------------------------------------------------------------
    def load_preset_file(self, path: Path) -> bool:
        try:
            exp = load_preset(path)
        except PresetError as e:
            self.notify(str(e), title="Preset not loaded", severity="error", timeout=15)
            return False
        self.setup.load_experiment(exp)
        self.experiment_name, self.experiment_description = exp.name, exp.description
        self.sub_title = exp.name
        self.notify(f"{runs_count(len(exp.runs))} queued from {path}", title=exp.name)
        return True

    def action_presets(self) -> None:
        if self.running:
            self.notify("A run is training; load presets when the queue is done.", severity="warning")
            return

        def load(path: Path) -> None:
            self.load_preset_file(path)
            self.action_show("setup")

        def done(path: Path | None) -> None:
            if path is None:
                return
            if not self.setup.unsaved:
                load(path)
                return
            self.push_screen(Choice("Replace the queue?", f"{self.setup.unsaved_text()} (ctrl+s saves it); loading "
                                    f"{path.name} replaces the queue.",
                                    [("replace", "Replace it", "error"), ("back", "Back", "default")]),
                             lambda answer: answer == "replace" and load(path))

        self.push_screen(PresetPicker(), done)

    def action_save(self, then: Callable[[], None] | None = None) -> None:
        """Save the queue as a preset; `then` runs once it is saved (quitting: "Save and quit…")."""
        setup = self.setup
        if not setup.queue and setup.config is None:
            self.notify("Nothing to save: the queue is empty and the form has errors.", severity="error")
            return
        if setup.refuse_stale_edit("Not saved"):
            return
        name = self.experiment_name or DEFAULT_EXPERIMENT
        initial_path = default_preset_path(user_preset_dir(), name)
        n = len(setup.queue)
        what = f"the queue ({runs_count(n)})" if n else "the form (one run)"

        def target(values: dict) -> Path:
            return Path(values["path"] or default_preset_path(user_preset_dir(), values["name"])).expanduser()

        warned: set[Path] = set()

        def check(values: dict) -> str | None:
            """Wrong input keeps the dialog and what was typed; replacing a file takes a second Save."""
            try:
                self.setup.experiment(values["name"], values["description"])
            except ValidationError as e:
                return describe_errors(e, {"name": "Experiment name", "description": "Description"})
            return self.replace_check(target(values), warned, "Save")

        prompt = PathPrompt("Save as a preset", [("name", "Experiment name", name),
                                                 ("description", "Description", self.experiment_description),
                                                 ("path", "File", initial_path)],
                            note=f"Saves {what}. It loads back with `vitlab FILE` or ctrl+o.", check=check,
                            follows=("name", "path", lambda typed: default_preset_path(user_preset_dir(), typed)))

        def saved(values: dict | None) -> None:
            if values and self.save_queue(target(values), values["name"], values["description"]) and then:
                then()

        self.push_screen(prompt, saved)

    def replace_check(self, path: Path, warned: set[Path], verb: str) -> str | None:
        """A file this session did not write is replaced only when asked twice (a dialog shows the message)."""
        if path.exists() and path not in self.written_paths | warned:
            warned.add(path)
            return f"{path} exists: {verb} again to replace it."
        return None

    def save_queue(self, path: Path, name: str, description: str = "") -> Path | None:
        try:
            exp = self.setup.experiment(name, description)
            save_preset(exp, path)
        except ValidationError as e:
            self.notify(describe_errors(e), title="Not saved", severity="error", timeout=10)
            return None
        except OSError as e:
            self.notify(f"{path}: {e.strerror or e}", title="Not saved", severity="error", timeout=10)
            return None
        self.experiment_name, self.experiment_description = exp.name, exp.description
        self.sub_title = exp.name
        self.written_paths.add(path)
        self.setup.keep_queue()
        self.notify(f"Saved {runs_count(len(exp.runs))} to {path}", title="Preset saved")
        return path

    # -- results export ----------------------------------------------------------------------------
    def action_export(self, fmt: str = "md") -> None:
        """Ask for the file (`fmt` gives its extension), and before replacing one this session did not write (the
        palette's exports wrote at once: a comparison.csv edited by hand was lost)."""
        warned: set[Path] = set()

        def check(values: dict) -> str | None:
            if not values["path"].strip():
                return "File: give a file name ending in .md, .csv or .json"
            path = Path(values["path"]).expanduser()
            if path.suffix.lower().removeprefix(".") not in EXPORTS:
                return f"{path.name}: name a .md, .csv or .json file"
            if not path.parent.is_dir():  # a typo made the folders it named
                return f"{path.parent}: no such folder"
            return self.replace_check(path, warned, "Export")

        prompt = PathPrompt("Export the comparison", [("path", "File (.md, .csv or .json)",
                                                       str(self.runs_dir / f"{self.results.export_stem}.{fmt}"))],
                            ok="Export", note="A Markdown table; CSV or JSON (as `vitlab compare`) with raw numbers",
                            check=check)
        self.push_screen(prompt, lambda v: v and self.export_results(Path(v["path"]).expanduser()))

    def action_results_by_seed(self) -> None:
        self.action_show("results")
        self.results.action_by_seed()

    def export_results(self, path: Path) -> None:
        try:
            self.results.export(path)
        except OSError as e:
            self.notify(f"{path}: {e.strerror or e}", title="Not exported", severity="error")
            return
        self.written_paths.add(path)
        self.notify(f"Wrote {path}", title="Comparison exported")

    # -- training -----------------------------------------------------------------------------------
    def action_run(self) -> None:
        if self.running:
            self.notify("Already training; ctrl+x cancels.", severity="warning")
            return
        setup = self.setup
        if setup.nproc_problem:
            self.notify(setup.nproc_problem, title="Not started", severity="error")
            self.views.active = "setup"
            setup.query_one("#nproc").focus()
            return
        result = setup.form.check()
        if result.config is None:
            self.notify(f"The form has errors: {setup.form_problem()}", title="Not started", severity="error")
            self.views.active = "setup"
            if (first := setup.form.first_error()) and first[0] is not None:
                first[0].focus()  # taken to the field that is wrong
            return
        try:
            exp = setup.experiment(self.experiment_name or DEFAULT_EXPERIMENT, self.experiment_description)
        except ValidationError as e:  # the queue as a whole (its runs' names, say): named as the save dialog does
            self.notify(describe_errors(e), title="Not started", severity="error")
            return
        self.offer_continue(exp, setup.nproc)

    def offer_continue(self, exp: ExperimentConfig, nproc: int) -> None:
        """Runs of this queue that finished or stopped earlier with the same settings: ask whether to keep and
        resume them (`vitlab run --continue`) or train everything again."""
        from ..engine.continuation import plan

        try:
            steps = plan(exp, self.runs_dir, nproc)
        except CannotStart:  # one is training elsewhere: nothing to continue, training afresh is allowed
            steps = []
        kinds = [how if how != "keep" or earlier["status"] == "finished" else "failed" for how, earlier, _ in steps]
        kept, failed, resumed = kinds.count("keep"), kinds.count("failed"), kinds.count("resume")
        if not kept and not resumed and not failed:
            self.start(exp, nproc)
            return
        rest = len(steps) - kept - failed - resumed
        done = [f"{kept} finished" if kept else "", f"{failed} failed on a non-finite loss" if failed else "",
                f"{resumed} stopped part-way" if resumed else ""]
        does = [d for d in (
            kept and f"keeps the finished {'one' if kept == 1 else 'ones'}",
            failed and f"keeps the failed {'one' if failed == 1 else 'ones'} (the same settings would fail again)",
            resumed and ("resumes the stopped one from its checkpoint" if resumed == 1 else
                         "resumes the stopped ones from their checkpoints"),
            rest and f"trains the {'other one' if rest == 1 else f'other {rest}'}") if d]
        message = (f"Of this queue's {runs_count(len(exp.runs))}, {join_and([d for d in done if d])} earlier with the "
                   f"same settings (in {self.runs_dir / exp.name}). Continue {join_and(does)}.")
        title, answers = "Continue where it stopped?", [("continue", "Continue", "primary")]
        if not resumed and not rest:  # Continue would start a process to train nothing
            title = "Nothing left to train"
            ended = join_and([d for d in done if d])
            message = (f"Every run of this queue ended earlier with the same settings ({ended}, in "
                       f"{self.runs_dir / exp.name}): Results shows them; Train all again trains them anew.")
            answers = [("results", "Show results", "primary")]
        answers += [("again", "Train all again", "default"), ("back", "Back", "default")]

        def answered(answer: str | None) -> None:
            if answer == "results":
                self.action_show("results")
            elif answer in ("continue", "again") and not self.running:
                self.start(exp, nproc, resume_earlier=answer == "continue")

        self.push_screen(Choice(title, message, answers), answered)

    def resume(self, run_dir: Path, nproc: int = 1) -> None:
        """Continue a run of the Results view in a fresh training process (nproc: as many as it trained on),
        shown in the Live view like a queue of one; the engine says why when there is nothing to resume
        (finished, still training, ...)."""
        if self.running:
            self.notify("Already training; resume it when the queue has ended.", severity="warning")
            return
        from ..engine.resumable import run_config

        try:
            cfg = run_config(run_dir)
        except VitlabError as e:  # the file, the line, the field: a type's name told nothing
            self.notify(str(e), title="Not resumed", severity="error")
            return
        self.start(ExperimentConfig(name=run_dir.parent.name, runs=[cfg]), nproc, resume_dir=run_dir)

    def start(self, exp: ExperimentConfig, nproc: int = 1, resume_dir: Path | None = None,
              resume_earlier: bool = False) -> None:
        from ..config import run_label

        try:
            child = self._take_standby(exp, resume_earlier) if nproc == 1 and resume_dir is None else None
            child = child or TrainingChild.start(exp, self.runs_dir, nproc, resume_dir, resume_earlier)
        except OSError as e:
            self.notify(f"{self.runs_dir}: cannot write here ({e.strerror or e}); choose a writable --runs-dir",
                        title="Not started", severity="error", timeout=15)
            return
        self.running, self.child, self._quit_pending, self._last_ended = True, child, False, None
        self.nproc = nproc
        self.setup.keep_queue()  # each run's config.yaml and the experiment in RUNS_DIR/.tui/ keep it now
        self.setup.keep(exp.runs)  # the form's run trained alone, or the seeds' copies
        self.setup.refresh_target()
        self.state.start_queue([r.name for r in exp.runs], [run_label(r) for r in exp.runs])
        self.state.add_log("dim", f"training process {child.pid}" + (f" ({nproc} processes)" if nproc > 1 else "")
                           + f", log {child.log_path}")
        self.views.active = "live"
        if self.live_ready:  # else it draws the state when it mounts
            self.live.redraw(force=True)
            self.live.show_tab("tab-loss")
        self.train_queue(child, exp)

    def _take_standby(self, exp: ExperimentConfig, resume_earlier: bool = False) -> TrainingChild | None:
        standby, self.standby = self.standby, None
        if standby is None:
            return None
        taken = False
        try:
            taken = standby.take(exp, self.runs_dir, resume_earlier)
        finally:
            if not taken:  # it died meanwhile (a fresh process trains), or the experiment file can't be written
                standby.dismiss()
        return standby if taken else None

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def train_queue(self, child: TrainingChild, exp: ExperimentConfig) -> None:
        """Relay the child's events to the UI thread until it ends, or until the app lets go (quit: it trains on)."""
        worker = get_current_worker()
        current: RunStarted | None = None  # the run being trained, until its final event
        left = [r.name for r in exp.runs]  # runs without a final event yet
        said_why = False  # the child reported why it stops (a run that could not start)
        started = False  # a run of it started (or was kept)
        for batch in child.batches(lambda: worker.is_cancelled):
            events = [m for m in batch if not isinstance(m, RunNotStarted)]
            if events:
                self.post_message(EngineEvent(*events))
            for message in batch:
                if isinstance(message, RunNotStarted):  # the child's last word: it stops after it
                    self.post_message(QueueProblem(message.run, message.message))
                    said_why = True
                elif isinstance(message, RunStarted):
                    current, started = message, True
                elif isinstance(message, RunEnded):
                    current, started = None, True
                    left.remove(message.run)
                    self._last_ended = message.summary  # read when the worker has ended (its events may not yet)
        if worker.is_cancelled:
            child.detach()
            return
        code = child.wait()
        if said_why and not started:  # refused before its first run: its files in RUNS_DIR/.tui record nothing
            child.forget()
        if current is not None:
            self.post_message(EngineEvent(lost_run(current, child.ended_why(code), self.nproc)))
        elif code != 0 and left and not said_why:
            self.post_message(QueueProblem(left[0], child.ended_why(code)))

    def on_engine_event(self, message: EngineEvent) -> None:
        for ev in message.events:
            self.state.apply(ev)
            if isinstance(ev, RunKept):  # trained earlier: in Results' history; the Live log says so (a toast
                continue                   # each would flood the screen)
            if isinstance(ev, RunStarted):
                self.results.run_started(ev.run_dir)
            if isinstance(ev, RunEnded):
                self.results.add_session_run(ev.summary)
                status = ev.summary.get("status", "")
                error = ev.summary.get("error") if status == "failed" else None  # "run-1: failed" said nothing
                why = f": {error[:160]}{'…' if len(error) > 160 else ''}" if error else ""
                self.notify(f"{ev.run}: {status}{outcome(ev.summary)}{why}",
                            severity={"finished": "information", "failed": "error"}.get(status, "warning"))
                self._drop_stale_cancel(ev.run)

    def _drop_stale_cancel(self, run: str) -> None:
        """"Cancel vit-a?" left open while vit-a ended (the next run training behind it) asks about nothing:
        close it, and say that ctrl+x asks about the run now training."""
        dialog, asked_about = self._cancel_asked or (None, None)
        if dialog is not None and asked_about == run and dialog.is_current:
            dialog.dismiss(None)
            self.notify(f"{run} ended before an answer; nothing was cancelled" + (
                " (ctrl+x asks about the run training now)" if self.running else ""), severity="warning")

    def on_queue_problem(self, message: QueueProblem) -> None:
        self.state.problem(message.run, message.message)
        first, *more = message.message.splitlines() or [""]
        toast = first + (f"\n(+{len(more)} more: see the Live view)" if more else "")  # several would fill 80x24
        title = "The queue did not start" if self.state.refused else f"{message.run} did not start"
        self.notify(toast, title=title, severity="error", timeout=15)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                                 WorkerState.CANCELLED):
            return
        self.running = False
        self.setup.refresh_target()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.state.add_log("error", f"lost the training process's stream: {type(error).__name__}: {error}")
            self.notify(f"{type(error).__name__}: {error} (the run goes on; see Results)", title="Stream lost",
                        severity="error", timeout=20)
        self.state.end_queue()
        if self.live_ready:
            self.live.redraw(force=True)
        if self._quit_pending:  # "Cancel it and quit": say where the cancelled run is, as "Leave it training" does
            last = self._last_ended or {}
            stopped = last.get("run_dir") if last.get("status") == "cancelled" else None
            self.exit(0, message=f"vitlab: cancelled; metrics and last checkpoint kept in {stopped} "
                                 f"({resume_command(stopped, last.get('world_size') or 1)} continues it)"
                      if stopped else None)
            return
        self._keep_standby()  # ready for the next queue
        done = [t for t in self.state.runs.values() if t.summary is not None]
        if done and self.views.active != "results":
            self.views.active = "results"  # showing it reloads it
            self.results.query_one("#results-table").focus()
        else:
            self.results.reload()
        if (groups := seed_groups([t.summary for t in done])) and not self.results.by_seed:
            what = "one setting" if len(groups) == 1 else f"{len(groups)} settings"
            self.notify(f"This queue trained {what} with several seeds each: g in Results shows the mean ± std across "
                        "seeds.", title="Across seeds", timeout=10)

    def action_cancel(self) -> None:
        if not self.running:
            self.stop_left_training()
            return
        t = self.state.current_track
        remaining = sum(1 for tr in self.state.runs.values() if tr.status == "queued")
        answers = [("run", "Cancel this run", "error")]
        if remaining:
            answers.append(("all", f"Stop the queue (+{remaining} queued)", "warning"))
        answers.append(("keep", "Keep training", "default"))
        name = t.name if t else "the current run"
        later = ("r in Results, or `vitlab resume RUN_DIR`; ctrl+r on this queue offers to continue it where it "
                 "stopped" if self.nproc == 1 else f"r in Results, on its {self.nproc} processes, or `vitlab resume "
                 f"RUN_DIR --nproc {self.nproc}`; ctrl+r on this queue with Processes {self.nproc} offers to continue "
                 "it where it stopped")
        message = (f"Cancel {name}? It stops after the current step; its metrics and last checkpoint are kept "
                   f"(resume it later: {later}).")
        if t is not None and not t.checkpointed:
            message = (f"Cancel {name}? It stops after the current step; its metrics are kept, but train.checkpoint "
                       "is off: it cannot resume.")

        def done(answer: str | None) -> None:
            self._cancel_asked = None
            if not self.running:
                return
            if answer in (None, "keep"):  # Enter answers so: it closed without a word, and was read as a cancel
                if t is None or t.summary is None:  # else it ended meanwhile, and _drop_stale_cancel said so
                    self.state.add_log("dim", f"{name}: kept training (not cancelled)")
                    self.notify(f"{name} keeps training; nothing was cancelled.")
                return
            if answer == "all":
                self.child.send("stop")
                self.state.add_log("warning", "cancel requested: stopping the queue")
            elif t is not None and self.state.current != t.name:  # it ended while the dialog was open
                self.notify(f"{name} already ended; nothing was cancelled.", severity="warning")
            else:
                self.child.send(f"cancel {t.name}" if t else "cancel")  # the child checks it is still training
                self.state.add_log("warning", f"cancel requested: {name}")

        dialog = Choice("Cancel the run?", message, answers)
        self._cancel_asked = (dialog, name)
        self.push_screen(dialog, done)

    def stop_left_training(self) -> None:
        """ctrl+x with nothing training here: offer to stop a run that an earlier vitlab left training (its
        stdin went with that vitlab; SIGINT is a stop for `vitlab worker` and a first Ctrl-C for `vitlab run`)."""
        from ..engine.store import training_process

        left = [(s, pid) for s in self.results.history if s.get("status") == "running" and s.get("run_dir")
                and (pid := training_process(Path(s["run_dir"])))]
        if not left:
            self.notify("Nothing is training.", severity="warning")
            return
        summary, pid = left[0]
        name = f"{summary.get('experiment')}/{summary.get('name')}"

        def done(answer: str | None) -> None:
            if answer != "stop":
                self.notify(f"{name} keeps training in process {pid}; nothing was stopped.")
                return
            try:
                os.kill(pid, signal.SIGINT)
            except OSError as e:  # it ended meanwhile
                self.notify(f"process {pid}: {e.strerror or e}", title="Not stopped", severity="warning")
                return
            # shown as this session's: cancelled in its first epoch, it would vanish from the history as it ended
            self.results.session_dirs.add(run_key(summary))
            self.clear_notifications()  # "Still training, from an earlier vitlab" is stale now
            self.notify(f"Asked process {pid} to stop {name}; it ends after the current step.", title="Stopping")
            self.set_timer(5, self.results.reload)

        message = (f"{name} is training in process {pid}, left by an earlier vitlab. It ends as cancelled after the "
                   "current step, keeping its metrics and checkpoint (r in Results continues it); the "
                   "rest of its queue does not start.")
        self.push_screen(Choice("Stop the run left training?", message,
                                [("stop", "Stop it", "error"), ("keep", "Keep training", "default")]), done)

    async def action_quit(self) -> None:
        if not self.running and self.setup.unsaved and not self._quit_pending:
            self._quit_pending = True  # ctrl+q again quits as asked

            def answered(answer: str | None) -> None:
                self._quit_pending = answer == "quit"
                if answer == "save":
                    self.action_save(then=lambda: self.exit(0))
                elif answer == "quit":
                    self.exit(0)

            self.push_screen(Choice("Quit vitlab?", f"{self.setup.unsaved_text()}: quitting loses "
                                    f"{'it' if len(self.setup.unkept()) == 1 else 'them'}.",
                                    [("save", "Save and quit…", "primary"), ("quit", "Quit anyway", "error"),
                                     ("back", "Back", "default")]), answered)
            return
        if not self.running:
            self.exit(0)
            return
        if self._quit_pending:  # asked twice: do not wait; the child, told to stop, ends the run by itself
            self.exit(0)
            return

        def done(answer: str | None) -> None:
            if answer in (None, "stay"):
                return
            if answer == "leave" and self.running:
                self.exit(0, message=f"vitlab: training goes on in the background (process {self.child.pid}); "
                                     f"open vitlab again to follow it in Results. Log: {self.child.log_path}")
            elif answer == "cancel" and self.running:
                self._quit_pending = True
                self.child.send("stop")
                self.state.add_log("warning", "quitting: cancelling the run first (ctrl+q again to quit at once)")
                self.notify("Stopping the run, then quitting…")
            else:
                self.exit(0)

        self.push_screen(Choice("Quit vitlab?", "A run is training. It can go on without vitlab (it runs in its "
                                "own process; a new vitlab shows it in Results), or stop now with its metrics and "
                                "last checkpoint kept.",
                                [("leave", "Leave it training", "primary"), ("cancel", "Cancel it and quit", "error"),
                                 ("stay", "Stay", "default")]), done)

    # -- command palette -----------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Quit":  # Textual's "as soon as possible" alarms in an app that trains
                command = command._replace(help="Quit vitlab; asks first while a run trains or the queue is unsaved")
            yield command
        yield SystemCommand("Run", "Train the queue (ctrl+r)", self.action_run)
        yield SystemCommand("Cancel run", "Cancel the current run (ctrl+x)", self.action_cancel)
        yield SystemCommand("Add to queue", "Add the form as a run (ctrl+n)", self.setup.action_add)
        yield SystemCommand("New run", "Stop editing the queued run; the form makes a new one", self.setup.action_new)
        yield SystemCommand("Queue ⇄ form", "Move between the run form and the queue list (ctrl+l)",
                            lambda: (self.action_show("setup"), self.setup.action_toggle_queue()))
        yield SystemCommand("Load preset", "Pick a preset to queue (ctrl+o)", self.action_presets)
        yield SystemCommand("Save preset", "Save the queue as a preset YAML (ctrl+s)", self.action_save)
        yield SystemCommand("Seeds", "Train every queued run once per seed", self.setup.action_seeds)
        stem = self.results.export_stem  # the table Results shows: the runs, or across seeds
        for fmt, name in (("md", "Markdown"), ("csv", "CSV"), ("json", "JSON")):
            what = "across seeds" if self.results.by_seed else "of every run"
            yield SystemCommand(f"Export comparison {what} as {name}", f"Write {self.runs_dir / f'{stem}.{fmt}'} "
                                "(asks first)",
                                lambda fmt=fmt: self.action_export(fmt))
        if self.results.by_seed:
            yield SystemCommand("Comparison of every run", "Results: one row per run (g)", self.action_results_by_seed)
        else:
            yield SystemCommand("Comparison across seeds", "Results: runs that differ by seed alone, mean ± standard "
                                "deviation (g)", self.action_results_by_seed)
        yield SystemCommand("Show Setup", "The run form and queue (F1)", lambda: self.action_show("setup"))
        yield SystemCommand("Show Live", "Charts and figures of the current run (F2)", lambda: self.action_show("live"))
        yield SystemCommand("Show Results", "The comparison table (F3)", lambda: self.action_show("results"))


def join_and(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


async def caught_up(widget) -> None:
    """Until the widget has handled the messages it was sent before now (at most half a second: it may be gone)."""
    done = asyncio.Event()
    widget.call_later(done.set)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=0.5)


def run_tui(preset: Path | None = None, runs_dir: Path = Path("runs")) -> int:
    """Entry point of `vitlab [PRESET.yaml] [--runs-dir DIR]`; returns the exit code."""
    app = VitlabApp(preset, runs_dir)
    code = app.run() or app.return_code or 0  # a crash (Textual printed its traceback) is not a success
    if "torch" in sys.modules:
        # The Derived pane's profiler loaded torch; the interpreter's teardown of it held the terminal blank for
        # ~2 s after the app was gone. Everything is written and closed by now: run the exit hooks, leave.
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        os._exit(code)
    return code
