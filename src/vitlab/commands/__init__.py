"""Headless subcommands of the `vitlab` CLI, one module each; each exposes `add_parser(subparsers)`."""
import argparse
from pathlib import Path

# set by `--nproc`'s launcher for its ranks (commands/launch.py): a rank's exit code leaves the run's outcome to it
LAUNCHED = "VITLAB_LAUNCHED"


def positive_int(text: str) -> int:
    """A count argument (--nproc): a whole number from 1."""
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number from 1 (got {text!r})")
    return int(text)


def user_path(text: str) -> Path:
    """A path argument; '~' expands even where the shell leaves it (`--runs-dir=~/runs`)."""
    return Path(text).expanduser()


def pick_runs(exp, names: list[str] | None):
    """The experiment with only the runs named (`--run NAME`, repeatable; a name trained with several seeds picks
    every seed's run), in the preset's order; VitlabError names the runs there are."""
    from ..config import unseeded_name
    from ..errors import VitlabError

    if not names:
        return exp

    def called(r) -> set[str]:  # as run names are told apart: without regard to case
        return {r.name.lower(), unseeded_name(r.name, r.train.seed).lower()}

    for name in names:
        if not any(name.lower() in called(r) for r in exp.runs):
            runs = dict.fromkeys(unseeded_name(r.name, r.train.seed) for r in exp.runs)  # vit, not vit-s0 vit-s1 ...
            raise VitlabError(f"--run {name}: no such run in {exp.name}; runs: {', '.join(runs)}")
    wanted = {n.lower() for n in names}
    return exp.model_copy(update={"runs": [r for r in exp.runs if called(r) & wanted]})
