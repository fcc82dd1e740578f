"""`vitlab run --nproc N`: relaunch the same command under torchrun, then make sure no run is left `running`."""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..engine.store import read_run


def vitlab_under_torchrun(nproc: int) -> list[str]:
    """`vitlab` on nproc local processes; the caller appends the subcommand and its arguments."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "vitlab"]


def torchrun_command(args: argparse.Namespace) -> list[str]:
    cmd = [*vitlab_under_torchrun(args.nproc), "run", str(args.preset), "--runs-dir", str(args.runs_dir)]
    for pair in args.overrides:
        cmd += ["--set", pair]
    if args.seeds is not None:
        cmd += ["--seeds", args.seeds]
    if args.json:
        cmd.append("--json")
    if args.tensorboard:
        cmd.append("--tensorboard")
    return cmd


def mark_orphans(runs_dir: Path, experiment: str, since: float, returncode: int) -> None:
    """A worker that died (killed, OOM-killed, segfault) can take rank 0 with it before it writes a summary."""
    from ..engine.store import RunStore

    for run_dir in sorted((runs_dir / experiment).glob("*")):
        if not run_dir.is_dir() or run_dir.stat().st_mtime < since:
            continue
        summary = read_run(run_dir)
        if summary.get("status") in ("running", "interrupted"):
            summary.update(status="failed", error=(
                f"a training process died (torchrun exit code {returncode}); the run was stopped. Resume it with "
                f"`vitlab resume {shlex.quote(str(run_dir))}` (checkpoint of the last finished epoch)."))
            RunStore(run_dir).write_summary(summary)


def launch_torchrun(args: argparse.Namespace, experiment: str) -> int:
    start = time.time()
    proc = subprocess.run(torchrun_command(args))
    if proc.returncode != 0:
        mark_orphans(Path(args.runs_dir), experiment, start, proc.returncode)
        print(f"vitlab: the distributed run ended with exit code {proc.returncode}; "
              f"see the run directories under {args.runs_dir}/{experiment}", file=sys.stderr)
    return proc.returncode if proc.returncode in (0, 1, 130) else 1
