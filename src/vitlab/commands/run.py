"""`vitlab run PRESET.yaml`: train every run of a preset headless and print the comparison table."""
from __future__ import annotations

import argparse
import functools
import os
import shlex
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..errors import CannotStart
from ..presets import load_preset, parse_seeds
from . import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, LAUNCHED, exit_code, pick_runs, positive_int, user_path
from .console import cli_console
from .progress import ProgressPrinter

NAME = "run"


def add_parser(sub) -> None:
    about = "train a preset's runs headless and print the comparison table"
    p = sub.add_parser(NAME, help=about, description=about + " (stdout; progress on stderr).")
    p.add_argument("preset", help="a preset YAML file, or the name of a shipped preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field in every run, e.g. --set train.batch_size=16 (repeatable)")
    p.add_argument("--run", dest="runs", action="append", metavar="NAME",
                   help="train only this run of the preset (repeatable; with seeds, every seed of it)")
    p.add_argument("--seeds", metavar="S,S,...",
                   help="train every run once per seed (e.g. 0,1,2; replaces the preset's seeds) and end on the mean "
                        "and standard deviation across seeds")
    p.add_argument("--continue", dest="resume_earlier", action="store_true",
                   help="pick up where an earlier run of this preset stopped: keep its finished runs, resume its "
                        "cancelled, interrupted or failed ones, train the rest")
    p.add_argument("--runs-dir", type=user_path, default=Path("runs"), help="where runs are written (default ./runs)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout (human text on stderr)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files")
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                   help="train each run on N local processes (GPUs) with DistributedDataParallel, via torchrun")
    p.set_defaults(handler=main)


class StopRequest:
    """First Ctrl-C: finish the current step and end the run as cancelled. Second: exit at once."""

    def __init__(self, console: Console):
        self.requested = False
        self.console = console

    def __call__(self) -> bool:
        return self.requested

    def on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.console.print("[yellow]Stopping after this step (Ctrl-C again to quit at once)...[/]")

    def on_sighup(self, signum, frame) -> None:
        # The terminal is gone (SSH dropped): keep training, stop writing to it (the tables go to stdout).
        self.console.file = open(os.devnull, "w")
        if sys.stdout.isatty():
            sys.stdout = open(os.devnull, "w")


def rank_code(code: int) -> int:
    """A rank started by vitlab's own launcher leaves a failed or cancelled run's exit code to it (it reads the
    summaries): torchrun took a rank's non-zero exit for a crash, with a traceback."""
    return EXIT_OK if code in (EXIT_FAILED, EXIT_CANCELLED) and os.environ.get(LAUNCHED) else code


def queue_over() -> None:
    """A rank's Ctrl-C after its queue ended is ignored: Python gives SIGINT back to the system as it exits, and a
    rank that the launcher's Ctrl-C caught then died of it, a torchrun traceback over a queue that had finished."""
    if "WORLD_SIZE" in os.environ:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def install_signals(stop: StopRequest) -> None:
    signal.signal(signal.SIGINT, stop.on_sigint)
    if "WORLD_SIZE" not in os.environ:  # a rank's SIGTERM is torchrun's, after a peer died: it ends the rank
        # a scheduler's stop (SLURM's scancel, systemd, docker stop) is a cancel: it left the run `running`
        signal.signal(signal.SIGTERM, stop.on_sigint)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, stop.on_sighup)


def run_and_report(experiment, summaries_source, *, as_json: bool, console: Console,
                   planned: list[str] | None = None, again: str | None = None) -> int:
    """Train, then the comparison on stdout (the table, or the JSON document); progress stays on stderr.
    `planned`: the queue's run names, and `again` the command that continues it, to say what a Ctrl-C left."""
    from ..report import rich_table, seed_groups, seed_table, to_json

    summaries = summaries_source()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports for the run
        return exit_code(summaries)
    left = (planned or [])[len(summaries):]
    if as_json:  # a script learns which runs a Ctrl-C left untrained, as a person does from the line below
        print(to_json(summaries, experiment=experiment, not_started=left), flush=True)
    else:
        out = cli_console()
        out.print(rich_table(summaries, title=experiment, hide=("experiment", "started"), width=out.width))
        if groups := seed_groups(summaries):
            out.print(seed_table(groups, hide=("experiment",), width=out.width))
    if left:  # a Ctrl-C stopped the queue: the run it cancelled, or (while torch loaded) before the first
        console.print(f"[yellow]Not started:[/] {escape(', '.join(left))}." + (
            f" To go on where this stopped: [bold]{escape(again)}[/]" if again else ""), soft_wrap=True)
    return EXIT_CANCELLED if left else exit_code(summaries)


