"""Device choice, memory readings (CUDA allocator + NVML, or process RSS on CPU) and peak FLOP/s for MFU."""
from __future__ import annotations

import ctypes
import re
import resource
import sys
from typing import TYPE_CHECKING

import torch

from ..errors import VitlabError
from .events import Memory

if TYPE_CHECKING:
    from .distributed import Dist

MB = 2**20

# Dense peak TFLOP/s (a multiply-add = 2 FLOPs) by precision; tf32 tensor cores for fp32 matmuls. Matched on the
# CUDA device name as whole words, the more specific first: "L4" is not an L40 (121 vs 362), an H100 PCIe is not
# an SXM (756 vs 989); a GPU not listed (A10G, ...) gets no MFU rather than a wrong one.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "fp32": 378.0}),
    (r"H100 NVL|H200 NVL", {"bf16": 835.0, "fp16": 835.0, "fp32": 417.5}),
    (r"H100|H200|GH200", {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5}),
    (r"A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0}),
    (r"L40S", {"bf16": 362.0, "fp16": 362.0, "fp32": 183.0}),
    (r"L40", {"bf16": 181.0, "fp16": 181.0, "fp32": 90.5}),
    (r"L4", {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0}),
    (r"A10", {"bf16": 125.0, "fp16": 125.0, "fp32": 62.5}),
    (r"RTX 4090", {"bf16": 165.0, "fp16": 165.0, "fp32": 82.6}),
    (r"T4", {"fp16": 65.0, "fp32": 8.1}),
)


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The dense peak of the GPU named `device_name` (as torch.cuda.get_device_name says it), or None."""
    for pattern, table in PEAK_TFLOPS:
        if re.search(rf"\b(?:{pattern})\b", device_name, flags=re.IGNORECASE):
            return table.get(precision)
    return None


def missing_device(choice: str) -> str | None:
    if choice == "cuda" and not torch.cuda.is_available():
        return "train.device: cuda was asked for but no CUDA GPU is visible; use device: auto or cpu."
    return None


def pick_device(choice: str) -> torch.device:
    if problem := missing_device(choice):
        raise VitlabError(problem)
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def trim_heap() -> None:
    """Give the freed heap back to the system (glibc keeps it otherwise): the next run of a queue in this process
    then starts from about the RSS the first one did, and its peak RSS is its own (a ViT after a ResNet-18 read
    1.19 GB instead of its 0.80 GB alone)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the peak may include the earlier runs' heap
        pass


def reset_peak_rss() -> None:
    """Start this run's peak RSS from the current RSS (Linux: '5' to clear_refs resets VmHWM). Without it the
    peak would be the process's: the runs before this one in a queue, or, in a child forked from the ~1 GB
    TUI, the parent's image before exec."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not permitted: the process's peak, an upper bound


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class MemoryProbe:
    """Reads memory without syncing the device; NVML total is looked up once."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0  # the highest peak read_across has seen: every rank's, under DDP
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the previous run's freed blocks: cached, they counted in this run's peak
            torch.cuda.reset_peak_memory_stats(device)
            # the device this process sees (NVML's index ignored CUDA_VISIBLE_DEVICES, and a MIG slice's size)
            self.total_mb = torch.cuda.get_device_properties(device).total_memory / MB
        else:
            import psutil

            reset_peak_rss()
            self.process = psutil.Process()
            self.total_mb = psutil.virtual_memory().total / MB

    def read(self) -> Memory:
        if self.device.type == "cuda":
            return Memory("cuda", torch.cuda.memory_allocated(self.device) / MB,
                          torch.cuda.memory_reserved(self.device) / MB,
                          torch.cuda.max_memory_reserved(self.device) / MB, self.total_mb)
        rss = self.process.memory_info().rss / MB
        return Memory("cpu", rss, rss, max(rss, _peak_rss_mb()), self.total_mb)

    def read_across(self, dist: Dist) -> Memory:
        """Every rank's reading at the same point (one all-reduce, at log points only): the largest of each figure,
        since per GPU (or process) the largest decides out-of-memory; rank 0's alone was reported before."""
        m = self.read()
        if dist.enabled:
            m = Memory(m.device, *dist.max_([m.allocated_mb, m.reserved_mb, m.peak_mb], self.device), m.total_mb)
        self.peak_mb = max(self.peak_mb, m.peak_mb)
        return m


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak FLOP/s for this precision, or None where unknown (CPU, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    peak = peak_tflops(torch.cuda.get_device_name(device), precision)
    return peak * 1e12 if peak else None


def mfu(flops_per_image: int | None, images_per_s: float | None, device: torch.device, precision: str, *,
        gpus: int = 1, probe: bool = False) -> float | None:
    """Model FLOPs utilisation: forward MACs x 2 FLOPs x 3 (forward + backward) x img/s / peak FLOP/s of the
    `gpus` devices that trained at that rate together. A linear probe (`probe`: the backbone frozen) counts its
    forward pass alone: its backward runs through the classifier only. None without a throughput (a run that
    failed before its first measurement has no MFU, not 0 %)."""
    peak = peak_flops(device, precision)
    if not peak or not flops_per_image or not images_per_s:
        return None
    return 2 * (1 if probe else 3) * flops_per_image * images_per_s / (peak * gpus)
