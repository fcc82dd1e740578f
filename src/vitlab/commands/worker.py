"""`vitlab worker`: the TUI's training process (internal; not listed in --help).

It trains an experiment on its main thread, so the TUI's UI thread never shares a GIL with torch, and writes
each engine event to stdout as one JSON line (engine/wire.py). It outlives the TUI: the TUI starts it in its
own session, it ignores SIGHUP, and when nobody reads its stream any more it stops streaming and trains on
(the run directory records everything). Its stderr is the TUI's log file; it never writes to a terminal.

The TUI keeps one started ahead with --standby: it loads torch and the engine, then waits for the path of
its experiment's JSON as the first line on stdin (followed by a tab and `continue` for --continue; EOF
first: the TUI is gone, it exits), so ctrl+r does not wait for torch to load. Control arrives on stdin
after that, a word a line: `cancel` ends the current run as cancelled and goes on with the queue; `stop`
ends it and skips the rest. SIGINT and SIGTERM mean `stop`
(`kill PID` of a run left training in the background). With --nproc N > 1 it relaunches itself under
torchrun; rank 0 streams and listens.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from ..config import ExperimentConfig
from ..engine import wire
from ..errors import VitlabError
from . import user_path

NAME = "worker"
# What a standby worker loads before it has an experiment: torch, timm and torchvision (models) and fvcore
# (FLOPs) took ~3 s of a run's start on the 2-core VM.
WARM_MODULES = ("vitlab.engine.runner", "vitlab.engine.models", "vitlab.engine.profile", "vitlab.engine.data")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME)  # no help=: internal, so `vitlab --help` does not list it
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--experiment-json", type=user_path, help="ExperimentConfig as JSON")
    what.add_argument("--standby", action="store_true", help="load torch, then read the JSON's path from stdin")
    p.add_argument("--runs-dir", type=user_path, required=True)
    p.add_argument("--nproc", type=int, default=1, help="local processes (GPUs), launched with torchrun")
    p.add_argument("--resume-dir", type=user_path, help="continue this run (the experiment JSON holds its config)")
    p.add_argument("--continue", dest="resume_earlier", action="store_true",
                   help="keep or resume the earlier runs of the same config, as `vitlab run --continue`")
    p.set_defaults(handler=main)


class EventStream:
    """Our stdout as the event stream; fd 1 itself then points at stderr, so a stray print lands in the log."""

    def __init__(self, enabled: bool):
        sys.stdout.flush()
        self.out = os.fdopen(os.dup(1), "w", encoding="utf-8") if enabled else None
        os.dup2(2, 1)

    def __call__(self, message: wire.WireMessage) -> None:
        if self.out is None:
            return
        try:
            self.out.write(wire.encode(message) + "\n")
            self.out.flush()
        except OSError:  # BrokenPipeError included: the TUI is gone, training goes on
            self.close()

    def close(self) -> None:
        out, self.out = self.out, None
        if out is not None:
            with suppress(OSError):
                out.close()


class Control:
    """The engine's should_stop: true once `cancel [RUN]` (this run; with a name, only if it is the one
    training) or `stop` (the whole queue) arrived. The TUI names the run its dialog asked about, so an answer
    given after that run ended cancels nothing."""

    def __init__(self, first_run: str | None = None) -> None:
        self.cancel = False
        self.stop = False
        self.current = first_run  # the run training (or loading: a cancel then means the first), None between

    def __call__(self) -> bool:
        return self.cancel or self.stop

    def on_signal(self, signum, frame) -> None:
        self.stop = True

    def listen(self, fd: int = 0) -> None:
        """Read commands until EOF (the TUI exited: keep training). Raw reads: no buffer lock held at exit."""
        pending = b""
        while chunk := os.read(fd, 1024):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                word, _, run = line.decode(errors="replace").strip().partition(" ")
                if word == "cancel" and (not run or run == self.current):
                    self.cancel = True
                elif word == "stop":
                    self.stop = True


def first_line(fd: int = 0) -> str:
    """One line from fd, a byte at a time so nothing after it is taken from Control.listen; '' at EOF."""
    line = b""
    while (byte := os.read(fd, 1)) and byte != b"\n":
        line += byte
    return line.decode().strip()


def torchrun_command(args: argparse.Namespace) -> list[str]:
    from .launch import vitlab_under_torchrun

    resume = (["--resume-dir", str(args.resume_dir)] if args.resume_dir else
              ["--continue"] if args.resume_earlier else [])
    return [*vitlab_under_torchrun(args.nproc), NAME, "--experiment-json", str(args.experiment_json),
            "--runs-dir", str(args.runs_dir), *resume]


def launch(args: argparse.Namespace, experiment: str) -> int:
    """torchrun inherits our stdin (rank 0 reads it), stdout (rank 0's stream) and stderr (the log)."""
    from .launch import mark_orphans

    start = time.time()
    proc = subprocess.Popen(torchrun_command(args))
    stopped = []

    def forward(signum, frame) -> None:  # torchrun passes it to every rank: all stop together
        stopped.append(signum)
        proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    code = proc.wait()
    if code != 0:
        mark_orphans(Path(args.runs_dir), experiment, start, code, args.nproc)
    return 0 if code == 0 or stopped else 1  # torchrun exits non-zero when told to stop: that is no crash


def resume_refusal(run_dir: Path, nproc: int) -> str:
    """Why the run cannot resume on nproc processes ('' when it can)."""
    from ..engine.resumable import resumable

    try:
        resumable(run_dir, nproc)
    except VitlabError as e:
        return str(e)
    return ""


def queue_stops(control: Control) -> bool:
    """Before each run: was `stop` asked for? Under torchrun only rank 0 hears the TUI, so every rank asks it."""
    from ..engine import distributed

    d = distributed.from_env()
    if not d.enabled:
        return control.stop
    import torch

    device = torch.device("cuda", d.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return d.any(control.stop, device)


def main(args: argparse.Namespace) -> int:
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session must not end training
    if args.standby:
        for module in WARM_MODULES:  # while nobody waits for them
            importlib.import_module(module)
        path, _, flag = first_line().partition("\t")
        if not path:
            return 0
        args.experiment_json, args.resume_earlier = Path(path), flag == "continue"
    exp = ExperimentConfig.model_validate_json(args.experiment_json.read_text(encoding="utf-8"))
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        if args.resume_dir and (refusal := resume_refusal(args.resume_dir, args.nproc)):
            stream = EventStream(enabled=True)  # said once here, not by every rank
            stream(wire.RunNotStarted(exp.runs[0].name, refusal))
            stream.close()
            return 1
        return launch(args, exp.name)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    stream = EventStream(enabled=rank0)
    control = Control(exp.runs[0].name if exp.runs else None)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, control.on_signal)
    if rank0:
        threading.Thread(target=control.listen, name="control", daemon=True).start()
    from ..engine.continuation import TRAIN, shared_plan
    from ..engine.preflight import queue_blockers
    from ..engine.runner import resume_run, run_step  # torch loads here

    try:
        try:
            steps = shared_plan(exp, args.runs_dir) if args.resume_earlier else [TRAIN] * len(exp.runs)
        except VitlabError as e:  # one of them is still training elsewhere
            stream(wire.RunNotStarted(exp.runs[0].name, str(e)))
            return 1
        if missing := queue_blockers(exp.runs, steps):
            stream(wire.RunNotStarted(*missing))  # one message for the queue, not one failed run each
            return 1
        if args.resume_dir:
            try:
                resume_run(args.resume_dir, emit=stream, should_stop=control)
            except VitlabError as e:  # finished, still training, a non-finite failure: nothing to resume
                stream(wire.RunNotStarted(exp.runs[0].name, str(e)))
                return 1
            return 0
        for i, (cfg, step) in enumerate(zip(exp.runs, steps)):
            if queue_stops(control):
                break
            control.current = cfg.name
            try:
                run_step(cfg, step, experiment=exp.name, runs_dir=args.runs_dir, emit=stream, should_stop=control,
                         index=i, total_runs=len(exp.runs))
            except VitlabError as e:  # e.g. the runs directory is not writable: the queue cannot go on
                stream(wire.RunNotStarted(cfg.name, str(e)))
                return 1
            control.current = None  # a late `cancel <that run>` now cancels nothing
            control.cancel = False
    finally:
        stream.close()
    return 0
