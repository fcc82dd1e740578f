"""`vitlab resume RUN_DIR`: continue an interrupted, cancelled or failed run from its last checkpoint."""
from __future__ import annotations

import argparse

from rich.console import Console

from . import user_path
from .progress import ProgressPrinter
from .run import StopRequest, install_signals, run_and_report, wide_when_piped

NAME = "resume"


def add_parser(sub) -> None:
    about = "continue a run from its last checkpoint, in its own directory"
    p = sub.add_parser(NAME, help=about, description=about + " (a cancelled, failed, interrupted or killed run; "
                       "its start time stays).")
    p.add_argument("run_dir", type=user_path, help="the run's directory (`vitlab compare runs/` lists them)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    console = wide_when_piped(Console(stderr=True, highlight=False))
    stop = StopRequest(console)
    install_signals(stop)
    from ..engine.runner import resume_run

    printer = ProgressPrinter(console)
    try:
        return run_and_report(args.run_dir.parent.name,
                              lambda: [resume_run(args.run_dir, emit=printer, should_stop=stop)],
                              as_json=args.json, console=console)
    finally:
        printer.stop()
