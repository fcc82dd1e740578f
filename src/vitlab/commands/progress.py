"""Headless progress: the engine's events as Rich output on stderr (stdout stays for --json).

Text from outside (errors, warnings, paths, names) is escaped: its brackets are not Rich markup."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import checkpointed
from ..engine.events import (EpochEvaluated, Event, RunCancelled, RunFailed, RunFinished, RunKept, RunStarted,
                             StepsLogged, WarningRaised)
from ..engine.store import resume_command
from ..report import human_count


class ProgressPrinter:
    """An event consumer for the CLI. Rich's live bar refreshes itself; events only update numbers."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console, transient=True)
        self.task = None
        self.started: str | None = None  # the last run that got as far as RunStarted
        self.block: str | None = None  # the run whose lines are printed now (started, kept, failed before)
        self.said: dict[tuple[str, str], str] = {}  # each warning said, and the run it was said for first

    def __call__(self, event: Event) -> None:
        c = self.console
        if isinstance(event, (RunStarted, RunKept)):
            self.block = event.run
        if isinstance(event, RunStarted):
            self.started = event.run
            flops = f", {event.flops / 1e9:.3g} GFLOPs/img" if event.flops else ""  # tiny models: 0.000336
            c.print(f"[bold cyan]{escape(event.run)}[/] ({event.index + 1}/{event.total_runs}) "
                    f"{escape(event.model_label)}: "
                    f"{human_count(event.params)} params{flops}, {event.train_samples} train / {event.val_samples} "
                    f"{event.eval_split} samples, effective batch {event.effective_batch}, on {escape(event.device)}"
                    + (", compiling the model (the first steps take tens of seconds)" if event.compiled else ""))
            c.print(f"  run dir: {escape(event.run_dir)}"
                    + (f" (resumed after epoch {event.start_epoch})" if event.start_epoch else ""), style="dim")
            if c.is_terminal:  # a live bar; piped or logged, it would only leave empty lines behind
                self.progress.start()
            self.task = self.progress.add_task(event.run, total=event.epochs * event.steps_per_epoch,
                                               completed=event.start_epoch * event.steps_per_epoch, status="")
        elif isinstance(event, StepsLogged) and self.task is not None:
            self.progress.update(self.task, completed=event.step, status=(
                f"epoch {event.epoch} loss {event.loss:.4f} {event.images_per_s:,.0f} img/s "
                f"{event.memory.label} {event.memory.allocated_mb:,.0f} MiB"
                + (f" [yellow]{event.skipped_steps} skipped steps[/]" if event.skipped_steps else "")))
        elif isinstance(event, EpochEvaluated):
            c.print(f"  epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.4f}, "
                    f"eval loss {event.eval_loss:.4f}, accuracy {event.accuracy:.2%} ({event.epoch_time_s:.1f}s)")
        elif isinstance(event, RunKept):
            s = event.summary
            if s.get("status") == "finished":
                acc = f"{s['accuracy']:.2%}" if s.get("accuracy") is not None else "-"
                what = f"[green]finished[/] earlier (accuracy {acc}): kept"
            else:  # failed on a non-finite loss: deterministic training would fail at the same step
                what = f"[red]failed[/] earlier: kept, not trained again: {escape(s.get('error') or '')}"
            c.print(f"[bold cyan]{escape(event.run)}[/] {what}")
            c.print(f"  run dir: {escape(s.get('run_dir') or '')}", style="dim")
        elif isinstance(event, WarningRaised):
            self.warning(event)
        elif isinstance(event, (RunFinished, RunFailed, RunCancelled)):
            self.stop()
            s = event.summary
            if isinstance(event, RunFailed):
                if event.run != self.started:  # it failed while loading data or weights: name it
                    c.print(f"[bold cyan]{escape(event.run)}[/]")
                    self.block = event.run
                c.print(f"  [red]failed:[/] {escape(event.error)}")
            elif isinstance(event, RunCancelled) and not checkpointed(s.get("config")):
                c.print(f"  [yellow]cancelled[/] after {s['epochs']} epoch(s) (train.checkpoint is off: it cannot "
                        "resume)")
            elif isinstance(event, RunCancelled):
                c.print(f"  [yellow]cancelled[/] after {s['epochs']} epoch(s); resume with:")
                # on as many processes as it trained on; on one line, however long the path: to copy
                c.print(f"    {escape(resume_command(s['run_dir'], s.get('world_size') or 1))}", soft_wrap=True)
            else:
                acc = f"{s['accuracy']:.2%}" if s.get("accuracy") is not None else "-"
                c.print(f"  [green]finished[/]: accuracy {acc} in {s['train_time_s']:.1f}s of training")

    def warning(self, event: WarningRaised) -> None:
        first = self.said.setdefault((event.code, event.message), event.run)
        said = f"as for {escape(first)} above" if first != event.run else escape(event.message)  # CIFAR's checksums
        if event.run == self.block:
            self.console.print(f"  [yellow]warning ({event.code}):[/] {said}")
        else:  # before its run's own lines (--continue's note): under the last run's, "its" read as that one's
            self.console.print(f"[bold cyan]{escape(event.run)}[/] [yellow]warning ({event.code}):[/] {said}")

    def stop(self) -> None:
        if self.task is not None:
            if self.progress.live.is_started:  # Rich prints an empty line when stopping a bar it never showed
                self.progress.stop()
            self.progress.remove_task(self.task)
            self.task = None
