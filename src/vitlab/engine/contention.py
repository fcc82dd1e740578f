"""Whether other programs competed for this machine's CPU while a run trained.

A run's img/s and training time are only comparable with another's when both had the machine to themselves:
a test suite or a second job on the same cores slowed one study's runs by 5x to 40x, and nothing in the table
said so. Each epoch, the machine's busy CPU time (psutil's system-wide counters, a VM's steal included) is
compared with what this process and its children (DataLoader workers) used; the rest is other programs'.
Other vitlab CPU trainings are told apart by the CPU share (cpu_share.py) and warned of there.
"""
from __future__ import annotations

import time

import psutil

BUSY_SHARE = 0.25  # of the machine's CPU time (cores x wall), used by others: worth a warning
WINDOW_S = 30.0  # measured over epochs of at least this long together: a moment's load is no slower run


def _own_cpu_s(me: psutil.Process) -> float:
    """CPU seconds of this process, its children that ended and those alive (workers come and go per epoch)."""
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:  # ended since the listing: its time is in children_* from now on
            pass
    return total


def _machine_s() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, summed over its cores."""
    t = psutil.cpu_times()
    whole = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # Linux counts guest in user too
    return whole - t.idle - getattr(t, "iowait", 0.0), whole


class Contention:
    """Others' share of the machine's CPU time, over windows of at least WINDOW_S."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.mark()

    def mark(self) -> None:
        self.own, (self.busy, self.whole) = _own_cpu_s(self.me), _machine_s()
        self.at = time.monotonic()

    def others_share(self) -> float | None:
        """0..1 of the machine's CPU time that other programs used since the window began, and a new window; None
        while the window is shorter than WINDOW_S."""
        if time.monotonic() - self.at < WINDOW_S:
            return None
        own, (busy, whole) = _own_cpu_s(self.me), _machine_s()
        spent = whole - self.whole
        share = max(0.0, (busy - self.busy) - (own - self.own)) / spent if spent > 0 else 0.0
        self.mark()
        return min(share, 1.0)


def contention_note(share: float, epochs: str) -> str:
    return (f"other programs used {share:.0%} of this machine's CPU time during {epochs}: this run's img/s "
            "and training time read lower than on a quiet machine, so compare them only with runs trained alone")
