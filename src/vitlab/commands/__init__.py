"""Headless subcommands of the `vitlab` CLI, one module each exposing `add_parser(subparsers)`, and what they share
(console.py, progress.py, launch.py for torchrun, the exit codes here)."""
import argparse
from pathlib import Path

# set by `--nproc`'s launcher for its ranks (commands/launch.py): a rank's exit code leaves the run's outcome to it
LAUNCHED = "VITLAB_LAUNCHED"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


def exit_code(summaries: list[dict]) -> int:
    """vitlab's exit code for what a queue's runs did, on one process or several: cancelled if one was (a Ctrl-C
    stops the queue, even after a failed run), failed if one failed, 0 when every run finished."""
    statuses = [s.get("status") for s in summaries]
    if "cancelled" in statuses:
        return EXIT_CANCELLED
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_OK if all(status == "finished" for status in statuses) else EXIT_CANCELLED


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
    from ..config import picked_by, unseeded_name
    from ..errors import VitlabError

    if not names:
        return exp

    def called(r) -> set[str]:
        return picked_by(r.name, r.train.seed)

    for name in names:
        if not any(name.lower() in called(r) for r in exp.runs):
            runs = dict.fromkeys(unseeded_name(r.name, r.train.seed) for r in exp.runs)  # vit, not vit-s0 vit-s1 ...
            raise VitlabError(f"--run {name}: no such run in {exp.name}; runs: {', '.join(runs)}")
    wanted = {n.lower() for n in names}
    return exp.model_copy(update={"runs": [r for r in exp.runs if called(r) & wanted]})
