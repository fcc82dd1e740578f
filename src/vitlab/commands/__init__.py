"""Headless subcommands of the `vitlab` CLI, one module each; each exposes `add_parser(subparsers)`."""
import argparse
from pathlib import Path

# set by `--nproc`'s launcher for its ranks (commands/launch.py): a rank's exit code leaves the run's outcome to it
LAUNCHED = "VITLAB_LAUNCHED"


def positive_int(text: str) -> int:
    """A count argument (--nproc): a whole number from 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number from 1 (got {text!r})")
    return int(text)


def user_path(text: str) -> Path:
    """A path argument; '~' expands even where the shell leaves it (`--runs-dir=~/runs`)."""
    return Path(text).expanduser()
