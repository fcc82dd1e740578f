"""What a queue checks before its first run: every run's dataset and weights are on disk, its device here, and
its image size fits the shapes its Swin weights bring.

Paths and config.json files only, no weights or images loaded, so it is fast and a four-run preset does not
train three runs for hours before the fourth finds its weights missing. Reading the files (and what can go
wrong there) stays with the loaders, which give the same messages.
"""
from __future__ import annotations

from typing import Sequence

from ..config import NUM_CLASSES, RunConfig, SwinModel
from .continuation import Step
from .data import missing_data
from .device import missing_device
from .models import saved_swin_config, swin_misfit
from .weights import missing_weights


def swin_too_small(cfg: RunConfig) -> str | None:
    """A Swin whose weights bring their own shapes (a window other than the variants' 7, fewer stages): whether
    the run's image size fits them, known only from their config.json (the config checks the variants')."""
    m = cfg.model
    if not isinstance(m, SwinModel) or not (m.weights or m.pretrained):
        return None
    saved = saved_swin_config(m, cfg.data.size, NUM_CLASSES.get(cfg.data.dataset, 2))
    problem = saved and swin_misfit(saved)
    return f"{problem[:-1]} (the shapes of {m.weights or m.weights_source})." if problem else None


def queue_blockers(runs: Sequence[RunConfig], steps: Sequence[Step] | None = None) -> tuple[str, str] | None:
    """(the first run that can't start, a message with a line for every missing dataset, weights and device
    naming the runs that need it), or None. With the queue's continuation steps, a run kept as it is needs
    nothing."""
    problems: dict[str, list[str]] = {}
    for cfg in (runs if steps is None else [cfg for cfg, (how, _, _) in zip(runs, steps) if how != "keep"]):
        for problem in (missing_device(cfg.train.device), missing_data(cfg.data),
                        missing_weights(cfg) or swin_too_small(cfg)):
            if problem:
                problems.setdefault(problem, []).append(cfg.name)
    if not problems:
        return None
    first = next(iter(problems.values()))[0]
    return first, "\n".join(f"{problem} Needed by {', '.join(names)}." for problem, names in problems.items())
