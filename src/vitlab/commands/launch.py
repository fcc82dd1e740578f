"""`vitlab run|resume --nproc N`: relaunch the same command under torchrun, pass Ctrl-C on to the training
processes as a cancel, and make sure no run is left `running` and no process outlives torchrun."""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from ..engine.store import find_runs
from . import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, LAUNCHED, exit_code
from .run import run_words


def torchrun(argv: list[str]) -> int:
    """torchrun (`python -m vitlab.commands.launch ARGS` runs it), but reading its own options whole, and saying a
    failed rank in a line: abbreviated, it took vitlab's `--run NAME` for an ambiguous `--run-path` and stopped before
    starting anything, and a killed rank ended in its ChildFailedError traceback."""
    import logging

    import torch.distributed.run as t
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # "W... Sending process 123 closing signal SIGTERM", "E... failed (exitcode: -9) local_rank: 1": said below
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    parser = t.get_args_parser()
    parser.allow_abbrev = False
    args = parser.parse_args(argv)
    # torchrun's own temporary folder (its ranks' error files) stayed in /tmp after every launch: one of ours,
    # removed once its failures are read
    made = None
    if args.log_dir is None:
        made = args.log_dir = tempfile.mkdtemp(prefix="vitlab-torchrun-")
    try:
        t.run(args)
    except ChildFailedError as e:
        for rank, failure in sorted(e.failures.items()):
            how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited {failure.exitcode}"
            print(f"torchrun: rank {rank} (pid {failure.pid}) {how}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return EXIT_OK


def vitlab_under_torchrun(nproc: int) -> list[str]:
    """`vitlab` on nproc local processes; the caller appends the subcommand and its arguments."""
    return [sys.executable, "-m", "vitlab.commands.launch", "--standalone", f"--nproc-per-node={nproc}", "-m", "vitlab"]


def torchrun_command(args: argparse.Namespace) -> list[str]:
    return [*vitlab_under_torchrun(args.nproc), *run_words(args), *(["--continue"] if args.resume_earlier else [])]


def mark_orphans(runs_dir: Path, experiment: str, since: float, returncode: int, nproc: int) -> None:
    """A worker that died (killed, OOM-killed, segfault) can take rank 0 with it before it writes a summary: torchrun
    stops the other ranks as soon as it sees one gone, often before rank 0's next collective would have told it."""
    from ..engine.store import mark_failed

    for run_dir in sorted((runs_dir / experiment).glob("*")):
        if run_dir.is_dir() and run_dir.stat().st_mtime >= since:
            mark_failed(run_dir, f"a training process died (torchrun exit code {returncode})", "distributed", nproc)


def launch_torchrun(command: list[str], runs_dir: Path, experiment: str, expected: int,
                   again: str | None = None) -> int:
    """Run `command` (vitlab under torchrun) and return vitlab's exit code for what its runs did.

    torchrun gets its own session, so the terminal's signals reach this process alone, which passes them on to
    the training processes (torchrun puts each in a session of its own), as one process would take them: Ctrl-C
    (or SIGTERM) cancels after the current step, every rank together; a second Ctrl-C ends everything at once;
    a hang-up keeps training and stops writing to the terminal. Left to torchrun, a Ctrl-C ended in its
    traceback, and a torchrun killed first left its ranks waiting on its rendezvous store for good. `expected`:
    how many runs this launch trains, so that a Ctrl-C after the last one ended stops nothing (exit 0); `again`:
    the command that goes on where a failed launch stopped (`--continue`)."""
    start = time.time()
    # one thread a process unless told otherwise, as torchrun does, without its warning about doing so
    env = {"OMP_NUM_THREADS": "1", **os.environ, LAUNCHED: "1"}
    proc = subprocess.Popen(command, start_new_session=True, env=env)
    ranks: dict[int, psutil.Process] = {}
    interrupted, winding_down = [], []

    def alive() -> list[psutil.Process]:
        return [r for r in ranks.values() if r.is_running()]

    def cancel(signum, frame) -> None:
        live = alive()
        if ranks and not live and not interrupted and not winding_down:
            winding_down.append(signum)  # every rank has ended and torchrun winds down: this one stops nothing
            return
        interrupted.append(signum)
        if len(interrupted) == 1 and live:
            for rank in live:
                rank.send_signal(signal.SIGINT)
        else:  # still starting (nothing trained to keep), or asked twice: at once, without torchrun's traceback
            for p in [*alive(), psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.Error):
                    p.kill()

    def hang_up(signum, frame) -> None:  # the terminal is gone: training goes on, nobody writes to it
        for rank in alive():
            rank.send_signal(signal.SIGHUP)
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)

    handlers = {signal.SIGINT: cancel, signal.SIGTERM: cancel, signal.SIGHUP: hang_up}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                ranks.update((c.pid, c) for c in psutil.Process(proc.pid).children())
            time.sleep(0.2)
    finally:
        # every run has ended with torchrun: a Ctrl-C from here on stops nothing (as queue_over does for the
        # ranks); Python's own handler made it a KeyboardInterrupt or a death by SIGINT over finished runs
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else handler)
        for rank in alive():  # torchrun gone, its store with it: a rank still there would wait for good
            rank.kill()
    if proc.returncode != 0 and not interrupted:
        mark_orphans(Path(runs_dir), experiment, start, proc.returncode, nproc_of(command))
        print(f"vitlab: the distributed run ended with exit code {proc.returncode}; "
              f"see the run directories under {runs_dir}/{experiment} (vitlab compare {runs_dir}/{experiment})"
              + (f". To go on where it stopped: {again}" if again else ""), file=sys.stderr)
        return EXIT_FAILED
    if len(interrupted) > 1 or proc.returncode != 0:
        print(f"vitlab: stopped at once; the runs under {runs_dir}/{experiment} keep their last checkpoints "
              f"(vitlab resume RUN_DIR --nproc {nproc_of(command)})", file=sys.stderr)
    ended = runs_since(Path(runs_dir) / experiment, start)
    code = exit_code(ended)
    return EXIT_CANCELLED if interrupted and code == EXIT_OK and len(ended) < expected else code  # before the rest


def nproc_of(command: list[str]) -> int:
    return next(int(a.split("=", 1)[1]) for a in command if a.startswith("--nproc-per-node="))


def runs_since(where: Path, since: float) -> list[dict]:
    """The summaries of the runs this launch wrote (trained or resumed)."""
    return [s for s in (find_runs([where]) if where.is_dir() else []) if Path(s["run_dir"]).stat().st_mtime >= since]


if __name__ == "__main__":
    sys.exit(torchrun(sys.argv[1:]))
