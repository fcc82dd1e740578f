"""Run one configured training run end to end: set up, train, evaluate, record, and end cleanly.

Whatever happens (finish, cancel, OOM, non-finite loss, bad data), the run directory keeps its
config, metrics, summary and last checkpoint, and the caller gets a summary instead of an exception.
"""
from __future__ import annotations

import datetime as dt
import gc
import math
import os
import re
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from ..config import (ExperimentConfig, ResNet18Model, RunConfig, TrainConfig, ViTModel, from_pretrained,
                      run_label)
from ..errors import CannotStart, DataError, StoreError, VitlabError
from . import device as devices
from . import distributed
from .contention import BUSY_SHARE, Contention, contention_note
from .continuation import TRAIN, Step, shared_plan
from .cpu_share import CpuShare
from .events import (Emit, EpochEvaluated, Event, RunCancelled, RunFailed, RunFinished, RunKept, RunStarted,
                     ShouldStop, StepsLogged, WarningRaised, ignore, never)
from .health import HealthMonitor
from .loop import (Cancelled, EagerSteps, Fault, NonFiniteLoss, StepLog, Steps, epoch_order, evaluate, train_epoch,
                   windows)
from .optim import make_optimizer, make_scheduler
from .resumable import resumable
from .store import NullStore, RunStore, drop_metrics_after_checkpoint, started_from_name, way_back

# Horizontal fusion of independent small kernels (weight casts, bias-gradient sums): ViT-A's compiled
# forward+backward at batch 64 took 1.53 ms instead of 1.76 ms on an H200. Triton (GPU) code only.
COMPILE_OPTIONS = {"cuda": {"combo_kernels": True}}
# Compiling costs about 25 s of a run (ViT-A on an H200) and then saves about 14 us an image (CUDA graphs
# alone 22,300 img/s, compiled 32,100): it pays off from about two million training images.
COMPILE_PAYS_OFF_IMAGES = 2_000_000


def compile_wanted(cfg: RunConfig, device: torch.device, dist: distributed.Dist,
                   train_samples: int) -> tuple[bool, str]:
    """Whether to torch.compile the model, and why (for the run log)."""
    setting = cfg.train.compile
    if setting != "auto":
        return setting, f"torch.compile {'on' if setting else 'off'} (train.compile: {str(setting).lower()})"
    images = cfg.train.epochs * train_samples
    if device.type != "cuda" or cfg.model.kind != "vit" or dist.enabled:
        return False, "torch.compile off (auto: only single-process ViT runs on CUDA; train.compile: true forces it)"
    if images < COMPILE_PAYS_OFF_IMAGES:
        return False, (f"torch.compile off (auto): {images:,} training images, compilation pays off from "
                       f"{COMPILE_PAYS_OFF_IMAGES:,}; train.compile: true forces it")
    return True, f"torch.compile on (auto): {images:,} training images repay its start-up"

CPU_OOM = "DefaultCPUAllocator: can't allocate memory"  # torch's RuntimeError when RAM (or ulimit -v) runs out


def oom_advice(device: torch.device) -> str:
    lower = "precision bf16 (or fp16), " if device.type == "cuda" else ""  # on a CPU fp16 is slow and saves little
    where = "GPU memory" if device.type == "cuda" else "the machine's memory"
    return (f"Out of {where}. Lower train.batch_size and raise train.accumulation_steps to keep the same "
            f"effective batch, use {lower}a smaller data.image_size, or a smaller model.")


# how gloo and NCCL say a peer is gone when the error reaches Python as a plain RuntimeError (through DDP's
# gradient hook) rather than torch.distributed.DistError
PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "gloo/transport", "NCCL")


def peer_lost(e: Exception) -> bool:
    return isinstance(e, torch.distributed.DistError) or any(m in str(e) for m in PEER_LOST)


