"""`vitlab`: the TUI, and the headless commands (run, profile, presets, resume, ...).

Exit codes: 0 every run finished, 1 a run failed, 2 bad input, 130 cancelled with Ctrl-C.
Errors a user can act on are printed as one short message, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .commands import LAUNCHED, user_path
from .errors import VitlabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        commands = {m.NAME for m in _subcommands()}
        if argv and argv[0] in commands or argv[:1] in (["-h"], ["--help"]):
            args = build_parser().parse_args(argv)
            return args.handler(args)
        args = tui_parser().parse_args(argv)
        if args.preset is not None:
            from .presets import load_preset

            load_preset(args.preset)  # a bad preset is a one-line error here, not a broken TUI
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
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
