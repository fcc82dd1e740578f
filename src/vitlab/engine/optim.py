"""The optimizer and the learning-rate schedule of a run, from its train config."""
from __future__ import annotations

import math
from typing import Any

import torch

from ..config import RunConfig

# Learned embeddings and position tables are not decayed, as in timm's and Swin's recipes (matched at the end of
# the parameter's name: timm's ViT, Hugging Face's Swin); neither are biases and norm scales (1-D).
NO_DECAY = ("pos_embed", "cls_token", "relative_position_bias_table", "position_embeddings")


def decay_groups(model: torch.nn.Module, weight_decay: float, split: bool = True) -> list[dict[str, Any]]:
    """The trainable parameters in two groups: the weights of linear and conv layers, decayed by `weight_decay`,
    and the rest at 0 (decay pulling a LayerNorm scale or a bias toward zero is not regularisation). split=False
    (train.weight_decay_on: all): one group, every parameter decayed."""
    decay, keep = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (keep if split and (p.ndim <= 1 or name.endswith(NO_DECAY)) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # an empty group is nothing to step (fused kernels included)


def make_optimizer(cfg: RunConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    t = cfg.train
    fused = {"fused": True} if device.type == "cuda" else {}
    groups = decay_groups(model, t.weight_decay, split=t.weight_decay_on == "weights")
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, **fused)
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=t.lr, **fused)


def make_scheduler(cfg: RunConfig, optimizer, steps_per_epoch: int):
    """Per optimizer step: linear warmup, then cosine to zero (or constant)."""
    total = cfg.train.epochs * steps_per_epoch
    warmup = round(cfg.train.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.train.scheduler == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
