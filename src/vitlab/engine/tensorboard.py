"""TensorBoard event files in the run directory (`train.tensorboard: true`), fed by the event stream."""
from __future__ import annotations

from pathlib import Path

from ..errors import VitlabError
from .events import EpochEvaluated, Event, RunEnded, StepsLogged


class TensorBoardLog:
    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise VitlabError("train.tensorboard needs the tensorboard package: pip install 'vitlab[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(run_dir))

    def __call__(self, event: Event) -> None:
        w = self.writer
        if isinstance(event, StepsLogged):
            w.add_scalar("train/loss", event.loss, event.step)
            w.add_scalar("train/lr", event.lr, event.step)
            w.add_scalar("perf/images_per_s", event.images_per_s, event.step)
            w.add_scalar("memory/allocated_mb", event.memory.allocated_mb, event.step)
            w.add_scalar("memory/peak_mb", event.memory.peak_mb, event.step)
        elif isinstance(event, EpochEvaluated):
            w.add_scalar("eval/loss", event.eval_loss, event.epoch)
            w.add_scalar("eval/accuracy", event.accuracy, event.epoch)
            w.add_scalar("train/epoch_loss", event.train_loss, event.epoch)
        elif isinstance(event, RunEnded):
            w.close()
        if isinstance(event, (StepsLogged, EpochEvaluated)):
            w.flush()
