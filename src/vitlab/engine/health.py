"""Training-health checks raised as warnings in the event stream, so the CLI and the TUI both show them.

They catch the mistakes that leave a model at chance (attention that mixes images across the batch left ViTs
at 1 % on CIFAR-100): a loss stuck at ln(classes), chance accuracy,
GradScaler skipping many steps, and precisions that make no sense on the device.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Warn = Callable[[str, str], None]


class HealthMonitor:
    def __init__(self, num_classes: int, precision: str, warmup_epochs: float = 0):
        self.num_classes = num_classes
        self.precision = precision
        # judged after the first epoch at full lr: during warmup a model at chance is expected, not news
        self.judge_epoch = math.ceil(warmup_epochs) + 1
        self.warned: set[str] = set()

    def _once(self, code: str, message: str, warn: Warn) -> None:
        if code not in self.warned:
            self.warned.add(code)
            warn(code, message)

    def at_start(self, device: torch.device) -> list[tuple[str, str]]:
        if device.type == "cpu" and self.precision == "fp16":
            return [("precision-on-cpu", "fp16 on the CPU is emulated and slow, and gains nothing; "
                                         "use fp32 (or bf16) on the CPU, fp16/bf16 on a GPU.")]
        if device.type == "cuda" and self.precision == "bf16" and not torch.cuda.is_bf16_supported():
            return [("precision-unsupported", "this GPU has no native bf16; use fp16 (with loss scaling) instead.")]
        return []

    def on_steps(self, step: int, skipped: int, warn: Warn) -> None:
        # A few skips while GradScaler finds its scale are normal; many mean fp16 keeps overflowing.
        if skipped > max(10, 0.1 * step):
            self._once("scaler-skipping",
                       f"GradScaler skipped {skipped} of {step} optimizer steps (fp16 overflow): the model trains "
                       "on fewer steps than planned; use bf16 or a lower lr.", warn)

    def on_epoch(self, epoch: int, train_loss: float, accuracy: float, warn: Warn) -> None:
        if epoch != self.judge_epoch:
            return
        chance_loss = math.log(self.num_classes)
        at_chance = accuracy < 1.5 / self.num_classes
        # a loss still near ln(C) alone is a slow start (the quickstart ViT: 2.29 and 21 % on digits after
        # epoch 1, 94 % at the end); with chance accuracy too, nothing reaches the classifier
        if abs(train_loss - chance_loss) < 0.05 * chance_loss and at_chance:
            self._once("not-learning",
                       f"after epoch {epoch} the train loss is {train_loss:.3f}, about ln({self.num_classes}) = "
                       f"{chance_loss:.3f}, with chance accuracy: so far the model predicts uniformly. If the next "
                       "epochs do not move it, it is not learning: check lr and precision (and in a model of your "
                       "own, that attention mixes the tokens within each image, not across the batch).", warn)
        if at_chance:
            self._once("chance-accuracy",
                       f"after epoch {epoch} the accuracy is {accuracy:.1%}, chance level for {self.num_classes} "
                       f"classes ({1 / self.num_classes:.1%}). Check lr, labels and the model.", warn)
