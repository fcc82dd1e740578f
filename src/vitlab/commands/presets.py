"""`vitlab presets`: the presets vitlab can find, with what each answers."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..engine.weights import lacking_weights
from ..presets import list_presets, preset_dirs
from .console import cli_console

NAME = "presets"


def add_parser(sub) -> None:
    about = "list presets (name, description, number of runs)"
    p = sub.add_parser(NAME, help=about, description=about + " from ./presets, ~/.config/vitlab/presets and "
                       "those shipped with vitlab; `vitlab run NAME` takes the name shown.")
    p.set_defaults(handler=main)


def first_sentence(text: str) -> str:
    """What a preset asks, in its description's first sentence (the rest is in the file)."""
    text = " ".join(text.split())
    for end in (". ", "? "):
        if end in text:
            text = text[:text.index(end) + 1]
    return text


def main(args: argparse.Namespace) -> int:
    console = cli_console()
    table = Table(header_style="bold", show_lines=False)
    table.add_column("Preset", no_wrap=True)  # what `vitlab run NAME` takes: the file's name
    table.add_column("Runs", justify="right")
    table.add_column("Description")
    table.add_column("File", style="dim", overflow="fold")
    taken: dict[str, Path] = {}  # name -> the file `vitlab run NAME` reads (the first directory's)
    for info in list_presets():
        desc = f"[red]invalid: {escape(info.error.splitlines()[0])}[/]" if info.error else \
            escape(first_sentence(info.description))
        weights = [f"the weights of {', '.join(lacking)}"] if (lacking := lacking_weights(info.runs)) else []
        if needs := [*info.missing, *weights]:  # offline, a preset that cannot start here is told apart before it
            desc += f" [yellow]Needs {escape(', '.join(needs))}.[/]"  # is run (weights: no torch, quick)
        if (first := taken.setdefault(info.path.stem, info.path)) != info.path:
            desc += (f" [dim](`vitlab run {escape(info.path.stem)}` reads {escape(str(first))}; give this one by its "
                     "path)[/]")
        table.add_row(escape(info.path.stem), str(len(info.runs)), desc, escape(str(info.path)))
    if not console.is_terminal:  # piped: a row per line, whatever the paths' length (grep, the tests)
        wide = console.options.update(max_width=4096)
        console.width = max(console.width, console.measure(table, options=wide).maximum)
    console.print(table)
    console.print(f"searched: {escape(', '.join(str(d) for d in preset_dirs())) or '(no preset directories)'}",
                  style="dim")
    return 0
