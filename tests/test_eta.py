"""The ETA and img/s a run reports follow its pace after the warm-up, not the warm-up itself (train time keeps it)."""
import time

import pytest

from vitlab.config import RunConfig
from vitlab.engine import runner
from vitlab.engine.events import EpochEvaluated, StepsLogged
from vitlab.engine.runner import train_run

WARM_UP_S = 1.0  # the first step's extra time, as torch.compile or a CUDA-graph capture would cost


class SlowFirstStep:
    """The run's steps, the first one WARM_UP_S slower."""

    def __init__(self, steps):
        self.steps, self.taken = steps, 0

    def __call__(self, window, poison):
        if not self.taken:
            time.sleep(WARM_UP_S)
        self.taken += 1
        self.steps(window, poison)

    def __getattr__(self, name):
        return getattr(self.steps, name)


def test_eta_and_throughput_leave_out_the_warm_up_of_the_first_steps(tmp_path, monkeypatch):
    make_steps = runner.Run.make_steps
    monkeypatch.setattr(runner.Run, "make_steps", lambda self: SlowFirstStep(make_steps(self)))
    cfg = RunConfig.model_validate({
        "name": "eta", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "digits", "limit_train": 384, "limit_val": 64},
        "train": {"epochs": 1, "batch_size": 32, "log_every": 2}})
    events = []
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path, emit=events.append)
    logs = [e for e in events if isinstance(e, StepsLogged)]
    assert [e.step for e in logs] == [2, 4, 6, 8, 10, 12]
    # the logged loss is per sample (about ln 10 at the start, not a window's sum), its samples-weighted mean
    # the epoch's train loss (6 logs of 64 samples each)
    [evaluated] = [e for e in events if isinstance(e, EpochEvaluated)]
    assert 1.5 < logs[0].loss < 3.5 and sum(e.loss for e in logs) / 6 == pytest.approx(evaluated.train_loss)
    # Bounds relative to the run's own timings, not absolute ones: a slow or busy machine stretches every step.
    first, middle = logs[0], logs[2]  # step 2 knows only the warm-up's pace; step 6 the steady one
    assert first.eta_s > WARM_UP_S  # ten more steps at the pace of two slow ones
    steady = (middle.elapsed_s - first.elapsed_s) / (middle.step - first.step)
    assert abs(middle.eta_s - steady * (12 - middle.step)) < 0.05
    naive = middle.elapsed_s / middle.step * (12 - middle.step)  # the warm-up spread over every step
    assert middle.eta_s < naive - WARM_UP_S / 2  # ...would be a whole warm-up (1 s) longer
    train_time, first_images = summary["train_time_s"], 2 * 32
    assert train_time > WARM_UP_S
    after_warm_up = (384 - first_images) / (train_time - first.elapsed_s)
    assert summary["throughput_img_s"] == pytest.approx(after_warm_up, rel=0.05)
    assert summary["throughput_img_s"] > 384 / train_time  # not the figure the warm-up drags down
    # the Live "mean": the same figure at the last log point (the summary's also counts the epoch's last moments)
    last = logs[-1]
    assert last.mean_images_per_s == pytest.approx((384 - first_images) / (last.elapsed_s - first.elapsed_s), rel=1e-6)
    assert summary["throughput_img_s"] <= last.mean_images_per_s * 1.0001


def test_slow_steps_are_logged_within_the_longest_gap_whatever_log_every(tmp_path, monkeypatch):
    """A Swin step on a CPU takes seconds: with log_every 10 and 4 steps an epoch, Live sat at 0 % for minutes."""
    from vitlab.engine import loop

    make_steps = runner.Run.make_steps
    monkeypatch.setattr(runner.Run, "make_steps", lambda self: SlowFirstStep(make_steps(self)))
    monkeypatch.setattr(loop, "MAX_LOG_GAP_S", WARM_UP_S / 2)  # the first step alone outlasts it
    cfg = RunConfig.model_validate({
        "name": "gap", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "digits", "limit_train": 384, "limit_val": 64},
        "train": {"epochs": 1, "batch_size": 32, "log_every": 100}})
    events = []
    train_run(cfg, experiment="e", runs_dir=tmp_path, emit=events.append)
    steps = [e.step for e in events if isinstance(e, StepsLogged)]
    assert steps[0] == 1 and steps[-1] == 12  # the slow first step is reported at once, not with the epoch's end
