"""`vitlab run PRESET --continue`: a queue picks up where an earlier one of the same experiment stopped.

A long study (nine runs of a seed sweep, say) stopped by Ctrl-C, a reboot or a lost job would otherwise train
its finished runs again. For each run of the queue, the newest earlier run directory of the same experiment
with the same name and the same resolved config decides (an older finished one, where the newest has no epoch
to resume from): a finished run is kept (its summary joins the table), a cancelled, interrupted or failed one
resumes from its last checkpoint, and one that failed on a non-finite loss is kept as failed (the same steps
again: on the CPU bit for bit, on a GPU cuDNN's choices aside). A run with none, or whose config changed since,
trains afresh.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..config import WATCH_ONLY, ExperimentConfig, RunConfig, flatten, trained_key, unseeded_name
from ..errors import CannotStart
from .store import find_runs, nothing_to_resume_from, resume_command

Step = tuple[Literal["train", "resume", "keep"], dict[str, Any] | None, str | None]  # what, the earlier run, a note
TRAIN: Step = ("train", None, None)  # a queue that does not continue: every run trains


def _config(summary: dict[str, Any]) -> RunConfig | None:
    try:
        return RunConfig.from_resolved(summary.get("config") or {})
    except (ValidationError, AttributeError):  # a config.yaml vitlab did not write, or an older schema
        return None


def _changes(was: RunConfig, now: RunConfig) -> str:
    """`train.lr 0.003 -> 0.002`: the settings that differ (at most three named)."""
    a, b = flatten(was.resolved()), flatten(now.resolved())
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in ("name", *WATCH_ONLY) and a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" for k in keys[:3]) + (", ..." if len(keys) > 3 else "")


def plan(exp: ExperimentConfig, runs_dir: Path, world: int = 1) -> list[Step]:
    """What to do with each run of the queue trained on `world` processes, with the earlier run it builds on and
    what a user should be told about it. Nothing is changed on disk."""
    where = Path(runs_dir) / exp.name
    earlier = [(s, c) for s in (find_runs([where]) if where.is_dir() else []) if (c := _config(s))]  # newest first
    steps: list[Step] = []
    for cfg in exp.runs:
        # by name less the seed suffix: an unseeded run is the seeds' run of its seed (`--seeds 0,1` added to a
        # study trained once keeps its runs as seed 0)
        base = unseeded_name(cfg.name, cfg.train.seed)
        named = [(s, c) for s, c in earlier if unseeded_name(c.name, c.train.seed) == base]
        # the same training: what only watches it (--tensorboard, log_every, loader workers) may differ
        same = [s for s, c in named if trained_key(c.resolved(), seed=True) == trained_key(cfg.resolved(), seed=True)]
        # the effective batch counts every process: a run on another number of them trained another recipe
        apart = [s for s in same if (s.get("world_size") or 1) != world]
        same = [s for s in same if s not in apart]
        finished = next((s for s in same if s.get("status") == "finished"), None)
        if finished is not None and (same[0] is finished or not _progress(same[0])):
            # the newest attempt decides (trained all again, then stopped: that one resumes), unless it has
            # nothing to give back (cancelled in its first epoch, no checkpoint) and an older one finished
            steps.append(("keep", finished, None))
        elif not same:  # new, or changed since (a seed not trained before is new, not a change)
            changed = [(s, c) for s, c in named if c.train.seed == cfg.train.seed]
            note = (f"its settings changed since {changed[0][0]['run_dir']} ({_changes(changed[0][1], cfg)}): it "
                    "trains afresh" if changed else None)
            if apart:
                was = apart[0].get("world_size") or 1
                back = "" if apart[0].get("status") == "finished" else \
                    f" ({resume_command(apart[0]['run_dir'], was)} continues that one)"  # a finished one has no way on
                note = (f"{apart[0]['run_dir']} trained on {processes(was)}, so its effective batch differs: it trains "
                        f"afresh on {processes(world)}{back}")
            steps.append(("train", None, note))
        elif same[0].get("status") == "running":
            raise CannotStart(f"{cfg.name}: {same[0]['run_dir']} is still training (its heartbeat is fresh); let it "
                              "finish or stop it (Ctrl-C where it runs, ctrl+x in the vitlab that started it), then "
                              "--continue")
        elif same[0].get("failure") == "non-finite":
            steps.append(("keep", same[0], f"it failed on a non-finite loss in {same[0]['run_dir']} and would fail "
                          "again with the same settings: kept as failed. Change them (train.lr, warmup_epochs) and "
                          "it trains afresh, or delete that directory to train it again as it is."))
        elif lost := nothing_to_resume_from(same[0]):
            steps.append(("train", None, f"{lost}: it trains afresh in a new directory, and that one stays"))
        else:
            steps.append(("resume", same[0], None))
    if not earlier and exp.runs:
        steps[0] = ("train", None, f"nothing earlier in {where}: every run of the queue trains")
    return steps


def _progress(summary: dict[str, Any]) -> bool:
    """A stopped run that would resume with epochs behind it (not one running: plan() refuses those)."""
    return summary.get("status") == "running" or (bool(summary.get("epochs")) and summary.get("failure") !=
                                                  "non-finite" and nothing_to_resume_from(summary) is None)


def processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"


def shared_plan(exp: ExperimentConfig, runs_dir: Path) -> list[Step]:
    """plan() for every process of a run under torchrun: rank 0 reads the runs directory and tells the others, so
    that all take the same steps (each reading it while rank 0 already writes a run's directory and heartbeat
    could disagree, and a rank on other steps waits on its collectives for good). Raises CannotStart on every rank
    alike."""
    from . import distributed

    d = distributed.from_env()
    if not d.enabled:
        return plan(exp, runs_dir)
    import torch.distributed as dist

    answer: list[object] = [None]
    if d.is_main:
        try:
            answer[0] = plan(exp, runs_dir, d.world)
        except CannotStart as e:
            answer[0] = str(e)
    dist.broadcast_object_list(answer, src=0)
    if isinstance(answer[0], str):
        raise CannotStart(answer[0])
    return answer[0]
