"""DistributedDataParallel under torchrun: one process per GPU (or gloo processes on the CPU).

vitlab reads torchrun's usual environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). The
global sample order is the single-process order; each optimizer-step window of
batch_size x accumulation_steps x world_size samples is split across ranks, so a run on N processes
takes the same steps as one process at the same effective batch. Only rank 0 writes the run store.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

TIMEOUT_S = float(os.environ.get("VITLAB_DIST_TIMEOUT", "300"))  # a lost peer ends the run, never hangs it


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    allreduces: list[int] = field(default_factory=lambda: [0])  # gradient all-reduce calls (comm hook)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum_(self, *tensors: torch.Tensor) -> None:
        """All-reduce (sum) in place across ranks; a no-op in one process."""
        if self.enabled:
            for t in tensors:
                dist.all_reduce(t)

    def max_(self, values: list[float], device: torch.device) -> list[float]:
        """Each value's largest across ranks (one all-reduce; every rank calls it at the same point)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on any (cancel, stop)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def from_env() -> Dist:
    """The process group torchrun describes, joined once; one process when WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=TIMEOUT_S))
    return Dist(rank, world, local_rank)


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    """DDP with a comm hook that counts gradient all-reduces (one per optimizer step, per bucket)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel as DDP

    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def counting_hook(state, bucket):
        d.allreduces[0] += 1
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting_hook)
    return ddp
