"""A run's img/s is only comparable with another's when both had the CPU to themselves: other programs' share of
the machine's CPU time is measured each epoch and warned of once."""
import os
import subprocess
import sys
import time

from vitlab.config import RunConfig
from vitlab.engine import contention as contention_module
from vitlab.engine.contention import Contention
from vitlab.engine.events import WarningRaised
from vitlab.engine.runner import train_run


def test_other_programs_busy_on_every_core_are_measured(monkeypatch):
    monkeypatch.setattr(contention_module, "WINDOW_S", 0.5)
    watch = Contention()
    # left behind by a shell that ends at once: another program's, not a child of this one (a DataLoader
    # worker's time is the run's own); each spins for 2 s, then ends
    spin = f"{sys.executable} -c 'import time\nt = time.time()\nwhile time.time() - t < 2: pass'"
    subprocess.run(["sh", "-c", f"for i in $(seq {os.cpu_count() or 1}); do {spin} & done"], check=True)
    time.sleep(1.5)  # this process idle: the machine's busy time is theirs
    share = watch.others_share()
    assert share is not None and share > 0.6
    assert watch.others_share() is None  # a new window began, shorter than WINDOW_S


def test_a_run_beside_busy_programs_is_warned_once(tmp_path, monkeypatch):
    monkeypatch.setattr(Contention, "others_share", lambda self: 0.5)  # the measurement itself: above
    cfg = RunConfig.model_validate({"name": "r", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16,
                                                           "heads": 1, "layers": 1},
                                    "data": {"dataset": "synthetic", "limit_train": 64, "limit_val": 32},
                                    "train": {"epochs": 3, "batch_size": 32}})
    events = []
    train_run(cfg, experiment="e", runs_dir=tmp_path, emit=events.append)
    [warning] = [e for e in events if isinstance(e, WarningRaised) and e.code == "cpu-contended"]
    assert warning.message.startswith("other programs used 50% of this machine's CPU time during epoch 1: this "
                                      "run's img/s and training time read lower than on a quiet machine")
