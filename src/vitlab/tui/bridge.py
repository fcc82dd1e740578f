"""The bridge between the engine's event stream and the UI.

The thread that reads the training process's stream posts `EngineEvent` messages (thread-safe,
non-blocking), a batch of events at a time. On the UI thread, `LiveState.apply` folds each event into plain
data in O(1); panes redraw from that state on a timer, only what changed, so the UI takes little CPU from
training.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from ..config import checkpointed
from ..engine.events import (EpochEvaluated, Event, Memory, RunCancelled, RunEnded, RunFailed, RunFinished,
                             RunKept, RunStarted, StepsLogged, WarningRaised)
from ..report import runs_count

MAX_POINTS = 2000  # train-loss points kept per run (older ones are thinned)


class EngineEvent(Message):
    """Engine events, posted from the thread that reads the training process (a batch: fewer UI wake-ups)."""

    def __init__(self, *events: Event) -> None:
        super().__init__()
        self.events = events


class QueueProblem(Message):
    """A run could not start at all (e.g. the runs directory is not writable)."""

    def __init__(self, run: str, message: str) -> None:
        super().__init__()
        self.run = run
        self.message = message


@dataclass
class RunTrack:
    name: str
    model: str = ""
    status: str = "queued"  # queued, running, then its summary's (finished, failed, cancelled), skipped, not started
    epochs: int = 0
    start_epoch: int = 0  # > 0: resumed after that many epochs
    steps_per_epoch: int = 1
    device: str = ""
    log_every: int = 1  # optimizer steps between figures
    compiled: bool = False
    checkpointed: bool = True  # train.checkpoint: a cancel leaves something to resume from
    eval_split: str = ""  # what its accuracy is measured on ("val", "test", "held-out val"); "": not said yet
    params: int | None = None
    flops: int | None = None
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, eval loss, accuracy)
    last: StepsLogged | None = None
    summary: dict[str, Any] | None = None
    error: str = ""

    @property
    def accuracy(self) -> float | None:
        return self.evals[-1][2] if self.evals else (self.summary or {}).get("accuracy")

    @property
    def best_accuracy(self) -> float | None:
        return max((e[2] for e in self.evals), default=None)


class LiveState:
    """Everything the Live view shows, as plain data; mutated only on the UI thread."""

    def __init__(self) -> None:
        self.runs: dict[str, RunTrack] = {}
        self.order: list[str] = []
        self.current: str | None = None
        self.log: deque[tuple[str, str]] = deque(maxlen=500)  # (style, text)
        self.log_seq = 0  # count of log lines ever added (panes append only the new ones)
        self.memory: Memory | None = None
        self.refused = False  # the queue did not start at all (a dataset, weights or a GPU missing)
        self.version = 0  # bumped on every change; panes redraw when it moved
        self.active = False

    # -- queue ------------------------------------------------------------------------------------
    def start_queue(self, names: list[str], models: list[str]) -> None:
        self.runs = {n: RunTrack(n, model=m) for n, m in zip(names, models)}
        self.order = list(names)
        self.current = names[0] if names else None
        self.memory = None
        self.refused = False
        self.active = True
        self.add_log("dim", f"queue: {runs_count(len(names))}: {', '.join(names)}")

    def end_queue(self) -> None:
        self.active = False
        for track in self.runs.values():
            if track.status == "queued":
                track.status = "skipped"
        self.version += 1

    def add_log(self, style: str, text: str) -> None:
        self.log.append((style, text))
        self.log_seq += 1
        self.version += 1

    def track(self, name: str) -> RunTrack:
        if name not in self.runs:
            self.runs[name] = RunTrack(name)
            self.order.append(name)
        return self.runs[name]

    @property
    def current_track(self) -> RunTrack | None:
        return self.runs.get(self.current) if self.current else None

    # -- events -------------------------------------------------------------------------------------
    @staticmethod
    def earlier_curves(t: RunTrack, run_dir: Path, upto: int) -> None:
        from ..engine.store import read_metrics

        for record in read_metrics(run_dir / "metrics.jsonl"):
            if record.get("epoch", upto + 1) > upto:
                continue
            if record.get("event") == "StepsLogged":
                t.steps.append((record["step"], record["loss"]))
            elif record.get("event") == "EpochEvaluated":
                t.evals.append((record["epoch"], record["eval_loss"], record["accuracy"]))

    def apply(self, ev: Event) -> None:
        t = self.track(ev.run)
        self.version += 1
        if isinstance(ev, StepsLogged):
            t.status = "running"
            t.last = ev
            t.steps.append((ev.step, ev.loss))
            if len(t.steps) > MAX_POINTS:
                t.steps = t.steps[::2]
            self.memory = ev.memory
        elif isinstance(ev, EpochEvaluated):
            t.evals.append((ev.epoch, ev.eval_loss, ev.accuracy))
            self.add_log("", f"{ev.run}: epoch {ev.epoch}/{ev.epochs}  train loss {ev.train_loss:.4f}  "
                             f"eval loss {ev.eval_loss:.4f}  acc {100 * ev.accuracy:.2f}%")
        elif isinstance(ev, RunStarted):
            self.current = ev.run
            self.memory = None  # the previous run's reading until this one logs its first steps
            t.status, t.model, t.epochs, t.start_epoch = "running", ev.model_label, ev.epochs, ev.start_epoch
            t.steps_per_epoch, t.device = max(1, ev.steps_per_epoch), ev.device
            t.params, t.flops = ev.params, ev.flops
            t.log_every, t.compiled = ev.config.get("train", {}).get("log_every", 1), ev.compiled
            t.checkpointed, t.eval_split = checkpointed(ev.config), ev.eval_split
            t.steps, t.evals, t.last, t.summary = [], [], None, None
            if ev.start_epoch:  # resumed: the curves begin with the epochs trained before, from its metrics
                self.earlier_curves(t, Path(ev.run_dir), ev.start_epoch)
            compiling = ", compiling the model (the first steps take tens of seconds)" if ev.compiled else ""
            how = f"resumed after epoch {ev.start_epoch}/{ev.epochs}" if ev.start_epoch else "started"
            self.add_log("bold", f"{ev.run}: {how} ({ev.index + 1}/{ev.total_runs}) {ev.model_label} on "
                                 f"{ev.device}, {ev.train_samples} train / {ev.val_samples} {ev.eval_split} images"
                                 f"{compiling}")
        elif isinstance(ev, WarningRaised):
            self.add_log("warning", f"{ev.run}: warning [{ev.code}] {ev.message}")
        elif isinstance(ev, RunKept):  # trained earlier (--continue): its curves and figures, from its run dir
            from ..engine.store import read_metrics

            self.current = ev.run
            run_dir = Path(ev.summary["run_dir"])
            started = next((r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") == "RunStarted"), {})
            t.summary, t.status, t.model = ev.summary, ev.summary.get("status") or "finished", ev.summary.get("model")
            t.epochs = started.get("epochs") or ev.summary.get("epochs_planned") or 0
            t.steps_per_epoch, t.device = max(1, started.get("steps_per_epoch") or 1), started.get("device", "")
            t.eval_split = ev.summary.get("eval_split") or started.get("eval_split") or ""  # older runs: not said
            t.steps, t.evals = [], []
            self.earlier_curves(t, run_dir, ev.summary.get("epochs") or 0)
            self.add_log("success" if t.status == "finished" else "warning",
                         f"{ev.run}: {t.status} earlier, kept{outcome(ev.summary)}")
        elif isinstance(ev, RunEnded):
            t.summary = ev.summary
            t.status = ev.summary.get("status") or {RunFinished: "finished", RunFailed: "failed",
                                                     RunCancelled: "cancelled"}.get(type(ev), "ended")
            if isinstance(ev, RunFailed):
                t.error = ev.error
                self.add_log("error", f"{ev.run}: failed ({ev.reason}): {ev.error}")
            else:
                self.add_log("success" if t.status == "finished" else "warning",
                             f"{ev.run}: {t.status}" + outcome(ev.summary))

    def problem(self, run: str, message: str) -> None:
        self.refused = all(t.status == "queued" for t in self.runs.values())  # before its first run
        t = self.track(run)
        t.status, t.error = "not started", message  # no run directory was made: nothing failed on disk
        self.current = run  # the Live view shows it, and why, even when it is not the queue's first
        self.add_log("error", f"the queue did not start: {message}" if self.refused else
                     f"{run}: could not start: {message}")


def outcome(summary: dict[str, Any]) -> str:
    acc, best = summary.get("accuracy"), summary.get("best_accuracy")
    if acc is None:
        return ""
    # a run that did not finish has the accuracy of its last evaluated epoch, not a final one
    text = f", {'final' if summary.get('status') == 'finished' else 'last'} accuracy {100 * acc:.2f}%"
    if best is not None and best > acc:
        text += f" (best {100 * best:.2f}%)"
    return text
