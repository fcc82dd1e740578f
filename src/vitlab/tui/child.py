"""The TUI's side of the training process (`vitlab worker`, see commands/worker.py).

The child trains on its own main thread in its own session, so it neither slows the UI nor dies with it
(hang-up, or quitting with "leave it training"). Its experiment and its log (the child's stderr) are files
in RUNS_DIR/.tui/; its events come back as JSON lines on a pipe.
"""
from __future__ import annotations

import datetime as dt
import os
import selectors
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Callable, Iterator

from ..config import ExperimentConfig
from ..engine import wire
from ..engine.events import RunFailed, RunStarted

POLL_S = 0.25  # how often a silent stream checks whether the TUI wants to let go of it
BATCH_S = 0.25  # events gather this long between reads: one UI wake-up per batch leaves CPU to training


class TrainingChild:
    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.exp_path: Path | None = None  # the experiment it was given (None: a standby not taken yet)

    @classmethod
    def start(cls, exp: ExperimentConfig, runs_dir: Path, nproc: int = 1, resume_dir: Path | None = None,
              resume_earlier: bool = False) -> "TrainingChild":
        """Spawn `vitlab worker` for the experiment (or to resume the run in resume_dir, whose config `exp`
        holds; `resume_earlier`: as `vitlab run --continue`); OSError when the runs directory is not writable."""
        exp_path, log_path = experiment_files(exp, runs_dir)
        resume = ["--resume-dir", str(resume_dir)] if resume_dir else ["--continue"] if resume_earlier else []
        child = cls.spawn(["--experiment-json", str(exp_path), "--runs-dir", str(runs_dir), "--nproc", str(nproc),
                           *resume], log_path)
        child.exp_path = exp_path
        return child

    @classmethod
    def standby(cls, runs_dir: Path) -> "TrainingChild":
        """A worker that loads torch now and trains what `take` hands it later (OSError: runs dir not writable)."""
        log_path = tui_folder(runs_dir) / f"standby-{os.getpid()}.log"
        return cls.spawn(["--standby", "--runs-dir", str(runs_dir)], log_path)

    @classmethod
    def spawn(cls, args: list[str], log_path: Path) -> "TrainingChild":
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "vitlab", "worker", *args], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        return cls(proc, log_path)

    def take(self, exp: ExperimentConfig, runs_dir: Path, resume_earlier: bool = False) -> bool:
        """Hand a standby worker its experiment; False when it is gone (start a fresh one then)."""
        if self.proc.poll() is not None:
            return False
        self.exp_path, log_path = experiment_files(exp, runs_dir)
        flag = "\tcontinue" if resume_earlier else ""  # the worker's first line: see commands/worker.py
        try:
            self.proc.stdin.write(f"{self.exp_path}{flag}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            return False
        with suppress(OSError):
            self.log_path = self.log_path.rename(log_path)  # the open log follows its new name
        return True

    def dismiss(self) -> None:
        """End an unused standby worker (it has nothing to lose); its files go unless its log says something."""
        self.detach()
        self.proc.terminate()  # it may still be loading torch: EOF alone would keep it busy for seconds
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.forget()

    def forget(self) -> None:
        """Remove the files of a child that trained nothing (unused, or its queue refused before its first run):
        its log, and the experiment it was given, unless the log says something (then both stay, to read)."""
        with suppress(OSError):
            if not self.log_path.stat().st_size:
                self.log_path.unlink()
                if self.exp_path is not None:
                    self.exp_path.unlink()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def batches(self, let_go: Callable[[], bool]) -> Iterator[list[wire.WireMessage]]:
        """The messages as they arrive, a batch at most every BATCH_S, until the child closes its stream or
        `let_go()` turns true."""
        fd = self.proc.stdout.fileno()
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not let_go():
                if not selector.select(POLL_S):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                batch = []
                for line in lines:
                    try:
                        batch.append(wire.decode(line))
                    except ValueError:
                        continue  # not an event (cannot happen unless something else wrote to the pipe)
                if batch:
                    yield batch
                time.sleep(BATCH_S)

    def send(self, word: str) -> None:
        """`cancel` (the current run) or `stop` (the queue); a child that already ended needs neither."""
        try:
            self.proc.stdin.write(f"{word}\n".encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def detach(self) -> None:
        """Stop listening: the child keeps training and its stream ends at its next write."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def wait(self) -> int:
        code = self.proc.wait()
        self.detach()
        return code

    def ended_why(self, code: int) -> str:
        """One line on how the child ended; when it raised, its log's last line is the error."""
        if code < 0:
            try:
                how = f"was killed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed (signal {-code})"
        else:
            last = last_line(self.log_path)
            how = f"exited with code {code}" + (f": {last}" if last else "")
        return f"the training process {how} (log: {self.log_path})"


def tui_folder(runs_dir: Path) -> Path:
    """RUNS_DIR/.tui: the TUI's experiment files and training-process logs (OSError: not writable)."""
    folder = Path(runs_dir) / ".tui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def experiment_files(exp: ExperimentConfig, runs_dir: Path) -> tuple[Path, Path]:
    """RUNS_DIR/.tui/<time>-<experiment>.json (written) and the .log path beside it."""
    folder = tui_folder(runs_dir)
    stem = base = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{exp.name}"
    n = 1
    while (folder / f"{stem}.json").exists():  # two queues started within a second
        n += 1
        stem = f"{base}-{n}"
    exp_path = folder / f"{stem}.json"
    exp_path.write_text(exp.model_dump_json(indent=1), encoding="utf-8")
    return exp_path, folder / f"{stem}.log"


def last_line(path: Path, limit: int = 160) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def lost_run(started: RunStarted, why: str, nproc: int) -> RunFailed:
    """The run the child was training when it ended without a final event: failed, on screen and on disk (unless
    torchrun's launcher marked it already)."""
    from ..engine.store import mark_failed

    failure = "distributed" if nproc > 1 else "crash"
    summary = mark_failed(Path(started.run_dir), why, failure, nproc, ways=("r in Results",))
    return RunFailed(started.run, started.experiment, summary, summary.get("error") or why,
                     summary.get("failure") or failure)
