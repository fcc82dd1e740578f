"""Trainings on one machine's CPU share its cores instead of fighting over them.

torch gives every process one thread per core. Two CPU trainings at once then run twice as many OpenMP
threads as there are cores, and threads that wait for each other at every parallel region get preempted by
the other process's: on a 2-core machine two quickstarts at once ran about 20x slower each, not 2x. Every
CPU training of this user registers its process here, and each takes an equal share of torch's default
thread count, re-checked while it trains (a training that ends gives its share back). OMP_NUM_THREADS, when
set, is the user's own choice (torchrun sets it to 1 for each of its processes) and is left alone.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psutil
import torch

REGISTRY = Path(tempfile.gettempdir()) / f"vitlab-{getattr(os, 'getuid', lambda: 'user')()}" / "cpu-trainings"
CHECK_S = 5.0  # how often a training looks for others (a directory listing: microseconds)


def _alive(pid: int, created: float) -> bool:
    """The registered process still runs (a recycled pid started later is another process)."""
    try:
        return abs(psutil.Process(pid).create_time() - created) < 0.01
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect
        return True


class CpuShare:
    def __init__(self, registry: Path | None = None) -> None:
        self.pinned = "OMP_NUM_THREADS" in os.environ
        self.registry = registry = registry or REGISTRY
        self.path = registry / str(os.getpid())
        self.full = torch.get_num_threads()  # torch's choice for this machine when alone
        self.used: set[int] = set()  # every thread count it set or found at a check (for the run's summary)
        self.shared = False  # other CPU trainings run now
        self.checked = float("-inf")
        if not self.pinned:
            try:
                registry.mkdir(parents=True, exist_ok=True)
                self.path.write_text(repr(psutil.Process().create_time()))
            except OSError:  # an unwritable temp dir: train with torch's default, as before
                self.pinned = True

    def trainings(self) -> int:
        """CPU trainings running now, this one included; entries of dead processes are removed."""
        count = 0
        for entry in self.registry.iterdir():
            try:
                pid, created = int(entry.name), float(entry.read_text())
            except (ValueError, OSError):
                continue  # being written, or not ours
            if _alive(pid, created):
                count += 1
            else:
                entry.unlink(missing_ok=True)
        return max(count, 1)

    def adapt(self, now: bool = False) -> str | None:
        """Take this process's share of the threads (at most every CHECK_S unless `now`); what changed, if it did."""
        if self.pinned or (not now and time.monotonic() - self.checked < CHECK_S):
            return None
        self.checked = time.monotonic()
        try:
            n = self.trainings()
        except OSError:
            return None
        threads = max(1, self.full // n)
        self.shared = n > 1
        self.used.add(threads)
        if threads == torch.get_num_threads():
            return None
        torch.set_num_threads(threads)
        if n == 1:
            return f"the other CPU trainings ended: back to {threads} threads"
        return (f"{n} vitlab trainings share this machine's CPU: {threads} of {self.full} threads each, so they do "
                "not slow each other down many times over. A run's figures depend on its thread count (they differ "
                "from a run alone as another seed's would); OMP_NUM_THREADS=N fixes the count.")

    def describe(self) -> str:
        """The threads a run trained with, for its summary: `cpu (1-2 threads, shared)` when they changed."""
        low, high = min(self.used, default=self.full), max(self.used, default=self.full)
        return f"cpu ({low}-{high} threads, shared)" if low != high else f"cpu ({high} thread{'s' * (high > 1)})"

    def close(self) -> None:
        """Leave the registry and give the process its threads back (the next run of a queue takes its share)."""
        if not self.pinned:
            self.path.unlink(missing_ok=True)
            torch.set_num_threads(self.full)
