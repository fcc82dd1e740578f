"""CPU trainings on one machine share its cores: each takes its part of torch's threads while others train,
and takes them back when they end; OMP_NUM_THREADS, when set, is left to the user."""
import os
import subprocess
import sys

import psutil
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine.cpu_share import CpuShare
from vitlab.engine.events import RunStarted, WarningRaised
from vitlab.engine.runner import train_run


@pytest.fixture
def unpinned(monkeypatch):
    before = torch.get_num_threads()  # the suite's pinned count: later tests compare runs trained with it
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def other_training(tmp_path):
    """A live process registered as a CPU training (what another vitlab's CpuShare writes)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (tmp_path / str(proc.pid)).write_text(repr(psutil.Process(proc.pid).create_time()))
    yield proc
    proc.kill()
    proc.wait()


def test_trainings_share_the_threads_and_take_them_back(tmp_path, unpinned, other_training):
    (tmp_path / "4194304").write_text("1.0")  # a process that died without leaving: pid past pid_max
    (tmp_path / str(os.getppid())).write_text("12.5")  # a live pid, but not the process that registered
    (tmp_path / "17").write_text("")  # being written
    share = CpuShare(tmp_path)
    assert (tmp_path / str(os.getpid())).exists()
    note = share.adapt(now=True)
    assert "2 vitlab trainings share this machine's CPU: 1 of 2 threads each" in note
    assert torch.get_num_threads() == 1
    assert not (tmp_path / "4194304").exists() and not (tmp_path / str(os.getppid())).exists()
    other_training.kill()
    other_training.wait()
    assert share.adapt() is None  # looked moments ago: not again yet
    assert share.adapt(now=True) == "the other CPU trainings ended: back to 2 threads"
    assert torch.get_num_threads() == 2 and share.describe() == "cpu (1-2 threads, shared)"
    share.adapt(now=True)
    share.close()
    assert not (tmp_path / str(os.getpid())).exists()


def test_omp_num_threads_is_the_users_choice(tmp_path, monkeypatch, other_training):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    share = CpuShare(tmp_path)
    assert share.adapt(now=True) is None and torch.get_num_threads() == before
    assert not (tmp_path / str(os.getpid())).exists()


def test_a_run_says_it_shares_the_cpu_and_gives_the_threads_back(tmp_path, unpinned, other_training, monkeypatch):
    monkeypatch.setattr("vitlab.engine.cpu_share.REGISTRY", tmp_path)
    cfg = RunConfig.model_validate({
        "name": "v", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 64, "limit_val": 32},
        "train": {"epochs": 1, "batch_size": 32, "device": "cpu"}})
    events = []
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path / "runs", emit=events.append)
    assert summary["status"] == "finished"
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.device == "cpu (1 thread)"
    assert any(isinstance(e, WarningRaised) and e.code == "cpu-shared" for e in events)
    assert summary["device"] == "cpu (1 thread)"  # what it trained with, not what it has again after
    assert torch.get_num_threads() == 2 and not (tmp_path / str(os.getpid())).exists()


def test_check_accumulation_takes_its_share_beside_a_training(tmp_path, unpinned, monkeypatch):
    """`vitlab check` beside a TUI training took 2 threads of 2 and slowed it 45-fold, unseen by the training."""
    import types

    import vitlab.engine.checks as checks
    import vitlab.engine.cpu_share as cpu_share
    from vitlab.cli import main as cli_main

    monkeypatch.setattr(cpu_share, "REGISTRY", tmp_path)
    registered = []

    def fake_check(run):
        registered.append([p.name for p in tmp_path.iterdir()])
        return types.SimpleNamespace(windows=[], split=False, batchnorm=False, ok=True)

    monkeypatch.setattr(checks, "check_accumulation", fake_check)
    assert cli_main(["check", "accumulation", "quickstart", "--run", "vit-tiny"]) == 0
    assert registered == [[str(os.getpid())]] and not list(tmp_path.iterdir())  # registered while it ran, then gone
