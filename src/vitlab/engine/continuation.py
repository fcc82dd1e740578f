"""`vitlab run PRESET --continue`: a queue picks up where an earlier one of the same experiment stopped.

A long study (nine runs of a seed sweep, say) stopped by Ctrl-C, a reboot or a lost job would otherwise train
its finished runs again. For each run of the queue, the newest earlier run directory of the same experiment
with the same name and the same resolved config decides: a finished run is kept (its summary joins the
table), a cancelled, interrupted or failed one resumes from its last checkpoint, and one that failed on a
non-finite loss is kept as failed (training is deterministic: it would fail at the same step again). A run
with none, or whose config changed since, trains afresh.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..config import ExperimentConfig, RunConfig
from ..errors import CannotStart
from .store import find_runs

Step = tuple[Literal["train", "resume", "keep"], dict[str, Any] | None]


def _same(summary: dict[str, Any], cfg: RunConfig) -> bool:
    try:
        return summary.get("name") == cfg.name and RunConfig.from_resolved(summary.get("config") or {}) == cfg
    except (ValidationError, AttributeError):  # a config.yaml vitlab did not write, or an older schema
        return False


def plan(exp: ExperimentConfig, runs_dir: Path) -> list[Step]:
    """What to do with each run of the queue, with the earlier run it builds on. Nothing is changed on disk."""
    where = Path(runs_dir) / exp.name
    earlier = find_runs([where]) if where.is_dir() else []  # newest first
    steps: list[Step] = []
    for cfg in exp.runs:
        same = [s for s in earlier if _same(s, cfg)]
        finished = next((s for s in same if s.get("status") == "finished"), None)
        if finished is not None:
            steps.append(("keep", finished))
        elif not same:
            steps.append(("train", None))
        elif same[0].get("status") == "running":
            raise CannotStart(f"{cfg.name}: {same[0]['run_dir']} is still training (its heartbeat is fresh); let it "
                              "finish or stop it (ctrl+x in vitlab), then --continue")
        elif same[0].get("failure") == "non-finite":
            steps.append(("keep", same[0]))
        else:
            steps.append(("resume", same[0]))
    return steps
