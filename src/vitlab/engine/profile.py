"""Params and FLOPs per image, without data, weights or training.

FLOPs follow fvcore's convention, what vision papers report: one forward pass, a multiply-add counted
once. fvcore has no handle for `aten::scaled_dot_product_attention`, so attention (QK^T and AV) would
silently count as zero; we register one. timm's ViT and transformers' Swin both call SDPA by default
(Swin's eager path uses matmuls, which fvcore counts the same). ViTs are cross-checked against the
closed form.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig, SwinModel, ViTModel

# What fvcore (with our attention handle) leaves out: elementwise work, small next to the matmuls.
NOT_COUNTED = ("activations (GELU/ReLU)", "softmax", "residual adds", "attention scaling and masking",
               "dropout", "position-embedding adds", "max-pooling and token averaging",
               "optimizer and backward (training is about 3x forward)")


def _shape(value: Any) -> list[int]:
    return value.type().sizes()


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::scaled_dot_product_attention(q, k, v, ...): QK^T is B*H*Lq*Lk*E MACs, AV is B*H*Lq*Lk*Ev."""
    q, k, v = (_shape(x) for x in inputs[:3])
    batch_heads = prod(q[:-2])
    lq, e = q[-2], q[-1]
    lk, ev = k[-2], v[-1]
    return batch_heads * lq * lk * (e + ev)


def count_flops(model: nn.Module, image_size: int) -> int:
    """Forward MACs for one image, attention included."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore's import and tracer warnings are noise here
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(model, torch.zeros(1, 3, image_size, image_size, device=device))
            analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return int(analysis.total())
    finally:
        model.train(was_training)


def vit_flops_analytic(model: ViTModel, image_size: int, num_classes: int) -> int:
    """Closed-form forward MACs of a patchify-stem ViT, the same convention as fvcore (which it equals)."""
    if model.stem != "patchify":
        raise ValueError("the closed form covers the patchify stem only; count a conv-stem ViT with count_flops")
    d, grid = model.embed_dim, image_size // model.patch_size
    patches, tokens = grid * grid, model.tokens(image_size)
    embed = patches * 3 * model.patch_size ** 2 * d
    attention = 2 * tokens * tokens * d  # QK^T and AV over all heads
    block = tokens * (3 * d * d + d * d + 2 * d * model.hidden_dim) + attention  # qkv, proj, MLP
    # fvcore counts 5 per element of an affine LayerNorm: two per block on every token, and a final one on
    # every token before the class token is taken, or (timm's fc_norm) on the one averaged vector
    final_norm = (tokens if model.class_token else 1) if model.final_norm else 0
    norms = 5 * d * (2 * model.layers * tokens + final_norm)
    return embed + model.layers * block + norms + d * num_classes


@dataclass(frozen=True)
class Profile:
    name: str
    params: int
    trainable_params: int
    flops: int | None  # None: not counted (a model too large to trace for a hint)
    config: dict


def classes_for(cfg: RunConfig) -> int:
    """The head size a run of cfg will get, without loading its data."""
    if cfg.data.classes is not None:
        return cfg.data.classes
    train = Path(cfg.data.root) / "train"
    found = [p for p in train.iterdir() if p.is_dir()] if train.is_dir() else []
    return len(found) or 1000  # an image folder not on disk yet: ImageNet-sized head


def profile_run(cfg: RunConfig, trace_limit: int | None = None) -> Profile:
    """Params from the model built on the meta device (shapes only: no memory, however large), FLOPs from a
    trace of the real model. Above `trace_limit` parameters (the TUI's hint as a form is typed) the real model is
    not built: a patchify ViT's FLOPs come from the closed form, other models' are left out (None)."""
    from .models import build_model, count_params

    classes = classes_for(cfg)
    with torch.device("meta"):
        params, trainable = count_params(build_model(cfg, classes, load_weights=False))
    if trace_limit is not None and params > trace_limit:
        m = cfg.model
        flops = vit_flops_analytic(m, cfg.data.size, classes) if isinstance(m, ViTModel) and m.stem == "patchify" \
            else None
        return Profile(cfg.name, params, trainable, flops, cfg.resolved())
    model = build_model(cfg, classes, load_weights=False)
    return Profile(cfg.name, params, trainable, count_flops(model, cfg.data.size), cfg.resolved())


def guessed(cfg: RunConfig) -> str | None:
    """What the profile assumed for what is not on this machine (the run would refuse to start; the profile, which
    needs neither data nor weights, says so): a Swin's shapes when its model.weights are missing, the classes of
    an image folder that is not there."""
    from .models import saved_swin_config

    m, notes = cfg.model, []
    if isinstance(m, SwinModel) and m.weights and saved_swin_config(m, cfg.data.size, classes_for(cfg)) is None:
        notes.append(f"model.weights {m.weights} is not on this machine: the {m.variant} variant's shapes are "
                     "assumed")
    if cfg.data.classes is None and not (Path(cfg.data.root) / "train").is_dir():
        notes.append(f"no image folder at {Path(cfg.data.root) / 'train'}: a 1000-class head is assumed")
    return "; ".join(notes) or None
