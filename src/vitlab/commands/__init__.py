"""Headless subcommands of the `vitlab` CLI, one module each; each exposes `add_parser(subparsers)`."""
from pathlib import Path


def user_path(text: str) -> Path:
    """A path argument; '~' expands even where the shell leaves it (`--runs-dir=~/runs`)."""
    return Path(text).expanduser()
