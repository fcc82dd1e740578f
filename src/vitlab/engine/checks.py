"""Science checks. `check_accumulation`: the gradient of one effective batch computed in one pass equals
the gradient the training loop accumulates over the run's micro-batches (fp32, same weights, same samples), in a
full window and in the epoch's shorter last one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import RunConfig, from_pretrained
from .loop import Window, epoch_order, micro_step, windows

TOLERANCE = 1e-4  # max relative difference accepted in fp32 (summation order differs)
# A parameter's difference is taken relative to its own largest gradient, but never to less than this share
# of the model's largest: some gradients are exactly zero in theory and float noise in practice (the key
# bias of attention: softmax ignores a shift shared by all keys; a separate tensor in Hugging Face's Swin,
# where it is ~1e-10 of the largest gradient), and noise over noise is O(1) whether or not accumulation is
# right. A scaling error scales every gradient, so the large ones still show it in full.
NOISE_FLOOR = 1e-3


@dataclass(frozen=True)
class WindowCheck:
    micro_batches: list[int]  # sizes of the window's micro-batches
    max_rel_diff: float
    worst_param: str


@dataclass(frozen=True)
class AccumulationCheck:
    run: str
    # the epoch's first window, and its last where that is shorter: a partial window must weigh its micro-batches
    # by its own samples, which a loop dividing by the nominal batch gets right everywhere but there
    windows: list[WindowCheck]
    batchnorm: bool  # BN layers were held in eval mode: in training they see per-micro-batch statistics
    split: bool  # the run has no accumulation: its batch was split in two, or the check would compare it to itself

    @property
    def worst(self) -> WindowCheck:
        return max(self.windows, key=lambda w: w.max_rel_diff)

    @property
    def max_rel_diff(self) -> float:
        return self.worst.max_rel_diff

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= TOLERANCE


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def check_accumulation(cfg: RunConfig, device: torch.device | None = None) -> AccumulationCheck:
    from .data import load_data
    from .models import build_model

    device = device or torch.device("cpu")
    t = cfg.train.model_copy(update={"precision": "fp32"})
    torch.manual_seed(t.seed)
    data = load_data(cfg.data, device, seed=t.seed, pretrained=from_pretrained(cfg.model))
    split = t.accumulation_steps == 1  # a batch of 1 too: 1 + 1, or the check would compare a pass with itself
    if split:  # the batch as it trains: no more than the training set (a batch of 4096 on 1438 images is 1438)
        t = t.model_copy(update={"batch_size": (min(t.batch_size, data.train.num_samples) + 1) // 2,
                                 "accumulation_steps": 2})
    model = build_model(cfg, data.num_classes).to(device)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # Eval mode: BN batch statistics are per micro-batch by design, so compare with frozen stats; and dropout
    # and stochastic depth (Swin's drop_path_rate 0.1) would draw different masks in the one pass and in the
    # micro-batches, which is not the scaling this checks.
    model.eval()
    plan = windows(epoch_order(data.train.num_samples, t.seed, 0), t.batch_size, t.accumulation_steps)
    checked = [plan[0]] + ([plan[-1]] if plan[-1].samples != plan[0].samples else [])
    return AccumulationCheck(cfg.name, [_check_window(model, data, w, t, cfg.data.use_augment, device)
                                        for w in checked], has_bn, split)


def _check_window(model, data, window: Window, t, augment: bool, device: torch.device) -> WindowCheck:
    """The gradient of the window's mean loss, in one pass and by the book (not through micro_step, whose own
    mistake would then be on both sides), against the one its micro-batches accumulate."""
    model.zero_grad(set_to_none=True)
    [(x, y)] = list(data.train.batches([torch.cat(window.micro)], epoch=0, augment=augment))
    F.cross_entropy(model(x).float(), y, label_smoothing=t.label_smoothing).backward()
    reference = _grads(model)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    model.zero_grad(set_to_none=True)
    for x, y in data.train.batches(window.micro, epoch=0, augment=augment):
        micro_step(model, x, y, window.samples, t, device, scaler)
    accumulated = _grads(model)

    worst, worst_name = 0.0, ""
    floor = NOISE_FLOOR * max((g.abs().max().item() for g in reference.values()), default=0.0)
    for name, ref in reference.items():
        diff = (accumulated[name] - ref).abs().max().item() / max(ref.abs().max().item(), floor, 1e-12)
        if diff > worst:
            worst, worst_name = diff, name
    return WindowCheck([len(i) for i in window.micro], worst, worst_name)
