"""Whether a run directory can resume, and why not: asked before any rank trains, so that a refusal is said once."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..config import RunConfig
from ..errors import VitlabError
from .continuation import processes
from .store import heartbeat_alive, nothing_to_resume_from, read_run, resume_command


def run_config(run_dir: Path) -> RunConfig:
    """The run's config.yaml, or VitlabError naming what is wrong with it in a line (the file, the line, the field)."""
    if run_dir.is_file():  # RUN_DIR/summary.json, say
        raise VitlabError(f"{run_dir}: a file; give the run's directory ({run_dir.parent})")
    if not run_dir.is_dir():
        raise VitlabError(f"{run_dir}: no such run directory (vitlab compare RUNS_DIR lists the runs and their "
                          "directories)")
    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except OSError as e:
        raise VitlabError(f"{run_dir}: not a vitlab run directory (its config.yaml: {e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise VitlabError(f"{run_dir}/config.yaml{where}: not readable YAML "
                          f"({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    try:
        cfg = RunConfig.from_resolved(raw)
    except ValidationError as e:
        from ..presets import describe_error

        loc, msg = describe_error(e.errors()[0], raw if isinstance(raw, dict) else {})
        field = ".".join(map(str, loc))  # none when the whole file is wrong (empty, say)
        raise VitlabError(f"{run_dir}/config.yaml: {field + ': ' if field else ''}{msg}") from None
    return cfg


def resumable(run_dir: Path, world: int, alive_check: bool = True) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config and summary when it can resume on `world` processes; else VitlabError says why (the
    `--nproc` launcher asks first, so that its ranks do not each refuse)."""
    cfg = run_config(run_dir)
    summary = {}
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    if summary.get("status") == "finished":
        raise VitlabError(f"{run_dir}: this run already finished; nothing to resume")
    if alive_check and heartbeat_alive(run_dir):  # two processes would write one run directory
        raise VitlabError(f"{run_dir}: this run is still training (its heartbeat is fresh); let it finish or stop "
                          "it (Ctrl-C where it runs, ctrl+x in the vitlab that started it)")
    trained_on, here = summary.get("world_size") or 1, world
    if trained_on != here:  # the effective batch counts every process: resumed on another number, it would change
        raise VitlabError(f"{run_dir}: this run trained on {processes(trained_on)} (effective batch "
                          f"{summary.get('effective_batch')}); resuming it on {processes(here)} would change its "
                          f"effective batch: {resume_command(run_dir, trained_on)}")
    if lost := nothing_to_resume_from(read_run(run_dir)):  # its epochs from metrics.jsonl when killed unsummarised
        raise VitlabError(f"{lost}; train it afresh (vitlab run PRESET makes a new directory and keeps this one)")
    if summary.get("failure") == "non-finite":  # the same steps again (a GPU's cuDNN choices aside)
        raise VitlabError(f"{run_dir}: this run failed on a non-finite loss, and resuming would repeat the same steps "
                          "from its last checkpoint; train it again with a lower train.lr or more warmup_epochs "
                          "(vitlab run PRESET --set train.lr=...)")
    from .preflight import queue_blockers

    if missing := queue_blockers([cfg]):  # refused here, its summary untouched (it used to fail with 0 epochs)
        relative = [f"{key} {path}" for key, path in (("data.root", cfg.data.root), ("model.weights",
                    getattr(cfg.model, "weights", None))) if path and not Path(path).is_absolute()]
        where = (f" ({' and '.join(relative)}: relative to the directory vitlab runs in, {Path.cwd()}; resume from the "
                 "one the run was started in)") if relative else ""
        raise VitlabError(f"{run_dir}: cannot resume: {missing[1]}{where}")
    return cfg, summary