def run_words(args: argparse.Namespace) -> list[str]:
    """This `vitlab run`'s words less --nproc and --continue: what each torchrun rank runs, and the way back."""
    words = ["run", str(args.preset)]
    for name in args.runs or []:
        words += ["--run", name]
    for pair in args.overrides:
        words += ["--set", pair]
    words += ["--seeds", args.seeds] if args.seeds is not None else []
    words += ["--tensorboard"] if args.tensorboard else []
    words += ["--json"] if args.json else []
    return words + (["--runs-dir", str(args.runs_dir)] if args.runs_dir != Path("runs") else [])


def continue_command(args: argparse.Namespace, world: int | None = None) -> str:
    """This command line with --continue: it picks up the queue where a Ctrl-C stopped it."""
    world = world or int(os.environ.get("WORLD_SIZE", "1"))  # a rank of `--nproc N` was launched without the flag
    return shlex.join(["vitlab", *run_words(args), *(["--nproc", str(world)] if world > 1 else []), "--continue"])


def main(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["train.tensorboard=true"] if args.tensorboard else [])
    seeds = parse_seeds(args.seeds, "--seeds") if args.seeds is not None else None
    exp = pick_runs(load_preset(args.preset, overrides, seeds=seeds, only=args.runs), args.runs)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ..engine.hardware import check_nproc
        from ..engine.preflight import queue_blockers
        from .launch import launch_torchrun, torchrun_command

        check_nproc(args.nproc)
        steps = None
        if args.resume_earlier:  # a run still training elsewhere is said once here too
            from ..engine.continuation import plan

            steps = plan(exp, args.runs_dir, args.nproc)
        if missing := queue_blockers(exp.runs, steps):  # said once here, not by every rank; kept runs need nothing
            raise CannotStart(missing[1])
        trains = len(exp.runs) if steps is None else sum(how != "keep" for how, _, _ in steps)
        return launch_torchrun(torchrun_command(args), args.runs_dir, exp.name, trains,
                               again=continue_command(args, args.nproc))
    console = cli_console(stderr=True)
    if int(os.environ.get("RANK", "0")) != 0:
        console.file = open(os.devnull, "w")
    stop = StopRequest(console)
    install_signals(stop)
    from ..engine.events import RunEnded
    from ..engine.runner import run_experiment  # torch loads here, after the preset is known to be valid

    printer = ProgressPrinter(console)
    ended: list[dict] = []  # each run's summary as it ends: a second Ctrl-C still reports the runs so far

    def emit(event) -> None:
        if isinstance(event, RunEnded):
            ended.append(event.summary)
        printer(event)

    # under a torchrun a user started (several machines, say) there is no command line of ours to offer
    again = continue_command(args) if "WORLD_SIZE" not in os.environ or os.environ.get(LAUNCHED) else None
    report = functools.partial(run_and_report, exp.name, as_json=args.json, console=console,
                               planned=[r.name for r in exp.runs], again=again)
    try:
        return rank_code(report(lambda: run_experiment(exp, runs_dir=args.runs_dir, emit=emit, should_stop=stop,
                                                       resume_earlier=args.resume_earlier)))
    except KeyboardInterrupt:  # a second Ctrl-C: out at once, with the table of what ended and the way back
        printer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if ended:
            return rank_code(report(lambda: ended))
        if again:
            console.print(f"To go on where this stopped: [bold]{escape(again)}[/]", soft_wrap=True)
        return rank_code(EXIT_CANCELLED)
    finally:
        printer.stop()
        queue_over()

