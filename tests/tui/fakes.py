"""Fixed engine events and run summaries, for deterministic Live and Results snapshots."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from vitlab.engine.events import EpochEvaluated, Memory, RunFinished, RunStarted, StepsLogged, WarningRaised


def summary(name: str, experiment: str = "demo", **over) -> dict:
    s = {"name": name, "experiment": experiment, "status": "finished", "model": "ViT p2 d64 h4 L4",
         "params": 112_000, "trainable_params": 112_000, "flops": 1_900_000, "precision": "fp32",
         "batch_size": 32, "accumulation_steps": 1, "effective_batch": 32, "epochs": 20, "epochs_planned": 20,
         "train_time_s": 41.5, "throughput_img_s": 812.4, "mfu": None, "peak_memory_mb": 850.0,
         "memory_kind": "cpu", "accuracy": 0.9611, "best_accuracy": 0.9694, "eval_loss": 0.14,
         "train_loss": 0.1, "error": None, "config": {}}
    s.update(over)
    return s


def write_history(runs_dir: Path) -> None:
    """Three earlier runs on disk: finished, failed, cancelled."""
    rows = [("20250101-100000-vit-tiny", summary("vit-tiny")),
            ("20250101-110000-resnet18", summary("resnet18", model="ResNet-18", params=11_200_000, flops=37_000_000,
                                                 accuracy=0.9833, best_accuracy=0.9861, throughput_img_s=301.0,
                                                 epochs=5, epochs_planned=5, train_time_s=12.0)),
            ("20250102-090000-vit-big", summary("vit-big", status="failed", accuracy=None, best_accuracy=None,
                                                epochs=0, throughput_img_s=None, train_time_s=0.0,
                                                error="Out of memory. Lower train.batch_size.")),
            ("20250102-100000-vit-cut", summary("vit-cut", status="cancelled", epochs=3, accuracy=0.71,
                                                best_accuracy=0.71))]
    for dirname, s in rows:
        d = runs_dir / "demo" / dirname
        d.mkdir(parents=True)
        (d / "config.yaml").write_text("name: x\n")
        (d / "summary.json").write_text(json.dumps(s))


MEM = Memory("cpu", 812.0, 812.0, 850.0, 16384.0)


def live_events(run: str = "vit-a", experiment: str = "tiny", epochs_done: int = 2) -> list:
    steps_per_epoch, epochs = 10, 4
    events = [RunStarted(run, experiment, "runs/tiny/x", 0, 2, {}, "ViT p2 d32 h2 L1", 9_930, 9_930, 172_000,
                         "cpu (2 threads)", epochs, 0, steps_per_epoch, 1437, 360, 10, 64)]
    loss = 2.3
    for epoch in range(1, epochs_done + 1):
        for k in range(2, steps_per_epoch + 1, 2):
            step = (epoch - 1) * steps_per_epoch + k
            loss *= 0.95
            events.append(StepsLogged(run, experiment, epoch, step, epochs * steps_per_epoch, loss, 3e-3,
                                      7000.0 + 10 * step, 7200.0, 0.05 * step, 0.05 * (40 - step), MEM))
        events.append(EpochEvaluated(run, experiment, epoch, epochs, loss * 1.05, loss * 0.9, 0.3 * epoch,
                                     0.6, 0.5 * epoch))
    events.append(WarningRaised(run, experiment, "precision-on-cpu", "fp16 on CPU is slow; use fp32"))
    return events


def finished_event(run: str = "vit-a", experiment: str = "tiny") -> RunFinished:
    return RunFinished(run, experiment, summary(run, experiment, run_dir=f"runs/{experiment}/{run}",
                                                started_at="2025-01-03T09:30:05"))


def left_training(runs_dir: Path) -> Path:
    """A run an earlier vitlab left training: `running`, with a fresh heartbeat of a live process (this one)."""
    run_dir = runs_dir / "old" / "20250101-100000-vit-bg"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: vit-bg\n")
    (run_dir / "summary.json").write_text(json.dumps(summary("vit-bg", experiment="old", status="running")))
    (run_dir / "heartbeat").write_text(f"{os.getpid()} 0 {socket.gethostname()}\n")
    return run_dir


async def until_left_training_is_seen(app, pilot) -> None:
    """The app looks for runs left training in a thread after its first paint."""
    for _ in range(50):
        if app.left_training():
            return
        await pilot.pause(0.1)