def first_sentence(e: Exception) -> str:
    """gloo's "[/__w/pytorch/.../pair.cc:545] Read error [127.0.0.1]:4514: Connection reset by peer. This is ..."
    as "Read error [127.0.0.1]:4514: Connection reset by peer." (it was cut at 200 characters, mid-word)."""
    text = re.sub(r"\[[^\]\s]*\.(?:cc|cpp|h|hpp):\d+\] ", "", str(e).splitlines()[0] if str(e) else type(e).__name__)
    end = re.search(r"[.!?](\s|$)", text)
    return text[:end.end()].strip() if end else text[:300]


def nan_advice(train: TrainConfig) -> str:
    overflow = " With fp16 this is usually an overflow: use precision bf16." if train.precision == "fp16" else ""
    warmup = "more warmup_epochs" if train.warmup_epochs else "add warmup_epochs"
    return f"The training loss became non-finite (NaN/inf): lower train.lr (or {warmup}).{overflow}"


def quiet_expected_warnings() -> None:
    """GradScaler skipping a step (an fp16 overflow) makes torch warn that the scheduler stepped first: expected.
    Set at each run's start, not at import: a `warnings.catch_warnings()` around an import (pytest's collection
    is one) discards filters set inside it. Idempotent: warnings replaces an identical filter."""
    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before "
                                                        "`optimizer.step()`"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def fault_from_env() -> Fault | None:
    """VITLAB_INJECT_FAULT=oom:3 or nan:2 -- the fault-injection seam used by the failure tests."""
    spec = os.environ.get("VITLAB_INJECT_FAULT", "")
    kind, _, step = spec.partition(":")
    return Fault(kind, int(step or 1)) if kind in ("oom", "nan") else None


def setting_warnings(cfg: RunConfig, effective_batch: int, train_images: int) -> list[tuple[str, str]]:
    """Settings that train, but not as their user likely meant: (code, message) for each, said at the start."""
    m, t, found = cfg.model, cfg.train, []
    if t.freeze == "backbone" and not from_pretrained(m):
        found.append(("freeze-scratch", "train.freeze: backbone trains only the classifier on a randomly "
                      "initialised backbone (a probe of random features); it is meant for pretrained weights."))
    if (isinstance(m, ResNet18Model) and m.stem == "imagenet" and not m.weights and cfg.data.size <= 64
            and cfg.data.dataset in ("cifar10", "cifar100")):
        found.append(("resnet-stem", f"ResNet-18's ImageNet stem (7x7 stride-2 conv and max-pool) makes "
                      f"{cfg.data.size} px images {cfg.data.size // 4}x{cfg.data.size // 4} before the first block, "
                      "a weak baseline on CIFAR: model.stem: cifar is the usual CIFAR ResNet."))
    if t.optimizer != "sgd" and t.momentum != type(t).model_fields["momentum"].default:
        found.append(("momentum-unused", f"train.momentum: {t.momentum} changes nothing with {t.optimizer} (only "
                      "sgd uses it; Adam's betas play that part)."))
    norm = ("ResNet-18's" if isinstance(m, ResNet18Model) else
            "the conv stem's" if isinstance(m, ViTModel) and m.stem == "conv" else None)
    if norm and effective_batch > t.batch_size and t.freeze == "none":  # a frozen one computes as at inference
        found.append(("batchnorm-split", f"{norm} BatchNorm normalises over each micro-batch of {t.batch_size}, not "
                      f"over the effective batch of {effective_batch}: this trains like one pass of {effective_batch} "
                      "except for BatchNorm's statistics (a ViT without the conv stem has none)."))
    if effective_batch > train_images:
        found.append(("batch-over-data", f"the effective batch ({effective_batch}) is more than the {train_images} "
                      f"training images: each epoch is one optimizer step over all of them, not a batch of "
                      f"{effective_batch}; lower train.batch_size or accumulation_steps."))
    return found


