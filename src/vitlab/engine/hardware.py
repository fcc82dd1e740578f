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
    """`--nproc N` beyond the machine: refused before torchrun starts N ranks that fail one by one (a GPU rank on
    a device that does not exist) or crowd the cores (CPU ranks)."""
    limit, what = max_processes()
    if nproc > limit:
        raise VitlabError(f"--nproc {nproc}: this machine runs 1 to {limit} training processes ({what})")
