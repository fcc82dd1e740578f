"""Typed, frozen events the engine emits while it trains. Past tense: each says what happened.

Every consumer reads the same stream: the run store (disk), the headless CLI (Rich progress), TensorBoard's
log, and the TUI (as JSON lines from its training process: wire.py). The engine never knows who listens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class Memory:
    """A memory reading. On CUDA: allocator figures and the device total (NVML); on CPU: process RSS."""

    device: Literal["cuda", "cpu"]
    allocated_mb: float  # cuda: memory_allocated; cpu: current RSS of the process
    reserved_mb: float  # cuda: memory_reserved; cpu: same as allocated
    peak_mb: float  # cuda: max_memory_reserved; cpu: peak RSS of the process
    total_mb: float | None = None  # cuda: device total; cpu: machine RAM

    @property
    def label(self) -> str:
        return "VRAM" if self.device == "cuda" else "RSS (process)"


@dataclass(frozen=True)
class Event:
    run: str  # run name
    experiment: str

    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    run_dir: str
    index: int  # position of the run in its experiment (0-based)
    total_runs: int
    config: dict[str, Any]
    model_label: str
    params: int
    trainable_params: int
    flops: int | None  # per image, one forward pass, multiply-add counted once
    device: str  # e.g. "cuda:0 (NVIDIA H100)" or "cpu (2 threads)"
    epochs: int
    start_epoch: int  # > 0 when resumed
    steps_per_epoch: int  # optimizer steps
    train_samples: int
    val_samples: int
    num_classes: int
    effective_batch: int
    compiled: bool = False  # torch.compile: the first steps compile the model (tens of seconds)
    eval_split: str = "val"  # what accuracy is measured on: "val", "test" (CIFAR), "held-out val"


@dataclass(frozen=True)
class StepsLogged(Event):
    """Figures since the previous StepsLogged, read from the device every `log_every` optimizer steps."""

    epoch: int  # 1-based
    step: int  # optimizer steps done in the whole run
    total_steps: int
    loss: float  # mean train loss per sample over the logged steps
    lr: float
    images_per_s: float  # over the logged steps
    mean_images_per_s: float  # since the warm-up (the first logged steps), as the summary's throughput
    elapsed_s: float  # training time so far (eval excluded)
    eta_s: float  # until the end of the run, eval included, estimated
    memory: Memory
    skipped_steps: int = 0  # optimizer steps GradScaler skipped (fp16 overflow), whole run


@dataclass(frozen=True)
class EpochEvaluated(Event):
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    eval_loss: float
    accuracy: float  # top-1, 0..1
    epoch_time_s: float  # training + eval of this epoch
    train_time_s: float  # training time of the whole run so far


@dataclass(frozen=True)
class WarningRaised(Event):
    code: str  # e.g. "not-learning", "chance-accuracy", "scaler-skipping", "precision-on-cpu"
    message: str


@dataclass(frozen=True)
class RunEnded(Event):
    summary: dict[str, Any]  # what summary.json holds


@dataclass(frozen=True)
class RunFinished(RunEnded):
    pass


@dataclass(frozen=True)
class RunFailed(RunEnded):
    error: str = ""  # one short paragraph: what happened and what to do
    reason: str = "error"  # "oom", "non-finite", "data", "store", "distributed", "error"; the TUI's "crash"


@dataclass(frozen=True)
class RunCancelled(RunEnded):
    pass


@dataclass(frozen=True)
class RunKept(RunEnded):
    """`vitlab run --continue`: an earlier run of the same config, kept instead of trained again (its summary)."""


Emit = Callable[[Event], None]
ShouldStop = Callable[[], bool]


def ignore(_: Event) -> None:
    """An emit that drops events (tests, profiling)."""


def never() -> bool:
    return False

