"""The training loop: exact gradient accumulation, mixed precision, device-side running sums.

Exactness: the sample order depends only on (seed, epoch). Each epoch is cut into windows of
`batch_size x accumulation_steps` samples (the last one may be shorter) and each window into
micro-batches. Every micro-batch contributes sum(loss) / samples_in_window, so one optimizer step
sees the mean loss over its window whatever the micro-batch size: 64x1, 16x4 and 8x8 end at the same
weights up to float error, partial last window included.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from .distributed import Dist


class NonFiniteLoss(RuntimeError):
    pass


MAX_LOG_GAP_S = 5.0  # the longest a single-process run goes without a log point (a host sync costs ~us then)


class Cancelled(Exception):
    """args, when raised mid-epoch between log points: (global step, samples trained since the last log)."""


def epoch_order(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of an epoch: a function of (seed, epoch) alone, never of the batch size."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=g)


@dataclass
class Window:
    """One optimizer step: `samples` in the whole window (all ranks), this rank's micro-batches of it."""

    samples: int
    micro: list[torch.Tensor]
    weight: float = 1.0  # 0 for a rank with no sample in a short last window: it still joins the all-reduce


def windows(order: torch.Tensor, batch_size: int, accumulation_steps: int, world: int = 1,
            rank: int = 0) -> list[Window]:
    """Optimizer-step windows of batch_size x accumulation_steps x world samples; this rank's share."""
    effective = batch_size * accumulation_steps * world
    plan = []
    for i in range(0, len(order), effective):
        window = order[i:i + effective]
        share = window.tensor_split(world)[rank]
        if len(share):
            plan.append(Window(len(window), list(share.split(batch_size))))
        else:
            plan.append(Window(len(window), [window[:1]], weight=0.0))
    return plan


def autocast(device: torch.device, precision: str, *, cache: bool = True) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


@dataclass
class Running:
    """Counts between two host reads of the loss (the loss itself is summed on the device)."""

    samples: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)


@dataclass
class StepLog:
    loss: float
    samples: int
    seconds: float


@dataclass
class Fault:
    """Fault injection for tests of failure handling: an allocation no device can make (its own OOM), NaN."""

    kind: str  # "oom" | "nan"
    at_step: int


def micro_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, window_samples: int, cfg: TrainConfig,
               device: torch.device, scaler: torch.amp.GradScaler, *, world: int = 1, weight: float = 1.0,
               poison: bool = False, cache: bool = True) -> torch.Tensor:
    """Forward and backward one micro-batch of a window; returns the detached sum of its sample losses.

    The loss is the sum over the micro-batch divided by the samples in the whole window, so the
    gradients accumulated over a window are those of the window's mean loss (`vitlab check accumulation`
    verifies exactly this function). Under DDP, which averages gradients over `world` ranks, the loss
    is multiplied by `world` so the average is again the window's mean.
    """
    with autocast(device, cfg.precision, cache=cache):
        logits = model(x)
    loss_sum = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=cfg.label_smoothing) * weight
    if poison:
        loss_sum = loss_sum * float("nan")
    scaler.scale(loss_sum * (world / window_samples)).backward()
    return loss_sum.detach()


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, skipped: torch.Tensor) -> None:
    """The window's update. With fp16, GradScaler skips it on overflow and adapts its scale; `skipped` counts
    the skips. No host sync with a fused optimizer (it takes the scale and the overflow flag as device tensors),
    so the whole step can be captured in a CUDA graph."""
    scale_before = scaler._scale.clone() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    if scale_before is not None:  # GradScaler lowers its scale exactly when it skipped the step
        skipped += (scaler._scale < scale_before).to(skipped.dtype)


