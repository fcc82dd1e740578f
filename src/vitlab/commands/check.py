"""`vitlab check accumulation PRESET.yaml`: prove accumulation equals the large batch on your model."""
from __future__ import annotations

import argparse

from rich.console import Console

from ..errors import CannotStart
from ..presets import load_preset
from . import pick_runs

NAME = "check"


def add_parser(sub) -> None:
    about = "science checks: `check accumulation PRESET.yaml`"
    p = sub.add_parser(NAME, help=about, description=(
        "accumulation: prove, on each run's own model and data, that the gradient accumulated over its micro-batches "
        "equals the one-pass gradient of the effective batch, in a full window and in the epoch's shorter last one "
        "(fp32; exit 1 if not)."))
    p.add_argument("what", choices=["accumulation"], help="what to check")
    p.add_argument("preset", help="a preset YAML file, or the name of a shipped preset")
    p.add_argument("--run", help="check only this run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field in every run, as `vitlab run --set` (repeatable)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    only = [args.run] if args.run else None
    runs = pick_runs(load_preset(args.preset, args.overrides, only=only), only).runs
    from ..engine.checks import check_accumulation
    from ..engine.preflight import queue_blockers

    if missing := queue_blockers(runs):  # every missing dataset and weights at once, as `vitlab run` says them
        raise CannotStart(missing[1])

    from ..engine.cpu_share import CpuShare
    from .console import cli_console

    console = cli_console()  # piped: a sentence per line, not wrapped at 80
    share = CpuShare()  # a CPU training beside it (the TUI's) takes half the cores, not 27 of its 1,240 img/s
    share.adapt(now=True)
    try:
        failed = sum(not report(console, run.name, check_accumulation(run)) for run in runs)
    finally:
        share.close()
    return 1 if failed else 0


def report(console: Console, name: str, result) -> bool:
    """The check's lines for one run; True if it passed."""
    from ..engine.checks import TOLERANCE

    for i, window in enumerate(result.windows):
        split = " + ".join(map(str, window.micro_batches))
        verdict = "[green]ok[/]" if window.max_rel_diff <= TOLERANCE else "[red]MISMATCH[/]"
        # a short last window of one micro-batch still checks its scaling: by its own samples, not the nominal batch
        how = (f"accumulated {split}" if len(window.micro_batches) > 1 else
               f"its one micro-batch scaled by the window's {split} samples")
        console.print(f"{name}{', last window' if i else ''}: one pass of {sum(window.micro_batches)} vs {how}: "
                      f"max relative gradient difference {window.max_rel_diff:.2e} (tolerance {TOLERANCE:.0e}) "
                      f"{verdict}")
    if result.split:
        first = " + ".join(map(str, result.windows[0].micro_batches))
        console.print(f"  note: this run does not accumulate (accumulation_steps 1), so the check accumulated {first} "
                      "instead, to compare with one pass.", style="dim")
    if result.batchnorm:
        console.print("  note: BatchNorm held at running statistics for the check; in training it normalises "
                      "each micro-batch by its own statistics, so accumulation is not exactly the large batch.",
                      style="dim")
    if not result.ok:
        console.print(f"  the accumulated gradient differs most in {result.worst.worst_param}: the loss of each "
                      "micro-batch is not scaled by the samples of its window", style="red")
    return result.ok
