"""The CLI's Rich consoles: as wide as their tables when piped, and quiet, not dead, when the reader leaves."""
from __future__ import annotations

import os
from contextlib import suppress

from rich.console import Console


class CliConsole(Console):
    def on_broken_pipe(self) -> None:
        """The reader left (`vitlab run ... 2>&1 | head`): the output ends, the work goes on, as on a hang-up.
        Rich's own answer, SystemExit(1), killed a training mid-epoch and left its run `running` for good."""
        self.quiet = True
        with suppress(OSError, ValueError):  # what is still buffered for the pipe must not fail again at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)


def cli_console(stderr: bool = False) -> Console:
    console = CliConsole(stderr=stderr, highlight=False)
    if not console.is_terminal:  # piped or redirected: tables and sentences not wrapped at 80 columns
        console.width = 200
    return console
