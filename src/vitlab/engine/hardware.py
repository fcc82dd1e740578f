"""How many training processes this machine runs, without importing torch (the TUI asks as a form is typed)."""
from __future__ import annotations

import os
from itertools import takewhile

from ..errors import VitlabError


def visible_gpus() -> int:
    """CUDA devices this process may use, without importing torch: the driver's list, less CUDA_VISIBLE_DEVICES."""
    try:
        physical = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return physical
    ids = takewhile(lambda d: d and not d.startswith("-"), (d.strip() for d in mask.split(",")))  # CUDA stops at -1
    return min(physical, len(list(ids)))


def max_processes() -> tuple[int, str]:
    """How many local training processes a run may use, and why: one per GPU, or CPU processes (gloo)."""
    gpus = visible_gpus()
    return (gpus, "CUDA devices visible") if gpus else (os.cpu_count() or 1, "no GPU: CPU processes with gloo")


def check_nproc(nproc: int) -> None:
    """`--nproc N` beyond the GPUs visible: refused before torchrun starts N ranks that fail one by one on devices
    that do not exist. CPU ranks (gloo) may outnumber the cores: slow, but a way to try DDP on a laptop."""
    if (gpus := visible_gpus()) and nproc > gpus:
        raise VitlabError(f"--nproc {nproc}: {gpus} CUDA device{'s' if gpus > 1 else ''} visible, one a process; "
                          f"use --nproc {'1' if gpus == 1 else f'1 to {gpus}'}")
