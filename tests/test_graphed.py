"""The whole-step CUDA-graph path: same steps as the eager loop, and a clear word when it can't apply.

Capture and replay need a GPU (bench/gpu_check.py runs them there); on the CPU the graphed path runs
its steps uncaptured, which checks everything around the graph: indices, augmentation, accumulation,
the short last window and the loss accounting.
"""
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine import graphed
from vitlab.engine.data import load_data
from vitlab.engine.distributed import Dist
from vitlab.engine.events import WarningRaised
from vitlab.engine.loop import Fault
from vitlab.engine.runner import train_run

MODEL = {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 2}


def config(**train):
    # 200 samples, window 48: four full windows and a short last one of 8 every epoch; augmentation on
    return RunConfig.model_validate({
        "name": "g", "model": MODEL,
        "data": {"dataset": "synthetic", "image_size": 16, "limit_train": 200, "limit_val": 64, "augment": True},
        "train": {"epochs": 2, "batch_size": 16, "accumulation_steps": 3, "optimizer": "adam", "lr": 3e-3,
                  "log_every": 2, **train}})


def weights(summary):
    return torch.load(f"{summary['run_dir']}/checkpoint.pt", weights_only=True)["model"]


class OverflowingScaler(torch.amp.GradScaler):
    """GradScaler starting at 2**22 instead of 2**16, so the tiny model's fp16 gradients overflow for the first
    few steps: both paths must skip the same steps, count them and lower the scale alike."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "init_scale": 2.0 ** 22})


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")  # skipped steps
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graphed_path_takes_the_eager_steps_bit_for_bit(tmp_path, monkeypatch, precision):
    monkeypatch.setattr(torch.amp, "GradScaler", OverflowingScaler)  # the runner builds torch.amp.GradScaler(...)
    eager = train_run(config(cuda_graphs=False, precision=precision), experiment="eager", runs_dir=tmp_path)
    used = []
    monkeypatch.setattr(graphed, "ineligible", lambda *a: None)  # let the CPU take the graphed path
    original = graphed.GraphedSteps.__call__
    monkeypatch.setattr(graphed.GraphedSteps, "__call__", lambda self, *a: used.append(1) or original(self, *a))
    steps = train_run(config(cuda_graphs="auto", precision=precision), experiment="graphed", runs_dir=tmp_path)
    assert len(used) == steps["steps"] == eager["steps"] == 10
    assert steps["train_loss"] == eager["train_loss"] and steps["accuracy"] == eager["accuracy"]
    assert steps["skipped_steps"] == eager["skipped_steps"]
    assert (0 < eager["skipped_steps"] < 10) == (precision == "fp16")  # some steps skipped, some taken
    a, b = weights(eager), weights(steps)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_asking_for_graphs_where_they_cannot_run_says_why(tmp_path):
    events = []
    summary = train_run(config(epochs=1, cuda_graphs=True), experiment="w", runs_dir=tmp_path, emit=events.append)
    assert summary["status"] == "finished" and summary["cuda_graphs"] is False
    [warning] = [e for e in events if isinstance(e, WarningRaised) and e.code == "cuda-graphs"]
    assert "CUDA device" in warning.message


@pytest.mark.parametrize("change, reason", [({"optimizer": "sgd"}, "adam"), ({}, "VITLAB_INJECT_FAULT")])
def test_ineligible_runs_name_the_reason(change, reason):
    cfg = config(**change)
    data = load_data(cfg.data, torch.device("cpu"))
    fault = Fault("nan", 1) if not change else None
    cuda = torch.device("cuda", 0)  # only compared against, never used
    assert reason in graphed.ineligible(cfg.train, cuda, data, Dist(), fault)
    assert "CUDA" in graphed.ineligible(cfg.train, torch.device("cpu"), data, Dist(), None)


def test_fp16_runs_are_graphed_too():
    """GradScaler's skip-or-step and scale update stay on the device with a fused optimizer (no host read)."""
    cfg = config(precision="fp16")
    data = load_data(cfg.data, torch.device("cpu"))
    assert graphed.ineligible(cfg.train, torch.device("cuda", 0), data, Dist(), None) is None
