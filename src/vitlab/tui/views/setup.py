"""The Setup view: the run form, live derived figures, and the run queue."""
from __future__ import annotations

import json
import re
from itertools import takewhile
from typing import Any, Callable

from pydantic import ValidationError
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from ...config import ExperimentConfig, RunConfig, model_label, profile_key
from ...engine.hardware import max_processes
from ...errors import PresetError
from ...presets import describe_errors, parse_seeds, reseed
from ...report import human_count, runs_count
from ..formspec import default_run, derived
from ..screens.dialogs import PathPrompt
from ..widgets.queue_list import QueueList
from ..widgets.run_form import RunForm

PROFILE_DELAY_S = 0.5


def next_name(name: str, taken: set[str]) -> str:
    """vit-tiny -> vit-tiny-2 -> vit-tiny-3 ... (a name not in `taken`, compared case-insensitively)."""
    stem, n = name, 2
    m = re.match(r"^(.*?)-(\d+)$", name)
    if m:
        stem, n = m.group(1), int(m.group(2)) + 1
    while f"{stem}-{n}".lower() in taken:
        n += 1
    return f"{stem}-{n}"[:64]


class SetupView(Horizontal):
    BINDINGS = [
        Binding("ctrl+n", "add", "Add run"),
        Binding("ctrl+o", "app.presets", "Presets"),
        # the queue is past some 35 fields by Tab: one key there and back
        Binding("ctrl+l", "toggle_queue", "Queue ⇄ form", show=False),
    ]

    def __init__(self, profiler: Callable[[RunConfig], Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue: list[RunConfig] = []
        self._kept: set[str] = set()  # each run a preset file or training holds, as JSON: losing it loses nothing
        self.editing: int | None = None  # queue index the form edits, None: a new run
        self.profiler = profiler
        self.profiles: dict[str, tuple[int | None, int | None, str]] = {}  # key -> params, flops, problem
        self._profile_timer: Timer | None = None
        self.config: RunConfig | None = None
        self._last_focused: Widget | None = None  # F1 comes back to it

    def compose(self) -> ComposeResult:
        yield RunForm(id="form")
        with Vertical(id="sidebar"):
            yield Static("", id="derived", classes="pane")
            yield QueueList(id="queue", classes="pane")
            with Horizontal(classes="button-row"):
                yield Button("Add", id="btn-add", compact=True, tooltip="Add the form to the queue (ctrl+n)")
                yield Button("New", id="btn-new", compact=True, tooltip="Stop editing the queued run; the form makes a new one")
                yield Button("Up", id="btn-up", compact=True)
                yield Button("Down", id="btn-down", compact=True)
                yield Button("Del", id="btn-remove", compact=True)
            with Horizontal(classes="button-row"):
                yield Button("Presets…", id="btn-presets", compact=True, tooltip="ctrl+o")
                yield Button("Save…", id="btn-save", compact=True, tooltip="ctrl+s")
                yield Button("Seeds…", id="btn-seeds", compact=True, tooltip="Train every queued run once per seed")
            limit, what = max_processes()
            with Horizontal(id="nproc-row"):
                yield Label("Processes (GPUs)")
                yield Input("1", id="nproc", compact=True, tooltip=(
                    f"Train each run on N local processes with DistributedDataParallel (torchrun): "
                    f"1 to {limit} ({what})"))
            yield Static("", id="run-hint")

    def on_mount(self) -> None:
        self.query_one("#derived").border_title = "Derived"
        self.query_one("#form").border_title = "Run"
        form = self.query_one(RunForm)
        form.load(default_run())
        self.refresh_queue()
        form.query_one("#f-run-name").focus()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if event.widget is not self.form:  # the form's scroll container takes no typing
            self._last_focused = event.widget

    def focus_last(self) -> None:
        """Back to the field or button last used here (the run name at first, or if that one is hidden now)."""
        widget = self._last_focused
        if widget is None or not widget.is_attached or not widget.can_focus or not all(
                w.display for w in takewhile(lambda w: w is not self, widget.ancestors_with_self)):
            widget = self.form.query_one("#f-run-name")
        widget.focus()

    def show_focused(self) -> None:
        """Scroll the focused field into view once the view shows again: the form kept its scroll meanwhile, and
        focus() scrolls only a laid-out form, so F1 came back to a field off-screen and a stray key edited it
        unseen (at 80x24, a 3 meant for Live's tabs replaced a run's epochs)."""
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors and not self.screen.can_view_entire(focused):
            self.screen.scroll_to_center(focused, animate=False, origin_visible=True)

    @property
    def form(self) -> RunForm:
        return self.query_one(RunForm)

    @property
    def nproc(self) -> int | None:
        """Processes per run (a launch setting, not part of the run config); None when out of range."""
        text = self.query_one("#nproc", Input).value.strip()
        limit, _ = max_processes()
        return int(text) if text.isascii() and text.isdigit() and 1 <= int(text) <= limit else None  # not "²"

    @property
    def nproc_problem(self) -> str:
        limit, what = max_processes()
        return "" if self.nproc is not None else f"Processes (GPUs) must be 1 to {limit} ({what})."

    @on(Input.Changed, "#nproc")
    def _nproc_changed(self) -> None:
        self.update_hint()
        self.show_derived()  # the effective batch counts every process

    # -- queue ------------------------------------------------------------------------------------
    def keep(self, runs: list[RunConfig]) -> None:
        """These runs are kept somewhere now (a preset file, or the run directories of their training)."""
        self._kept.update(json.dumps(r.resolved(), sort_keys=True) for r in runs)

    def keep_queue(self) -> None:
        self.keep(self.queue)

    def unkept(self) -> list[RunConfig]:
        """Runs queued by hand (or changed) that no preset file or training holds: quitting would lose them. A run
        trained from the form alone and then queued is held by its run directory (it was asked about)."""
        return [r for r in self.queue if json.dumps(r.resolved(), sort_keys=True) not in self._kept]

    @property
    def unsaved(self) -> bool:
        return bool(self.unkept())

    def unsaved_text(self) -> str:
        runs = self.unkept()
        names = ", ".join(r.name for r in runs[:3]) + (", ..." if len(runs) > 3 else "")
        return f"The queue holds {runs_count(len(runs))} that no preset or training holds ({names})"

    def load_experiment(self, exp: ExperimentConfig) -> None:
        self.queue = list(exp.runs)
        self.keep_queue()
        self.editing = 0
        self.form.load(self.queue[0])
        self.refresh_queue()
        self.form.scroll_home(animate=False)  # "Editing queued run 1/N" at the top is in view, not where it was
        # the run shown is the one edited, whatever had the focus; after the refresh, as a closing picker or
        # dialog gives the focus back to what had it before
        self.call_after_refresh(self.form.query_one("#f-run-name").focus)

    def experiment(self, name: str, description: str = "") -> ExperimentConfig:
        """The queue as an experiment (or the form alone when the queue is empty)."""
        runs = self.queue or ([self.config] if self.config else [])
        return ExperimentConfig(name=name, description=description, runs=runs)

    def refresh_queue(self, select: int | None = None) -> None:
        lst = self.query_one(QueueList)
        lst.show(self.queue, self.editing, select)
        lst.border_title = f"Queue ({len(self.queue)})"
        self.form.taken_names = {r.name for i, r in enumerate(self.queue) if i != self.editing}
        self.refresh_target()

    def refresh_target(self) -> None:
        """What the form edits and what ctrl+r will do; also when training starts or ends (the training child
        has its copy of the queue, so edits made meanwhile are for the next ctrl+r, and must say so)."""
        if self.editing is None:
            self.form.set_target(Text.assemble(("New run", "bold"), ("  (ctrl+n: add to queue)", "dim")))
        else:
            self.form.set_target(Text.assemble(
                (f"Editing queued run {self.editing + 1}/{len(self.queue)}", "bold"),
                ("  (saved for the next ctrl+r: this queue is training)", "yellow") if self.app.running
                else ("  (saved as you type)", "dim")))
        self.update_hint()

    def update_hint(self) -> None:
        hint = Text()
        valid = self.form.result.config is not None
        if self.app.running:
            hint.append("Training (F2 to watch, ctrl+x to cancel); edits here apply to the next ctrl+r.", style="bold")
        elif self.nproc_problem:
            hint.append(self.nproc_problem, style="bold red")
        elif not valid:
            hint.append(f"Fix the form to run: {self.form_problem()}", style="bold red")
        elif self.queue:
            hint.append(f"ctrl+r trains the queue ({runs_count(len(self.queue))})")
        else:
            hint.append("ctrl+r trains this run (queue empty)")
        self.query_one("#run-hint", Static).update(hint)

    def refuse_stale_edit(self, title: str) -> bool:
        """Refuse (saying why, under `title`) while the queued run being edited is not what the form shows: the
        form has an error, and the queue holds the last valid values typed on the way (heads 1 while typing 17)."""
        if self.editing is None or self.form.result.config is not None or self.editing >= len(self.queue):
            return False
        run = self.queue[self.editing]
        self.notify(f"Run {self.editing + 1} in the form: {self.form_problem()}. The queue holds its last valid "
                    f"settings ({model_label(run.model)}): fix the field first.", title=title, severity="error",
                    timeout=10)
        return True

    def form_problem(self) -> str:
        """The first problem of the form, naming its field (it may be below the fold)."""
        first = self.form.first_error()
        return first[1] if first else "; ".join(self.form.result.general)

    def action_add(self) -> None:
        form = self.form
        cfg = form.check().config
        if cfg is None:
            self.notify(f"Fix the form before adding the run: {self.form_problem()}", severity="error")
            return
        if any(r.name.lower() == cfg.name.lower() for r in self.queue):
            cfg = cfg.model_copy(update={"name": next_name(cfg.name, {r.name.lower() for r in self.queue})})
        self.queue.append(cfg)
        self.editing = None
        self.refresh_queue()
        # the form now makes a new run: give it a fresh name so it is valid straight away
        self.set_name(next_name(cfg.name, {r.name.lower() for r in self.queue}))
        self.notify(f"Added {cfg.name} to the queue ({runs_count(len(self.queue))}).")

    def action_toggle_queue(self) -> None:
        queue = self.query_one(QueueList)
        if queue.has_focus:
            self.form.query_one("#f-run-name").focus()
        else:
            queue.focus()

    def action_new(self) -> None:
        if self.refuse_stale_edit("Not left"):
            return
        self.editing = None
        self.refresh_queue()
        self.set_name(next_name(self.form.values()["f-run-name"] or "run", {r.name.lower() for r in self.queue}))
        self.form.base = None

    def set_name(self, name: str) -> None:
        field = self.form.query_one("#f-run-name", Input)
        field.value, field.cursor_position = name, len(name)  # typing goes on at its end

    @on(QueueList.Action)
    def _queue_action(self, event: QueueList.Action) -> None:
        i = event.index
        if event.action == "edit" and i != self.editing and self.refuse_stale_edit("Not left"):
            return
        if event.action == "edit":
            self.editing = i
            self.form.load(self.queue[i])
            self.refresh_queue()
            self.form.query_one("#f-run-name").focus()
        elif event.action == "remove":
            removed = self.queue.pop(i)
            if self.editing == i:
                self.editing = None
            elif self.editing is not None and self.editing > i:
                self.editing -= 1
            self.refresh_queue()
            self.notify(f"Removed {removed.name} from the queue.")
        elif event.action == "move":
            j = i + event.step
            if 0 <= j < len(self.queue):
                self.queue[i], self.queue[j] = self.queue[j], self.queue[i]
                if self.editing in (i, j):
                    self.editing = j if self.editing == i else i
                self.refresh_queue(select=j)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        lst = self.query_one(QueueList)
        action = str(event.button.id).removeprefix("btn-")
        if action == "add":
            self.action_add()
        elif action == "new":
            self.action_new()
        elif action in ("up", "down", "remove"):
            if lst.index is None or not self.queue:
                self.notify("The queue is empty.", severity="warning")
                return
            lst.post_message(QueueList.Action("move" if action != "remove" else "remove", lst.index,
                                              -1 if action == "up" else 1))
        elif action == "presets":
            self.app.action_presets()
        elif action == "save":
            self.app.action_save()
        elif action == "seeds":
            self.action_seeds()

    def action_seeds(self) -> None:
        """Ask for seeds, then make the queue (or the form's run) train every run once per seed."""
        runs = self.queue or ([self.config] if self.config else [])
        if not runs:
            self.notify("Nothing to repeat: the queue is empty and the form has errors.", severity="error")
            return
        if self.refuse_stale_edit("Not repeated"):
            return
        seeds = sorted({r.train.seed for r in runs})

        def check(values: dict) -> str | None:
            try:
                reseed(runs, parse_seeds(values["seeds"], "Seeds"))
            except PresetError as e:
                return str(e)
            except ValidationError as e:
                return describe_errors(e)
            return None

        # the form's new run is not queued: it would be dropped without a word (the form edits run 1 after)
        draft = (f" The form's run {self.config.name} is not in the queue: Cancel and ctrl+n to repeat it too."
                 if self.queue and self.editing is None and self.config else "")
        prompt = PathPrompt("Train every run once per seed", [("seeds", "Seeds", ",".join(map(str, seeds))
                                                                if len(seeds) > 1 else "0,1,2")], ok="Apply",
                            note="Each run becomes one per seed (vit-s0, vit-s1, ...), the same but for train.seed; "
                                 f"Results (g) then shows mean ± std across seeds.{draft}", check=check)
        self.app.push_screen(prompt, lambda v: v and self.set_seeds(runs, parse_seeds(v["seeds"], "Seeds")))

    def set_seeds(self, runs: list[RunConfig], seeds: list[int]) -> None:
        self.queue = reseed(runs, seeds)
        self.editing = 0  # the form edits the first of them (left on a run of the old queue, its name would clash)
        self.form.load(self.queue[0])
        self.refresh_queue()
        self.notify(f"The queue trains {runs_count(len(self.queue))}: every run with seeds "
                    f"{', '.join(map(str, seeds))}.", title="Seeds")

    # -- validation and derived figures --------------------------------------------------------------
    @on(RunForm.Validated)
    def _validated(self, event: RunForm.Validated) -> None:
        cfg = event.result.config
        self.config = cfg
        if cfg is not None and self.editing is not None and self.editing < len(self.queue):
            if self.queue[self.editing] != cfg:
                self.queue[self.editing] = cfg
                self.query_one(QueueList).show(self.queue, self.editing)
        self.update_hint()
        self.show_derived()
        if cfg is not None and self.profiler is not None and profile_key(cfg) not in self.profiles:
            self.call_after_refresh(self._schedule_profile, cfg)  # torch loads after the screen has painted

    def _schedule_profile(self, cfg: RunConfig) -> None:
        if self._profile_timer is not None:
            self._profile_timer.stop()
        self._profile_timer = self.set_timer(PROFILE_DELAY_S, lambda: self.profile(cfg))

    def show_derived(self) -> None:
        cfg = self.config
        text = Text()
        if cfg is None:
            text.append("(the form has errors)", style="dim")
        else:
            for label, value in derived(cfg, self.nproc or 1).items():
                text.append(f"{label:<12}", style="dim")
                text.append(f"{value}\n")
            params, flops, problem = self.profiles.get(profile_key(cfg), (None, None, ""))
            if self.profiler is not None:
                text.append(f"{'Params':<12}", style="dim")
                if problem:
                    text.append(f"n/a: {problem}", style="red")
                elif params is None:
                    text.append("computing…", style="dim italic")
                else:
                    text.append(f"{human_count(params)}\n")
                    text.append(f"{'GFLOPs/img':<12}", style="dim")
                    text.append(f"{flops / 1e9:.3g}" if flops else "n/a here (vitlab profile)")
        self.query_one("#derived", Static).update(text.rstrip() or text)

    @work(thread=True, exclusive=True, group="profile", exit_on_error=False)
    def profile(self, cfg: RunConfig) -> tuple[str, tuple[int | None, int | None, str]]:
        key = profile_key(cfg)
        try:
            p = self.profiler(cfg)
            return key, (p.params, p.flops, "")
        except Exception as e:  # a profile is a hint, never a crash
            return key, (None, None, f"{type(e).__name__}: {e}".splitlines()[0][:80])

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "profile" and event.state == WorkerState.SUCCESS:
            key, value = event.worker.result
            self.profiles[key] = value
            self.show_derived()
