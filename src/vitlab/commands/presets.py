"""`vitlab presets`: the presets vitlab can find, with what each answers."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..presets import list_presets, preset_dirs

NAME = "presets"


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help="list presets (name, description, number of runs)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    table = Table(header_style="bold", show_lines=False)
    table.add_column("Preset")
    table.add_column("Runs", justify="right")
    table.add_column("Description")
    table.add_column("File", style="dim")
    for info in list_presets():
        desc = f"[red]invalid: {escape(info.error.splitlines()[0])}[/]" if info.error else escape(info.description)
        table.add_row(escape(info.name), str(info.runs), desc, escape(str(info.path)))
    console.print(table)
    console.print(f"searched: {escape(', '.join(str(d) for d in preset_dirs())) or '(no preset directories)'}",
                  style="dim")
    return 0