class Steps:
    """Takes optimizer steps, one window each, summing the sample losses into `loss` on the device."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device, dtype=torch.float64)

    def begin_epoch(self, order: torch.Tensor, epoch: int, batches) -> None:
        raise NotImplementedError

    def __call__(self, window: Window, poison: bool) -> None:
        raise NotImplementedError

    def take_loss(self) -> torch.Tensor:
        """The loss summed since the last call (a device tensor; reading it is the caller's host sync)."""
        taken = self.loss.clone()
        self.loss.zero_()
        return taken


class EagerSteps(Steps):
    """Op by op: any device, DDP (gradients all-reduced once per window), fp16 with GradScaler, any window."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 cfg: TrainConfig, device: torch.device, dist: Dist, skipped: torch.Tensor,
                 should_stop: Callable[[], bool]):
        super().__init__(device)
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.cfg, self.device, self.dist, self.skipped = cfg, device, dist, skipped
        self.should_stop = should_stop

    def begin_epoch(self, order: torch.Tensor, epoch: int, batches) -> None:
        self.batches = batches  # iterator of (x, y), one per micro-batch, in window order

    def __call__(self, window: Window, poison: bool) -> None:
        for i in range(len(window.micro)):
            x, y = next(self.batches)
            # DDP all-reduces gradients on the window's last backward only
            sync = self.dist.enabled and i < len(window.micro) - 1
            with self.model.no_sync() if sync else contextlib.nullcontext():
                self.loss += micro_step(self.model, x, y, window.samples, self.cfg, self.device, self.scaler,
                                        world=self.dist.world, weight=window.weight, poison=poison)
            # a long window (accumulation on a CPU) hears a cancel between micro-batches; ranks of a DDP
            # run must agree on when they stop, which costs a sync, so they hear it at log points only
            if not self.dist.enabled and i < len(window.micro) - 1 and self.should_stop():
                raise Cancelled()
        optimizer_step(self.optimizer, self.scaler, self.skipped)
        self.optimizer.zero_grad(set_to_none=True)


def train_epoch(
    steps: Steps,
    plan: list[Window],
    *,
    model: torch.nn.Module,
    dist: Dist,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    device: torch.device,
    step: int,
    on_log: Callable[[int, StepLog], None],
    should_stop: Callable[[], bool],
    fault: Fault | None = None,
) -> tuple[int, float]:
    """One epoch of optimizer steps. Returns (global step, mean train loss per sample)."""
    train_mode(model, cfg.freeze)
    epoch_sum = torch.zeros((), device=device, dtype=torch.float64)
    epoch_samples = 0
    run = Running()
    for window in plan:
        poison = fault is not None and fault.kind == "nan" and step + 1 >= fault.at_step
        try:
            steps(window, poison)
        except Cancelled:  # between the micro-batches of a window: the windows since the last log count
            raise Cancelled(step, run.samples) from None
        if fault and fault.kind == "oom" and step + 1 == fault.at_step:
            torch.empty(1 << 50, dtype=torch.uint8, device=device)  # 1 PiB: the device's own out-of-memory error
        scheduler.step()
        step += 1
        run.samples += window.samples
        run.steps += 1
        epoch_samples += window.samples
        # slow steps (Swin on a CPU: seconds each) are logged at least every MAX_LOG_GAP_S, so progress and ETA
        # move; one process only: DDP ranks must agree on their log points, and clocks differ
        late = not dist.enabled and time.perf_counter() - run.started >= MAX_LOG_GAP_S
        at_log = run.steps == cfg.log_every or window is plan[-1] or late
        # every rank stops at the same step; across ranks that costs a sync, so only at log points
        stopping = dist.any(should_stop(), device) if at_log or not dist.enabled else False
        if at_log or stopping:
            loss_sum = steps.take_loss()
            dist.sum_(loss_sum)
            epoch_sum += loss_sum
            loss = loss_sum.item() / run.samples  # the one host sync, every log_every steps
            if not math.isfinite(loss):
                raise NonFiniteLoss(loss, step)
            on_log(step, StepLog(loss, run.samples, time.perf_counter() - run.started))
            run = Running()
        if stopping:
            raise Cancelled()
    return step, epoch_sum.item() / max(epoch_samples, 1)


def train_mode(model: torch.nn.Module, freeze: str) -> None:
    """Training mode; with a frozen backbone (a linear probe) every module without a trainable parameter computes
    as at inference: BatchNorm keeps its statistics, and no dropout or stochastic depth (Swin's drop_path_rate 0.1)
    makes the features the head learns from noisy."""
    model.train()
    if freeze == "backbone":
        for m in model.modules():
            if not any(p.requires_grad for p in m.parameters()):
                m.eval()


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, *, device: torch.device, precision: str,
             dist: Dist, should_stop: Callable[[], bool] | None = None) -> tuple[float, float]:
    """(mean loss, top-1 accuracy) over the split (each rank its shard, summed); one host sync at the end.
    `should_stop` is heard between batches (an evaluation at 224 px on a CPU takes minutes)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    seen = torch.zeros((), device=device, dtype=torch.float64)
    for x, y in batches:
        if should_stop is not None and should_stop():
            raise Cancelled()
        with autocast(device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    dist.sum_(loss_sum, correct, seen)
    model.train()
    seen_n = max(seen.item(), 1)
    return loss_sum.item() / seen_n, correct.item() / seen_n
