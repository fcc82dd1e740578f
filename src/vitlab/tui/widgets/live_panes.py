"""The Live view's panes. Each redraws from `LiveState` (never from events directly) when asked, and only
what changed: every repaint takes CPU from training on a small machine.
"""
from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from ...report import STATUS_STYLE, human_duration, runs_count
from ..bridge import LiveState, RunTrack, outcome

STATUS_ICON = {"queued": "·", "running": "▶", "finished": "✔", "failed": "✘",
               "cancelled": "■", "skipped": "-", "interrupted": "?", "not started": "✘"}
QUEUE_STYLE = {**STATUS_STYLE, "running": "bold", "not started": "red"}  # the row being trained stands out


def mib(mb: float | None) -> str:
    if mb is None:
        return "-"
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def no_figures_yet(t: RunTrack | None, waiting: str) -> str:
    """A chart's title before it has data: what it waits for, or that the run ended without any."""
    if t is not None and t.status not in ("queued", "running"):
        return f"no figures: {t.name} {t.status}"
    return waiting


CHART_S = 3.0  # charts (costly repaints) redraw at most every 3 s, or at once when forced
LOG_S = 3.0  # new log lines at most every 3 s: each write re-lays out the screen


class Pane:
    """Mixin: a titled, bordered pane that redraws from the live state."""

    def update_from(self, state: LiveState, force: bool = False) -> bool:  # pragma: no cover - overridden
        """Draw what changed; True when a change waits for later (a chart or the log drawn moments ago)."""
        raise NotImplementedError


class TextPane(Static):
    """Text that repaints only when its text changed, and re-lays out only when its height may."""

    _shown: Text | None = None

    def show(self, text: Text) -> None:
        if text == self._shown:
            return
        lines = text.plain.split("\n")
        layout = (self._shown is None or self._shown.plain.count("\n") != len(lines) - 1
                  or max(map(len, lines)) > self.content_size.width)
        self._shown = text
        self.update(text, layout=layout)


def nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round values (steps of 1, 2 or 5 x 10^k) from lo to hi, at most `most`: plotext labels whichever rows its
    ticks fall on, so at 24 rows the labels read 84.7, 71.3, 57.9, 31.2 (one missing) instead of 80, 60, 40."""
    if not hi > lo:
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / most))
    for step in (m * power for m in (1, 2, 5, 10, 20)):  # the finest that gives at most `most` ticks
        first = math.ceil(lo / step - 1e-9) * step
        count = int((hi - first) / step + 1e-9) + 1
        if count <= most:
            return [round(first + i * step, 10) for i in range(count)]
    return [lo, hi]


def tick_labels(ticks: list[float]) -> list[str]:
    """As many decimals on every label as the step needs: 2.60, 2.58, 2.56 (not 2.6 among them)."""
    if len(ticks) < 2:  # no step to go by: 2.58 as it is, not 3
        return [f"{v:g}" for v in ticks]
    step = min(b - a for a, b in zip(ticks, ticks[1:]))
    decimals = max(0, math.ceil(-math.log10(step) - 1e-9)) if step > 0 else 0
    return [f"{v:.{decimals}f}" for v in ticks]


class Chart(PlotextPlot, Pane):
    """A plot redrawn when its data moved, at most every CHART_S seconds."""

    _shown: object = None
    _drawn_at = 0.0

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        key = self.data_key(state.current_track)
        if key == self._shown:
            return False
        same_run = bool(key and self._shown) and key[0] == self._shown[0]  # another run's curves: at once
        if not force and same_run and time.monotonic() - self._drawn_at < CHART_S:
            return True
        self._shown, self._drawn_at = key, time.monotonic()
        self.plt.clear_data()
        self.plt.theme(self._get_plotext_theme_name(self.app.theme))  # series colours follow the theme set
        self.plt.xlabel("epoch")
        self.draw(state.current_track)
        self.refresh()
        return False

    def round_y_labels(self, lo: float, hi: float) -> None:
        ticks = nice_ticks(lo, hi)
        self.plt.yticks(ticks, tick_labels(ticks))

    def round_x_labels(self, lo: float, hi: float) -> None:
        """Epochs: whole ones once a run is past its first (plotext labelled 0.0111, 0.0167, 0.0222)."""
        ticks = nice_ticks(lo, hi)
        if hi - lo >= 1 and any(v != int(v) for v in ticks):
            first, last = math.ceil(lo), math.floor(hi)
            ticks = list(range(first, last + 1, math.ceil((last - first + 1) / 5)))
        self.plt.xticks(ticks, tick_labels(ticks))

    def data_key(self, t: RunTrack | None) -> object:  # pragma: no cover - overridden
        raise NotImplementedError

    def draw(self, t: RunTrack | None) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class ProgressPane(Vertical, Pane):
    def compose(self) -> ComposeResult:
        yield TextPane("", id="progress-text")
        yield ProgressBar(total=100, show_eta=False, id="progress-bar")

    def on_mount(self) -> None:
        self.border_title = "Progress"

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        texts, bars = self.query(TextPane), self.query(ProgressBar)
        if not (texts and bars):  # recomposing (a layout change) or closing
            return False
        text_pane, bar = texts.first(), bars.first()
        text = Text()
        t = state.current_track
        if t is None:
            text.append("No run yet. Set up runs on the Setup tab (F1), then press ctrl+r to train.")
            if left := self.app.left_training():  # Live said "no run" while the toast said one trains
                text.append(f"\nTraining in the background, from an earlier vitlab: {', '.join(left)}. Results (F3) "
                            "follows its figures; ctrl+x there stops it.", style="dim")
            text_pane.show(text)
            bar.update(total=100, progress=0)
            return False
        if state.refused:  # no run of it trained: "swin-pre run 2/4 did not start" read as if one had
            text.append(f"{STATUS_ICON['not started']} The queue did not start", style="bold red")
            text.append(f"  {runs_count(len(state.order))}, none trained\n{t.error}", style="red")
            text_pane.show(text)
            bar.update(total=100, progress=0)
            return False
        index = state.order.index(t.name) + 1 if t.name in state.order else 1
        text.append(f"{STATUS_ICON.get(t.status, '?')} {t.name}", style="bold")
        text.append(f"  run {index}/{len(state.order)}  {t.model}")
        if t.device:
            text.append(f"  on {t.device}", style="dim")
        text.append("\n")
        last = t.last
        if t.summary is not None:
            style = {"finished": "bold green", "failed": "bold red"}.get(t.status, "bold yellow")
            text.append(t.status, style=style)
            text.append(outcome(t.summary).replace(",", "", 1))
            if t.summary.get("train_time_s") is not None:
                text.append(f"  in {human_duration(t.summary['train_time_s'])}")
            if t.error:
                text.append(f"\n{t.error}", style="red")
        elif t.status == "not started":  # the queue stopped before this run: data, weights or a GPU are missing
            text.append("did not start", style="bold red")
            text.append(f"\n{t.error}", style="red")
        elif last is not None:
            # the step within the epoch: "epoch 1/3 step 25/90" read as 25 of the epoch's 90 (the bar shows the run)
            in_epoch = last.step - (last.epoch - 1) * t.steps_per_epoch
            text.append(f"epoch {last.epoch}/{t.epochs}  step {in_epoch}/{t.steps_per_epoch}  "
                        f"elapsed {human_duration(last.elapsed_s)}  ETA {human_duration(last.eta_s)}  "
                        f"lr {last.lr:.2e}")
        elif t.status == "running":  # started; its first figures come with the first logged steps
            first = f"figures after {t.log_every} optimizer step{'s' if t.log_every > 1 else ''}"
            first = f"resumed after epoch {t.start_epoch}/{t.epochs}: the next {first}" if t.start_epoch else \
                f"the first {first}"
            text.append(f"training: {'compiling the model, then ' if t.compiled else ''}{first}…", style="dim")
        else:
            text.append("setting up (loading data, building the model)…", style="dim")
        text_pane.show(text)
        if last is not None:
            bar.update(total=last.total_steps, progress=last.step)
        elif t.summary is None:  # a resumed run starts where it was (it showed 0 % until its first figures)
            bar.update(total=max(1, t.epochs), progress=t.start_epoch)
        elif t.status == "finished":  # kept from an earlier queue (--continue): no steps were seen here
            bar.update(total=100, progress=100)
        return False


class LossChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Loss"

    def data_key(self, t: RunTrack | None) -> object:
        # the status too: a run that ends without figures says so in the title
        return t and (t.name, t.status, len(t.steps), t.steps[-1] if t.steps else None, len(t.evals))

    def draw(self, t: RunTrack | None) -> None:
        plt = self.plt
        if t is not None and t.steps:
            xs = [s / t.steps_per_epoch for s, _ in t.steps]
            plt.plot(xs, [loss for _, loss in t.steps], label="train", marker="braille")
        if t is not None and t.evals:
            plt.scatter([e for e, _, _ in t.evals], [loss for _, loss, _ in t.evals], label="eval", marker="●")
        losses = [loss for _, loss in t.steps] + [loss for _, loss, _ in t.evals] if t is not None else []
        if len(losses) > 1 and all(map(math.isfinite, losses)):
            self.round_y_labels(min(losses), max(losses))
        epochs = ([s / t.steps_per_epoch for s, _ in t.steps] + [e for e, _, _ in t.evals]) if t is not None else []
        if len(epochs) > 1:
            self.round_x_labels(min(epochs), max(epochs))
        has_data = t is not None and (t.steps or t.evals)
        plt.title("" if has_data else no_figures_yet(t, "waiting for the first logged steps"))


class AccuracyChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Accuracy (%)"

    def data_key(self, t: RunTrack | None) -> object:
        return t and (t.name, t.status, t.eval_split, len(t.evals))

    def draw(self, t: RunTrack | None) -> None:
        plt = self.plt
        # the split the run measures on, as its log line says: CIFAR's test split was called val here
        split = t.eval_split if t is not None else ""
        self.border_title = f"Accuracy ({split}, %)" if split else "Accuracy (%)"
        if t is not None and t.evals:
            xs, ys = [e for e, _, _ in t.evals], [100 * a for _, _, a in t.evals]
            plt.plot(xs, ys, marker="braille")
            plt.scatter(xs, ys, label=f"{split} acc" if split else "accuracy", marker="●")
            # plotext pads one point into 40-122 %: a margin around the points, within 0-100
            margin = max(2.0, (max(ys) - min(ys)) * 0.1)
            lo, hi = max(0.0, min(ys) - margin), min(100.0, max(ys) + margin)
            plt.ylim(lo, hi)
            self.round_y_labels(lo, hi)
            if len(xs) > 1:
                self.round_x_labels(min(xs), max(xs))
            plt.title(f"last {100 * t.evals[-1][2]:.2f}%  best {100 * (t.best_accuracy or 0):.2f}%")
        else:
            plt.title(no_figures_yet(t, "after the first epoch"))


class MemoryPane(TextPane, Pane):
    def on_mount(self) -> None:
        self.border_title = "Memory"

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        m = state.memory
        if m is None:
            self.show(Text("no reading yet", style="dim"))
            return False
        self.border_title = f"Memory: {m.label}"
        if m.device == "cuda":
            lines = [f"allocated {mib(m.allocated_mb)}", f"reserved  {mib(m.reserved_mb)}",
                     f"peak      {mib(m.peak_mb)}", f"device    {mib(m.total_mb)}"]
        else:
            lines = [f"RSS now   {mib(m.allocated_mb)}", f"RSS peak  {mib(m.peak_mb)}",
                     f"RAM total {mib(m.total_mb)}"]
        self.show(Text("\n".join(lines)))
        return False


class ThroughputPane(TextPane, Pane):
    def on_mount(self) -> None:
        self.border_title = "Throughput"

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        t = state.current_track
        last = t.last if t else None
        if last is None:
            self.show(Text("no steps yet", style="dim"))
            return False
        lines = [f"now  {last.images_per_s:,.0f} img/s", f"mean {last.mean_images_per_s:,.0f} img/s"]
        if last.skipped_steps:
            lines.append(f"skipped steps {last.skipped_steps}")
        self.show(Text("\n".join(lines)))
        return False


class RunsPane(TextPane, Pane):
    def on_mount(self) -> None:
        self.border_title = "Queue"

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        if not state.order:
            self.show(Text("nothing trained yet", style="dim"))
            return False
        text = Text()
        for i, name in enumerate(state.order):
            t: RunTrack = state.runs[name]
            style = QUEUE_STYLE.get(t.status, "")
            if i:
                text.append("\n")
            text.append(f"{STATUS_ICON.get(t.status, '?')} {name} ", style=style)
            detail = t.status
            if t.status == "running" and t.last is not None:
                detail = f"epoch {t.last.epoch}/{t.epochs}"
            if t.accuracy is not None and t.status != "running":
                detail += f" {100 * t.accuracy:.2f}%"  # as Results and the toasts say it
            text.append(detail, style="dim" if t.status in ("queued", "skipped") else style)
        self.show(text)
        done = sum(t.status in ("finished", "failed", "cancelled") for t in state.runs.values())
        self.border_title = f"Queue ({done}/{len(state.order)} ended)"  # cancelled and failed ones too
        return False


class LogPane(RichLog, Pane):
    def __init__(self, **kwargs) -> None:
        # min_width: RichLog renders at least 78 wide, so an 80-column screen's ~40-column pane cut lines, not wrapped
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=500, min_width=20, **kwargs)
        self.seen = 0
        self.written_at = 0.0

    def on_mount(self) -> None:
        self.border_title = "Log"

    def update_from(self, state: LiveState, force: bool = False) -> bool:
        new = state.log_seq - self.seen
        if new <= 0:
            return False
        if not force and time.monotonic() - self.written_at < LOG_S:
            return True
        if not all(node.display for node in self.ancestors_with_self if isinstance(node, Widget)):
            # in a hidden tab RichLog wraps at its min_width (20): written when its tab shows (LiveView._tab_shown),
            # at its width; not waiting meanwhile, or every tick would redraw every pane
            return False
        if not self.scrollable_content_region.width:
            # shown this moment (ctrl+r, r in Results turn the app to Live and redraw at once), not laid out yet:
            # RichLog would wrap at its min_width too; the next redraw writes at its width
            return True
        self.written_at = time.monotonic()
        lines = list(state.log)[-new:] if new < len(state.log) else list(state.log)
        styles = {"warning": "yellow", "error": "red", "success": "green", "dim": "dim", "bold": "bold"}
        for style, line in lines:
            self.write(Text(line, style=styles.get(style, "")))
        self.seen = state.log_seq
        return False
