"""`vitlab resume RUN_DIR`: continue an interrupted, cancelled or failed run from its last checkpoint."""
from __future__ import annotations

import argparse
import os

from . import positive_int, user_path
from .console import cli_console
from .progress import ProgressPrinter
from .run import StopRequest, install_signals, queue_over, rank_code, run_and_report

NAME = "resume"


def add_parser(sub) -> None:
    about = "continue a run from its last checkpoint, in its own directory"
    p = sub.add_parser(NAME, help=about, description=about + " (a cancelled, failed, interrupted or killed run; "
                       "its start time stays).")
    p.add_argument("run_dir", type=user_path, help="the run's directory (`vitlab compare runs/` lists them)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                   help="as many local processes as the run trained on (`vitlab run --nproc N`)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ..engine.hardware import check_nproc
        from ..engine.resumable import resumable
        from .launch import launch_torchrun, vitlab_under_torchrun

        check_nproc(args.nproc)
        resumable(args.run_dir, args.nproc)  # refused here, once, rather than by every rank

        command = [*vitlab_under_torchrun(args.nproc), NAME, str(args.run_dir)] + (["--json"] if args.json else [])
        return launch_torchrun(command, args.run_dir.parent.parent, args.run_dir.parent.name, 1)
    console = cli_console(stderr=True)
    if int(os.environ.get("RANK", "0")) != 0:  # rank 0 speaks for the run
        console.file = open(os.devnull, "w")
    stop = StopRequest(console)
    install_signals(stop)
    from ..engine.runner import resume_run

    printer = ProgressPrinter(console)
    try:
        return rank_code(run_and_report(args.run_dir.parent.name,
                                        lambda: [resume_run(args.run_dir, emit=printer, should_stop=stop)],
                                        as_json=args.json, console=console))
    finally:
        printer.stop()
        queue_over()
