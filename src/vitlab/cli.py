"""`vitlab`: the TUI, and the headless commands (run, profile, presets, resume, ...).

Exit codes: 0 every run finished, 1 a run failed, 2 bad input, 130 cancelled with Ctrl-C.
Errors a user can act on are printed as one short message, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from . import __version__
from .commands import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, LAUNCHED, user_path
from .errors import VitlabError


def _subcommands():
    from .commands import check, compare, presets, profile, resume, run, worker

    return [run, profile, compare, presets, resume, check, worker]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default is usage + exit 2; keep exit 2, one line
        command = self.prog.partition(" ")[2]  # main() says "vitlab: " before every error
        raise VitlabError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vitlab", description="A terminal lab for Vision Transformer experiments.",
                    epilog="Without a command, `vitlab [PRESET.yaml] [--runs-dir DIR]` opens the TUI.")
    parser.add_argument("-V", "--version", action="version", version=f"vitlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in _subcommands():
        module.add_parser(sub)
    return parser


def tui_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vitlab", description="Open the vitlab TUI, optionally with a preset's runs queued. "
                    "Headless commands: run, profile, compare, presets, resume, check (vitlab COMMAND --help).")
    parser.add_argument("preset", nargs="?", type=user_path, help="a preset YAML to queue")
    parser.add_argument("--runs-dir", type=user_path, default=Path("runs"),
                        help="where runs are written (default ./runs)")
    parser.add_argument("-V", "--version", action="version", version=f"vitlab {__version__}")
    return parser


def not_a_command(word: str, commands: set[str]) -> None:
    """`vitlab rn quickstart` read as the TUI with a preset `rn` and ended on "unrecognized arguments:
    quickstart"; a word close to a command that names no preset file says which command was meant."""
    import difflib

    from .presets import resolve_preset_path

    near = difflib.get_close_matches(word, sorted(commands - {"worker"}), n=1)
    if near and not resolve_preset_path(word).is_file():
        raise VitlabError(f"{word}: no such command; did you mean `vitlab {near[0]}`? (vitlab --help lists them)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        commands = {m.NAME for m in _subcommands()}
        if argv and argv[0] in commands or argv[:1] in (["-h"], ["--help"], ["-V"], ["--version"]):
            args, extra = build_parser().parse_known_args(argv)
            if extra:  # said by the top parser, it sent people to `vitlab --help` rather than the command's
                raise VitlabError(f"{args.command}: unrecognized arguments: {' '.join(extra)} "
                                  f"(see vitlab {args.command} --help)")
            code = args.handler(args)
            sys.stdout.flush()  # a full disk fails here, while it can still be said
            return code
        if argv and not argv[0].startswith("-"):
            not_a_command(argv[0], commands)
        args = tui_parser().parse_args(argv)
        if args.preset is not None:
            from .presets import load_preset

            load_preset(args.preset)  # a bad preset is a one-line error here, not a broken TUI
        if not (sys.stdin.isatty() and sys.__stderr__.isatty()) and not os.environ.get("TEXTUAL_DRIVER"):
            # in a script or a CI job the TUI waited for keys that never came (Textual draws on stderr, so
            # `vitlab > log` still works; textual serve sets a driver)
            raise VitlabError("the TUI needs a terminal (standard input or error is not one); headless, use "
                              "`vitlab run PRESET` (vitlab --help lists the commands)")
        from .tui.app import run_tui

        return run_tui(args.preset, args.runs_dir)
    except VitlabError as e:
        print(f"vitlab: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if os.environ.get(LAUNCHED):  # a rank stopped while starting: its launcher tells the user
            return EXIT_OK
        print("vitlab: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:  # `vitlab compare ... | head`
        _drop_stdout()
        return EXIT_OK
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG):
            raise
        _drop_stdout()
        print(f"vitlab: {e.filename or 'standard output'}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILED


def _drop_stdout() -> None:
    """Whatever is still buffered for a closed or full stdout would fail again, as a traceback, at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
