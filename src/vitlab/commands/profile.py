"""`vitlab profile PRESET.yaml`: params and FLOPs per image of each run, without data or training."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from rich.table import Table

from ..config import RunConfig, condition_key, model_label, profile_key, run_label, unseeded_name
from ..errors import VitlabError
from ..presets import load_preset
from ..report import human_count
from .console import cli_console

NAME = "profile"


def add_parser(sub) -> None:
    about = "params and FLOPs per image of each run (no data or weights needed)"
    p = sub.add_parser(NAME, help=about, description=about + "; FLOPs by fvcore, attention included, a multiply-add "
                       "counted once.")
    p.add_argument("preset", help="a preset YAML file, or the name of a shipped preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field in every run, as `vitlab run --set` (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    exp = load_preset(args.preset, args.overrides)
    from ..engine.profile import NOT_COUNTED, Profile, guessed, profile_run

    done: dict[str, Profile] = {}  # runs that differ by seed or recipe alone have one model to trace
    profiles = []
    for run in exp.runs:
        if (key := profile_key(run)) not in done:
            try:
                done[key] = profile_run(run)
            except (RuntimeError, MemoryError) as e:  # too large to trace here: say so, no traceback
                raise VitlabError(f"{run.name}: cannot trace {model_label(run.model)} at {run.data.size} px on this "
                                  f"machine ({str(e).splitlines()[0][:160]})") from None
        profiles.append(replace(done[key], name=run.name, config=run.resolved()))
    notes = [guessed(run) for run in exp.runs]  # what it assumed for weights or data not on this machine
    if args.json:
        print(json.dumps({"experiment": exp.name, "runs": [
            {"name": p.name, "params": p.params, "trainable_params": p.trainable_params, "flops": p.flops,
             "note": note, "config": p.config} for p, note in zip(profiles, notes)]}, indent=2))
        return 0
    rows: list[tuple[tuple[str, str], list[RunConfig], Profile]] = []  # a run and its other seeds' copies: one row
    for run, p in zip(exp.runs, profiles):
        key = (condition_key(run.resolved()), unseeded_name(run.name, run.train.seed))  # runs named apart stay apart
        if rows and rows[-1][0] == key:
            rows[-1][1].append(run)
        else:
            rows.append((key, [run], p))
    names = [runs[0].name if len(runs) == 1 else f"{unseeded_name(runs[0].name, runs[0].train.seed)} "
             f"(seeds {','.join(str(r.train.seed) for r in runs)})" for _, runs, _ in rows]
    table = Table(title=exp.name, header_style="bold")
    # a narrow terminal wraps the model's words; a run's name is never cut ("conv-stem-…" told nothing)
    table.add_column("Run", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("Model")
    for header in ("Image", "Params", "Trainable", "GFLOPs", "Tokens"):  # GFLOPs per image: see the note
        table.add_column(header, justify="right", no_wrap=True)
    for name, (_, runs, p) in zip(names, rows):
        run, size = runs[0], runs[0].data.size
        tokens = str(run.model.tokens(size)) if run.model.kind == "vit" else "-"  # as the form's Tokens/img
        table.add_row(name, run_label(run), f"{size}px", human_count(p.params),
                      human_count(p.trainable_params), f"{p.flops / 1e9:.3g}", tokens)
    console = cli_console()
    console.print(table)
    console.print("GFLOPs: one forward pass per image, a multiply-add counted once (fvcore), attention included; "
                  f"not counted: {', '.join(NOT_COUNTED)}.", style="dim")
    note_of = dict(zip((r.name for r in exp.runs), notes))
    for name, (_, runs, _) in zip(names, rows):
        if note := note_of[runs[0].name]:
            console.print(f"{name}: {note}.", style="yellow")
    return 0