class Run:
    """One run's state between set-up and the end; `execute` never raises for run failures."""

    def __init__(self, cfg: RunConfig, store: RunStore, *, experiment: str, emit: Emit, should_stop: ShouldStop,
                 index: int, total_runs: int, resume: bool = False, started_at: str | None = None,
                 earlier: dict[str, Any] | None = None):
        self.cfg, self.store, self.experiment = cfg, store, experiment
        self.dist = distributed.from_env()
        self.user_emit = emit if self.dist.is_main else ignore  # rank 0 speaks for the run
        self.should_stop = should_stop
        self.index, self.total_runs, self.resume = index, total_runs, resume
        # a resumed run's summary until its checkpoint is loaded: failing before that (a full disk, say), it ends
        # with the figures it had, not with 0 epochs over them
        self.earlier = earlier if resume else None
        self.started_at = started_at or dt.datetime.now().isoformat(timespec="seconds")  # a resumed run keeps its own
        self.summary: dict[str, Any] = {}
        self.train_time = 0.0
        self.images = 0
        self.steady_from: tuple[int, float, int] | None = None  # (step, train time, images) at the first log
        self.epoch = 0
        self.step = 0
        self.evals: list[dict[str, float]] = []
        self.unevaluated_loss: float | None = None  # train loss of the last epoch while it is not evaluated yet
        self.device = torch.device("cpu")
        self.flops: int | None = None
        self.tensorboard = None
        self.steps: Steps | None = None
        self.graphs_off: str | None = None  # why CUDA graphs are not used, when they were asked for
        self.compiled = False
        self.cpu_share: CpuShare | None = None  # set for a single-process CPU run
        self.cpu_note: str | None = None  # how many threads the CPU share gave this run at its start

    def emit(self, event: Event) -> None:
        self.store.record(event)
        if self.tensorboard is not None:
            self.tensorboard(event)
        self.user_emit(event)

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        from .data import load_data
        from .models import build_model, count_params
        from .profile import count_flops

        cfg = self.cfg
        self.device = devices.pick_device(cfg.train.device)
        if self.device.type == "cpu" and not self.dist.enabled:
            self.cpu_share = share = CpuShare()
            self.cpu_note = share.adapt(now=True)
            asked_to_stop = self.should_stop

            def should_stop() -> bool:  # heard between steps and batches: a newcomer is answered within seconds
                if note := share.adapt():
                    self.on_cpu_share(note)
                return asked_to_stop()

            self.should_stop = should_stop
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.train.seed)
        self.data = load_data(cfg.data, self.device, seed=cfg.train.seed, pretrained=from_pretrained(cfg.model))
        self.model = build_model(cfg, self.data.num_classes).to(self.device)
        if cfg.model.kind == "resnet18" and self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.params, self.trainable = count_params(self.model)
        try:
            self.flops = count_flops(self.model, self.data.image_size)
        except Exception as e:  # FLOPs are a report figure; never fail a run over them
            self.store.log(f"FLOP count failed: {e!r}")
        self.optimizer = make_optimizer(cfg, self.model, self.device)
        self.steps_per_epoch = math.ceil(self.data.train.num_samples / self.effective_batch)
        self.scheduler = make_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        self.skipped = torch.zeros((), device=self.device, dtype=torch.int64)
        self.compiled, why = compile_wanted(cfg, self.device, self.dist, self.data.train.num_samples)
        self.store.log(why)
        if self.compiled:
            # static shapes: after the epoch's shorter last window, dynamo's default compiled a dynamic-shape graph
            # and ran every full window through it from then on (the static one stays for them now)
            self.forward = torch.compile(self.model, dynamic=False, options=COMPILE_OPTIONS.get(self.device.type))
        else:
            self.forward = self.model
        if self.dist.enabled:
            self.forward = distributed.wrap(self.forward, self.dist, self.device)
        self.steps = self.make_steps()
        self.memory = devices.MemoryProbe(self.device)
        self.health = HealthMonitor(self.data.num_classes, cfg.train.precision, cfg.train.warmup_epochs)
        if cfg.train.tensorboard:
            from .tensorboard import TensorBoardLog

            self.tensorboard = TensorBoardLog(self.store.dir)
        if self.resume:
            self.load_checkpoint()

    def make_steps(self) -> Steps:
        from .graphed import GraphedSteps, ineligible

        t = self.cfg.train
        reason = ineligible(t, self.device, self.data, self.dist, fault_from_env())
        if t.cuda_graphs is False or reason:
            if reason and (t.cuda_graphs is True or self.device.type == "cuda"):
                self.graphs_off = f"CUDA graphs off: {reason}"
            return EagerSteps(self.forward, self.optimizer, self.scaler, t, self.device, self.dist, self.skipped,
                              self.should_stop)
        return GraphedSteps(self.forward, self.optimizer, self.scaler, self.skipped, self.data.train, t, self.device,
                            augment=self.cfg.data.use_augment, warn=lambda m: self.warn("cuda-graphs", m))

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step": self.step, "train_time": self.train_time, "images": self.images,
            "skipped": int(self.skipped), "evals": self.evals, "unevaluated_loss": self.unevaluated_loss,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def save_checkpoint(self, evaluated: EpochEvaluated | None = None) -> None:
        """`evaluated`: the epoch's metrics line, kept with its checkpoint: a run killed after the checkpoint and
        before the line gets it back when resumed (store.drop_metrics_after_checkpoint)."""
        if self.cfg.train.checkpoint:
            state = self.checkpoint_state()
            if evaluated is not None:
                state["evaluated"] = {**evaluated.to_dict(), "time": time.time()}
            self.store.save_checkpoint(state)

    def load_checkpoint(self) -> None:
        self.earlier = None  # from here on, this run's own figures
        path = self.store.dir / "checkpoint.pt"
        if not path.exists():
            return  # killed before the first checkpoint: start from scratch in the same directory
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        # how this device steps: a checkpoint's groups replace them (one saved on the CPU left a GPU run
        # unfused, with a host sync per parameter a step)
        kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, how in zip(self.optimizer.param_groups, kernels):
            group.update(how)
            group["capturable"] = False  # a graphed run saves these as its capture set them
            group["lr"] = float(group["lr"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.train_time, self.images = state["train_time"], state["images"]
        self.skipped.fill_(state["skipped"])
        self.evals = list(state["evals"])
        self.unevaluated_loss = state.get("unevaluated_loss")  # absent from checkpoints before 2026-11-26
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])

    # -- summary --------------------------------------------------------------------------------
    def make_summary(self, status: str, error: str | None = None, failure: str | None = None) -> dict[str, Any]:
        cfg, t = self.cfg, self.cfg.train
        ips = self.throughput()
        peak = self.memory.read() if hasattr(self, "memory") else None
        return {
            "name": cfg.name, "experiment": self.experiment, "status": status, "model": run_label(cfg),
            "params": getattr(self, "params", None), "trainable_params": getattr(self, "trainable", None),
            "flops": self.flops, "precision": t.precision, "batch_size": t.batch_size,
            "accumulation_steps": t.accumulation_steps, "world_size": self.dist.world,
            "effective_batch": self.effective_batch,
            "allreduces_per_step": round(self.dist.allreduces[0] / self.step_here, 3)
            if self.dist.enabled and self.step_here else None,
            "epochs": self.epoch, "epochs_planned": t.epochs, "steps": self.step,
            "train_time_s": round(self.train_time, 3), "throughput_img_s": round(ips, 2) if ips else None,
            "mfu": devices.mfu(self.flops, ips, self.device, t.precision, gpus=self.dist.world,
                               probe=t.freeze == "backbone"),
            "peak_memory_mb": round(max(peak.peak_mb, self.memory.peak_mb), 1) if peak else None,
            "memory_kind": peak.device if peak else self.device.type,
            "accuracy": self.evals[-1]["accuracy"] if self.evals else None,
            "eval_split": self.data.val_name if hasattr(self, "data") else None,
            "best_accuracy": max((e["accuracy"] for e in self.evals), default=None),
            "eval_loss": self.evals[-1]["eval_loss"] if self.evals else None,
            "train_loss": self.evals[-1]["train_loss"] if self.evals else None,
            "skipped_steps": int(self.skipped) if hasattr(self, "skipped") else 0,
            "cuda_graphs": bool(getattr(getattr(self, "steps", None), "graph", None)),
            "compiled": self.compiled,
            "device": self.device_label(),
            "run_dir": str(self.store.dir), "started_at": self.started_at,
            "ended_at": dt.datetime.now().isoformat(timespec="seconds") if status != "running" else None,
            "error": error, "failure": failure, "config": cfg.resolved(),
        }

    def device_label(self) -> str:
        """"cuda:0 (NVIDIA H100 ...)", "cpu (2 threads)"; a run of several processes says how many (each one's)."""
        label = self.cpu_share.describe() if self.cpu_share else devices.describe(self.device)
        return f"{label} x {self.dist.world} processes" if self.dist.enabled else label

    # -- the run --------------------------------------------------------------------------------
    def train(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        total_steps = t.epochs * self.steps_per_epoch
        self.store.write_summary(self.make_summary("running"))
        self.save_checkpoint()  # a checkpoint exists from the start, so resume is always possible
        self.emit(RunStarted(
            cfg.name, self.experiment, str(self.store.dir), self.index, self.total_runs, cfg.resolved(),
            run_label(cfg), self.params, self.trainable, self.flops, self.device_label(),
            t.epochs, self.epoch, self.steps_per_epoch, self.data.train.num_samples,
            self.data.val.num_samples, self.data.num_classes, self.effective_batch, self.compiled,
            self.data.val_name))
        for message in self.data.warnings:
            self.warn("data", message)
        if self.cpu_note:
            self.on_cpu_share(self.cpu_note)
        for code, message in self.health.at_start(self.device):
            self.warn(code, message)
        for code, message in setting_warnings(cfg, self.effective_batch, self.data.train.num_samples):
            self.warn(code, message)
        if self.graphs_off and t.cuda_graphs is True:
            self.warn("cuda-graphs", self.graphs_off)
        elif self.graphs_off:
            self.store.log(self.graphs_off)
        eval_times: list[float] = []
        start_step, start_time = self.step, self.train_time  # ETA from this process's pace (resume-safe)
        self.start_step = start_step
        fault = fault_from_env()
        contention = None if self.dist.enabled else Contention()  # ranks are each other's "other programs"
        window_from = self.epoch + 1
        if self.unevaluated_loss is not None:  # cancelled while it evaluated: that evaluation first
            self.evaluate_epoch(time.perf_counter(), eval_times)
        while self.epoch < t.epochs:
            epoch_start = time.perf_counter()
            order = epoch_order(self.data.train.num_samples, t.seed, self.epoch)
            plan = windows(order, t.batch_size, t.accumulation_steps, self.dist.world, self.dist.rank)
            batches = iter(self.data.train.batches([idx for w in plan for idx in w.micro], epoch=self.epoch,
                                                   augment=cfg.data.use_augment))
            self.steps.begin_epoch(order, self.epoch, batches)
            phase_start, phase_train = time.perf_counter(), self.train_time

            def on_log(step: int, log: StepLog) -> None:
                self.step = step
                self.train_time = phase_train + (time.perf_counter() - phase_start)
                self.images += log.samples
                mean_eval = sum(eval_times) / len(eval_times) if eval_times else 0.0
                if self.steady_from is None:  # the warm-up ends with the first logged steps (see throughput)
                    self.steady_from = (step, self.train_time, self.images)
                since_step, since_time, _ = self.steady_from
                if step == since_step:  # no pace after the warm-up yet: the pace so far
                    since_step, since_time = start_step, start_time
                per_step = (self.train_time - since_time) / max(1, step - since_step)
                eta = per_step * (total_steps - step) + mean_eval * (t.epochs - self.epoch)
                self.emit(StepsLogged(
                    cfg.name, self.experiment, self.epoch + 1, step, total_steps, log.loss,
                    float(self.scheduler.get_last_lr()[0]), log.samples / max(log.seconds, 1e-9),
                    self.throughput() or 0.0, self.train_time, eta, self.memory.read_across(self.dist),
                    int(self.skipped)))
                self.health.on_steps(step, int(self.skipped), self.warn)

            try:
                self.step, train_loss = train_epoch(
                    self.steps, plan, model=self.forward, scheduler=self.scheduler, cfg=t, device=self.device,
                    dist=self.dist, step=self.step, on_log=on_log, should_stop=self.should_stop, fault=fault)
            except Cancelled as e:
                if e.args:  # the steps and images trained since the last log point, for the summary's figures
                    self.step, done = e.args
                    self.images += done
                raise
            finally:  # a run failing mid-epoch (NaN, OOM) reports the time it trained, not the last log's
                self.train_time = phase_train + (time.perf_counter() - phase_start)
            self.epoch += 1
            self.unevaluated_loss = train_loss
            self.evaluate_epoch(epoch_start, eval_times)
            if contention is not None and (share := contention.others_share()) is not None:
                epochs = f"epoch {self.epoch}" if window_from == self.epoch else f"epochs {window_from}-{self.epoch}"
                window_from = self.epoch + 1
                shared = self.cpu_share is not None and self.cpu_share.shared  # other vitlab trainings: said there
                if share >= BUSY_SHARE and not shared:
                    self.warn("cpu-contended", contention_note(share, epochs))
                    contention = None  # once a run: the figures are marked
            # every rank together: only rank 0 hears the TUI, and a rank cancelled alone left the other in the next
            # epoch's collectives (gloo aborted both: "collective mismatch")
            if self.dist.any(self.should_stop(), self.device):
                raise Cancelled()

    def evaluate_epoch(self, epoch_start: float, eval_times: list[float]) -> None:
        """Evaluate the epoch just trained, record it and checkpoint. A cancel during the evaluation (heard
        between batches; DDP ranks only agree at the end) checkpoints the trained epoch, and a resume starts
        with its evaluation, so no training is lost."""
        cfg, t = self.cfg, self.cfg.train
        eval_start = time.perf_counter()
        val_batch = max(t.batch_size, 256)  # not the effective batch: accumulation is there to fit the memory
        val_order = torch.arange(self.data.val.num_samples)[self.dist.rank::self.dist.world]
        try:
            # compiled for the training shapes: the evaluation's batch would compile another graph (about 20 s)
            model = self.model if self.compiled else self.forward
            eval_loss, accuracy = evaluate(
                model, self.data.val.batches(list(val_order.split(val_batch)), epoch=0, augment=False),
                device=self.device, precision=t.precision, dist=self.dist,
                should_stop=None if self.dist.enabled else self.should_stop)
        except Cancelled:
            self.save_checkpoint()
            raise
        eval_times.append(time.perf_counter() - eval_start)
        self.memory.read_across(self.dist)  # the evaluation's batches are larger: its peak counts too
        train_loss, self.unevaluated_loss = self.unevaluated_loss, None
        self.evals.append({"epoch": self.epoch, "train_loss": train_loss, "eval_loss": eval_loss,
                           "accuracy": accuracy})
        evaluated = EpochEvaluated(cfg.name, self.experiment, self.epoch, t.epochs, train_loss, eval_loss,
                                   accuracy, time.perf_counter() - epoch_start, self.train_time)
        self.save_checkpoint(evaluated)
        self.store.write_summary(self.make_summary("running"))
        self.emit(evaluated)
        self.health.on_epoch(self.epoch, train_loss, accuracy, self.warn)

    def throughput(self) -> float | None:
        """Training images per second after the warm-up: from this process's first logged steps on, since the
        steps before them pay torch.compile, CUDA-graph capture and cuDNN autotuning (tens of seconds, which
        train_time keeps); over everything until a second log point exists."""
        if self.steady_from is not None and self.images > self.steady_from[2]:
            _, since_time, since_images = self.steady_from
            return (self.images - since_images) / max(self.train_time - since_time, 1e-9)
        return self.images / self.train_time if self.train_time else None

    @property
    def effective_batch(self) -> int:
        return self.cfg.train.effective_batch * self.dist.world

    @property
    def step_here(self) -> int:
        """Optimizer steps taken by this process (a resumed run counts from its checkpoint)."""
        return self.step - getattr(self, "start_step", self.step)

    def on_cpu_share(self, note: str) -> None:
        """Sharing the CPU is worth a warning (the pace drops and the figures move, as at any other thread
        count); getting the threads back is not."""
        if self.cpu_share is not None and self.cpu_share.shared:
            self.warn("cpu-shared", note)
        else:
            self.store.log(note)

    def warn(self, code: str, message: str) -> None:
        self.emit(WarningRaised(self.cfg.name, self.experiment, code, message))

    def execute(self) -> dict[str, Any]:
        quiet_expected_warnings()
        try:
            # a full disk here fails this run, as later; raised, it ended the whole queue without its table
            self.store.write_config(self.cfg.resolved())
            self.store.log(f"{'resumed' if self.resume else 'started'}: {self.cfg.name}")
            self.store.keep_alive()
            self.setup()
            self.train()
            return self.end(RunFinished, "finished")
        except Cancelled:
            return self.end(RunCancelled, "cancelled")
        except KeyboardInterrupt:
            self.end(RunCancelled, "cancelled")
            raise
        except (torch.OutOfMemoryError, MemoryError):
            return self.out_of_memory()
        except NonFiniteLoss as e:
            self.step = e.args[1]
            return self.end(RunFailed, "failed", nan_advice(self.cfg.train) + self.skipped_note(),
                            "non-finite")
        except StoreError as e:
            self.store.log(traceback.format_exc())
            return self.end(RunFailed, "failed", str(e), "store")
        except VitlabError as e:
            from .data import worker_message

            self.store.log(traceback.format_exc())
            return self.end(RunFailed, "failed", worker_message(e), "data" if isinstance(e, DataError) else "error")
        except Exception as e:
            if CPU_OOM in str(e):
                return self.out_of_memory()
            self.store.log(traceback.format_exc())
            if self.dist.enabled and peer_lost(e):
                back = way_back(self.store.dir, {"run_dir": str(self.store.dir), "epochs": self.epoch,
                                                 "config": self.cfg.resolved()}, self.dist.world)
                return self.end(RunFailed, "failed", "lost contact with another training process (it died or hung; "
                                f"see its output and {self.store.dir / 'run.log'}): {first_sentence(e)} {back}",
                                "distributed")
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            return self.end(RunFailed, "failed", f"{msg} (details in {self.store.dir / 'run.log'})", "error")

    def out_of_memory(self) -> dict[str, Any]:
        self.store.log(traceback.format_exc())
        traceback.clear_frames(sys.exc_info()[2])  # the failed step's frames hold its activations
        self.release()
        return self.end(RunFailed, "failed", oom_advice(self.device), "oom")

    def skipped_note(self) -> str:
        n = int(self.skipped) if hasattr(self, "skipped") else 0
        return f" GradScaler skipped {n} steps before this." if n else ""

    def release(self) -> None:
        """Drop the big tensors so the next run in the queue starts with the memory free, and the CPU share."""
        if self.cpu_share is not None:
            self.cpu_share.close()
        # the scheduler and scaler too: the scheduler holds the optimizer, and so the parameters and their moments
        for name in ("steps", "forward", "model", "optimizer", "scheduler", "scaler", "data"):
            self.__dict__.pop(name, None)
        gc.collect()
        devices.trim_heap()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def end(self, event_cls, status: str, error: str | None = None, reason: str | None = None) -> dict[str, Any]:
        self.summary = self.make_summary(status, error, reason)
        if self.earlier:
            self.summary = {**self.earlier, **{k: self.summary[k] for k in ("status", "error", "failure", "ended_at")}}
        try:
            if event_cls is RunFailed:
                self.emit(RunFailed(self.cfg.name, self.experiment, self.summary, error or "", reason or "error"))
            else:
                self.emit(event_cls(self.cfg.name, self.experiment, self.summary))
        except StoreError as e:  # the disk filled at the very end: still tell the listener, and say it failed
            self.summary = {**self.summary, "status": "failed", "error": str(e), "failure": "store"}
            self.user_emit(RunFailed(self.cfg.name, self.experiment, self.summary, str(e), "store"))
        self.release()
        return self.summary


def train_run(cfg: RunConfig, *, experiment: str, runs_dir: Path, emit: Emit = ignore,
              should_stop: ShouldStop = never, index: int = 0, total_runs: int = 1) -> dict[str, Any]:
    """Train one run into a new run directory; returns its summary (also in summary.json)."""
    store = RunStore.create(Path(runs_dir), experiment, cfg.name) if is_main_process() else NullStore()
    try:
        return Run(cfg, store, experiment=experiment, emit=emit, should_stop=should_stop, index=index,
                   total_runs=total_runs).execute()
    finally:
        store.release()  # also when it raised: the process may go on (a queue, a test) and train it again


def resume_run(run_dir: Path, *, emit: Emit = ignore, should_stop: ShouldStop = never, index: int = 0,
               total_runs: int = 1) -> dict[str, Any]:
    """Continue a cancelled, failed, interrupted or killed run from its last checkpoint, in place."""
    run_dir = Path(run_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # rank 0 alone asks whether the run is alive: the others may get there after its heartbeat started (a queue)
    resumable(run_dir, world, alive_check=is_main_process())  # refused before anything is written there
    store = RunStore(run_dir) if is_main_process() else NullStore(run_dir)
    store.claim()
    try:
        # again, held: a process that ended the run since the first look (finished it, say) has let go of it
        cfg, summary = resumable(run_dir, world, alive_check=is_main_process())
        if is_main_process():
            drop_metrics_after_checkpoint(run_dir)
        started_at = summary.get("started_at") or started_from_name(run_dir)
        return Run(cfg, store, experiment=run_dir.parent.name, emit=emit, should_stop=should_stop, index=index,
                   total_runs=total_runs, resume=True, started_at=started_at, earlier=summary or None).execute()
    finally:
        store.release()  # also when it was refused or raised (a torn checkpoint): the process may go on


def run_step(cfg: RunConfig, step: Step, *, experiment: str, runs_dir: Path, emit: Emit, should_stop: ShouldStop,
             index: int, total_runs: int) -> dict[str, Any]:
    """One run of a queue as its continuation step says (continuation.plan): keep it, resume it or train it."""
    how, earlier, note = step
    if note:
        emit(WarningRaised(cfg.name, experiment, "continue", note))
    if how == "keep":
        emit(RunKept(cfg.name, experiment, earlier))
        return earlier
    if how == "resume":
        return resume_run(Path(earlier["run_dir"]), emit=emit, should_stop=should_stop, index=index,
                          total_runs=total_runs)
    return train_run(cfg, experiment=experiment, runs_dir=runs_dir, emit=emit, should_stop=should_stop, index=index,
                     total_runs=total_runs)


def run_experiment(exp: ExperimentConfig, *, runs_dir: Path, emit: Emit = ignore,
                   should_stop: ShouldStop = never, resume_earlier: bool = False) -> list[dict[str, Any]]:
    """Every run of the experiment in order; a failed run does not stop the queue, a cancel does.
    `resume_earlier` (`vitlab run --continue`): keep or resume the earlier runs of the same config (continuation)."""
    from .preflight import queue_blockers

    steps = shared_plan(exp, runs_dir) if resume_earlier else [TRAIN] * len(exp.runs)
    if missing := queue_blockers(exp.runs, steps):
        raise CannotStart(missing[1])
    summaries = []
    alone = not distributed.from_env().enabled  # ranks would each read their own flag and part ways
    for i, (cfg, step) in enumerate(zip(exp.runs, steps)):
        # a Ctrl-C while torch loaded: nothing starts, rather than a run directory cancelled at step 0 (a kept run
        # trains nothing: it is still reported)
        if alone and step[0] != "keep" and should_stop():
            break
        summary = run_step(cfg, step, experiment=exp.name, runs_dir=runs_dir, emit=emit, should_stop=should_stop,
                           index=i, total_runs=len(exp.runs))
        summaries.append(summary)
        if summary["status"] == "cancelled":
            break
    return summaries
