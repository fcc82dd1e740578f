"""Whole-step CUDA graphs: every micro-batch of a window and the optimizer update, captured once, replayed.

Small models at small batches are bound by kernel launches, not FLOPs: ViT-A at batch 64 launches
about a thousand kernels a step, each shorter than the CPU needs to launch it. Replaying one captured
graph per optimizer step takes the CPU out of the hot loop. Capturing the whole accumulation window,
not each micro-batch, is what keeps accumulation cheap: a second micro-batch costs its GPU work only.

A step is capturable when its shapes and addresses are fixed: the window's sample indices and the
epoch's augmentation parameters are copied into fixed device buffers, the learning rate is a device
tensor that the scheduler fills, the optimizer is fused Adam/AdamW, and the loss is summed into a fixed
device scalar that the loop reads on its logging cadence. fp16 fits too: a fused optimizer takes
GradScaler's scale and overflow flag as device tensors and skips the update itself, and the scale's update
is a device op, so skip-or-step happens inside the replay (the pattern of torch's own
test_graph_scaling_fused_optimizers). The first windows run eagerly on a side stream (cuBLAS, allocator
and torch.compile warm up), and an epoch's short last window, which has another shape, runs eagerly.
Every path runs the same `_window`, so a replay is the eager step, op for op.

Gradients cost no zeroing and no per-parameter adds: the window's first backward writes them fresh
(they start as None; inside a capture they come from the graph's own memory pool, so every replay
writes the same addresses the captured optimizer step reads), and each later micro-batch's gradients
are added in one multi-tensor launch instead of one in-place add per parameter (a hundred kernels a
micro-batch for ViT-A, about a tenth of its step).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from ..config import TrainConfig
from .data import Data, Split, TensorSplit, to_device
from .distributed import Dist
from .loop import Fault, Steps, Window, micro_step, optimizer_step

WARMUP_WINDOWS = 3  # eager steps on a side stream before the capture, as torch's CUDA-graph notes ask

# Capturable optimizers warn when they step outside a capture (warm-up and short windows do, by design).
warnings.filterwarnings("ignore", message=".*capturable=True.*")


def ineligible(cfg: TrainConfig, device: torch.device, data: Data, dist: Dist, fault: Fault | None) -> str | None:
    """Why this run cannot replay CUDA graphs, or None when it can."""
    if device.type != "cuda":
        return "they need a CUDA device"
    if dist.enabled:
        return "DistributedDataParallel all-reduces from gradient hooks outside the graph"
    if cfg.optimizer not in ("adam", "adamw"):
        return f"optimizer {cfg.optimizer} has no capturable fused step; use adam or adamw"
    if not resident(data.train):
        return "the training set is not resident on the GPU (data.on_device)"
    if fault is not None:
        return "a fault is being injected (VITLAB_INJECT_FAULT)"
    return None


def resident(split: Split) -> bool:
    return isinstance(split, TensorSplit) and split.images.device == split.labels.device


class GraphedSteps(Steps):
    """Optimizer steps replayed from one CUDA graph per full window (eager where a graph can't apply)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 skipped: torch.Tensor, split: TensorSplit, cfg: TrainConfig, device: torch.device, *, augment: bool,
                 warn: Callable[[str], None]):
        super().__init__(device)
        self.warn = warn
        self.model, self.optimizer, self.split, self.cfg, self.device = model, optimizer, split, cfg, device
        self.scaler, self.skipped = scaler, skipped
        # False on the CPU (which takes this path only in the tests) or after a failed capture: the same steps, eager
        self.capture = device.type == "cuda"
        self.window_samples = cfg.batch_size * cfg.accumulation_steps
        self.idx = torch.zeros(self.window_samples, dtype=torch.long, device=device)
        self.params = torch.zeros(split.num_samples, 3, dtype=torch.long, device=device) if augment else None
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self.side: torch.cuda.Stream | None = None  # one for every warm-up window: the allocator reuses a freed block
        # only on the stream it was allocated on, so a stream each reserved a window's activations each

    def begin_epoch(self, order: torch.Tensor, epoch: int, batches) -> None:
        self.order = to_device(order, self.device)  # one copy per epoch: a copy per step would sync the host
        if self.params is not None:
            self.params.copy_(to_device(self.split.augment_params(epoch), self.device))
        self.offset = 0

    def __call__(self, window: Window, poison: bool) -> None:
        idx = self.order[self.offset:self.offset + window.samples]
        self.offset += window.samples
        if window.samples != self.window_samples or not self.capture:
            self._window(idx)
            self.optimizer.zero_grad(set_to_none=True)  # a replay never reads these: don't hold their memory
            return
        self.idx.copy_(idx)
        if self.graph is not None:
            self.graph.replay()
        elif self.warm < WARMUP_WINDOWS:
            self.warm += 1
            self.side = side = self.side or torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._window(self.idx)
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            try:
                self.graph = self._capture()
            except RuntimeError as e:  # an op in this model can't be captured: keep training, eagerly
                torch.cuda.synchronize(self.device)
                self.capture = False
                self.warn(f"CUDA graph capture failed, training on without graphs: {str(e).splitlines()[0][:200]}")
                self._window(self.idx)
                return
            self.graph.replay()  # the capture only recorded this window's step: now take it

    def _window(self, idx: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        for i, part in enumerate(idx.split(self.cfg.batch_size)):
            held = self._take_grads() if i else []
            x, y = self.split.transform(self.split.images[part], part, self.params)
            # no autocast weight cache: a capture must not keep casts made outside it
            self.loss += micro_step(self.model, x, y, len(idx), self.cfg, self.device, self.scaler, cache=False)
            self._add_back(held)
        optimizer_step(self.optimizer, self.scaler, self.skipped)

    def _take_grads(self) -> list[torch.Tensor | None]:
        held = [p.grad for p in self.trainable]
        for p in self.trainable:
            p.grad = None
        return held

    def _add_back(self, held: list[torch.Tensor | None]) -> None:
        """Accumulate the micro-batch's fresh gradients into the window's, all in one foreach add."""
        into, fresh = [], []
        for p, g in zip(self.trainable, held):
            if g is None:
                continue
            if p.grad is not None:
                into.append(g)
                fresh.append(p.grad)
            p.grad = g
        if into:
            torch._foreach_add_(into, fresh)

    def _capture(self) -> torch.cuda.CUDAGraph:
        for group in self.optimizer.param_groups:
            group["capturable"] = True
            if not isinstance(group["lr"], torch.Tensor):  # a float would be frozen into the graph
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._window(self.idx)
        return graph
