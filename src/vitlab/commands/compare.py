"""`vitlab compare PATH...`: one table of every run under the paths, this session's and history."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import VitlabError
from ..report import (COLUMN_KEYS, EXPORTS, SEED_COLUMNS, SEED_EXPORTS, cancelled_early, rich_table, runs_count,
                      seed_groups, seed_table, sort_summaries)
from . import user_path
from .console import cli_console

NAME = "compare"
FORMATS = ("table", *EXPORTS)
SORT_KEYS = (*COLUMN_KEYS, *(c.key for c in SEED_COLUMNS if c.key not in COLUMN_KEYS))  # seeds, vs_best: --by-seed


def file_path(text: str) -> Path:
    """A file to write: `out.png/` names a directory (Path drops the slash, and out.png was written)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} names a directory; name a file in it, e.g. {text}curves.png")
    return user_path(text)


def add_parser(sub) -> None:
    about = "compare runs: a run directory or any directory above run directories"
    p = sub.add_parser(NAME, help=about, description=about + " (history included), newest first.")
    p.add_argument("paths", nargs="+", type=user_path, metavar="PATH",
                   help="a run directory, or a directory above run directories (e.g. runs/)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), md, csv or json")
    p.add_argument("--sort", choices=SORT_KEYS, metavar="COLUMN",
                   help=f"sort by a column: {', '.join(SORT_KEYS)} (numbers largest first, text A-Z; "
                        "default: newest first)")
    p.add_argument("--by-seed", action="store_true",
                   help="only the runs that differ by seed alone, one row per condition: mean ± standard deviation "
                        "(with --plot: one curve per condition, in a band of ± one standard deviation)")
    p.add_argument("--all", action="store_true",
                   help="also the runs cancelled in their first epoch (left out otherwise: no accuracy to compare)")
    p.add_argument("--plot", type=file_path, metavar="FILE",
                   help="also draw loss and accuracy curves to FILE (.png or .svg)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ..engine.store import find_runs
    from ..plots import check_plot_path, plot_curves

    seed_keys = [c.key for c in SEED_COLUMNS]
    if args.by_seed and args.sort not in (None, *seed_keys):
        raise VitlabError(f"--sort {args.sort}: the table across seeds has no such column; one of: "
                          f"{', '.join(seed_keys)}")
    if args.plot:
        check_plot_path(args.plot)  # before the table, not after it
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise VitlabError(f"compare: no such path: {', '.join(missing)}")
    # a run's own file stands for its directory; another file (a preset, say) is no place to look for runs
    args.paths = [p.parent if p.is_file() and p.name in ("config.yaml", "summary.json") else p for p in args.paths]
    if files := [str(p) for p in args.paths if p.is_file()]:
        raise VitlabError(f"compare: {', '.join(files)}: a file; give run directories or a directory above them "
                          "(e.g. runs/)")
    found = find_runs(args.paths)
    if not found:
        raise VitlabError(f"compare: no run directories under {', '.join(map(str, args.paths))} "
                          "(a run directory holds config.yaml and summary.json)")
    named = {p.resolve() for p in args.paths}  # a run directory named on the command line is always shown
    summaries = found if args.all else [s for s in found
                                        if not cancelled_early(s) or Path(s["run_dir"]).resolve() in named]
    if left_out := len(found) - len(summaries):
        print(f"({runs_count(left_out)} cancelled in the first epoch left out: --all lists them)", file=sys.stderr)
    if not summaries:
        raise VitlabError(f"compare: every run under {', '.join(map(str, args.paths))} was cancelled in its first "
                          "epoch (--all lists them)")
    summaries = sort_summaries(summaries, args.sort if args.sort in COLUMN_KEYS else None)
    groups = seed_groups(summaries)
    if args.sort in seed_keys:  # the conditions in the order asked for too
        groups = sort_summaries(groups, args.sort, SEED_COLUMNS)
    only_seeds = args.sort is not None and args.sort not in COLUMN_KEYS  # seeds, vs_best: no run has them
    if only_seeds and not args.by_seed and args.format != "table":
        raise VitlabError(f"--sort {args.sort}: a column of the table across seeds only; add --by-seed")
    # a script gets an empty list (--by-seed --format json); a person is told why there is no table to read
    if not groups and args.format == "table" and (args.by_seed or only_seeds):
        asked = "--by-seed" if args.by_seed else f"--sort {args.sort}"
        raise VitlabError(f"compare {asked}: no runs under these paths differ by their seed alone, so there is no "
                          "table across seeds (train with `vitlab run PRESET --seeds 0,1,2`, or a preset's "
                          "`seeds: [0, 1, 2]`)")
    if args.format == "table":
        console = cli_console()
        if not args.by_seed:
            console.print(rich_table(summaries, width=console.width, sort=args.sort))
        if groups:
            console.print(seed_table(groups, width=console.width))
    else:
        render, rows = (SEED_EXPORTS, groups) if args.by_seed else (EXPORTS, summaries)
        sys.stdout.write(render[args.format](rows) + ("\n" if args.format == "json" else ""))
    if args.plot:
        plot_curves(summaries, args.plot, by_seed=args.by_seed)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
