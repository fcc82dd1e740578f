"""`vitlab compare PATH...`: one table of every run under the paths, this session's and history."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console

from ..errors import VitlabError
from ..report import COLUMN_KEYS, rich_table, sort_summaries, to_csv, to_json, to_markdown
from . import user_path

NAME = "compare"
FORMATS = ("table", "md", "csv", "json")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help="compare runs: a run directory or any directory above run directories")
    p.add_argument("paths", nargs="+", type=user_path, metavar="PATH")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), md, csv or json")
    p.add_argument("--sort", choices=COLUMN_KEYS, metavar="COLUMN",
                   help=f"sort by a column: {', '.join(COLUMN_KEYS)} (default: newest first)")
    p.add_argument("--plot", type=user_path, metavar="FILE",
                   help="also draw loss and accuracy curves to FILE (.png or .svg)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ..engine.store import find_runs
    from ..plots import check_plot_path, plot_curves

    if args.plot:
        check_plot_path(args.plot)  # before the table, not after it
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise VitlabError(f"compare: no such path: {', '.join(missing)}")
    summaries = sort_summaries(find_runs(args.paths), args.sort)
    if not summaries:
        raise VitlabError(f"compare: no run directories under {', '.join(map(str, args.paths))} "
                          "(a run directory holds config.yaml and summary.json)")
    if args.format == "table":
        console = Console(highlight=False)
        if not console.is_terminal:  # piped or redirected: don't wrap the table at 80 columns
            console.width = 200
        console.print(rich_table(summaries, width=console.width, sort=args.sort))
    else:
        render = {"md": to_markdown, "csv": to_csv, "json": to_json}[args.format]
        sys.stdout.write(render(summaries) + ("\n" if args.format == "json" else ""))
    if args.plot:
        plot_curves(summaries, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
