"""The run store: one directory per run, written as the run goes so nothing measured is lost.

RUNS_DIR/<experiment>/<timestamp>-<run>/
  config.yaml     the fully resolved run config (atomic write)
  metrics.jsonl   one JSON line per event, appended and flushed as it happens
  summary.json    status and figures (atomic; rewritten at the end, `running` before)
  checkpoint.pt   last epoch-boundary checkpoint (atomic)
  heartbeat       touched while the run is alive
  .lock           held (flock) by the process training the run
  run.log         details (tracebacks) behind the one-line messages a user sees
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..config import check_name, checkpointed
from ..errors import StoreError, VitlabError
from ..files import write_whole
from .events import Event, RunEnded

HEARTBEAT_STALE_S = 120.0
HEARTBEAT_EVERY_S = 30.0  # besides every event: set-up, compilation and long evals emit none


def _disk_error(path: Path, e: OSError, kept: bool = False) -> StoreError:
    """`kept`: the file's previous version is still there whole (an atomic write), and the message says so."""
    if e.errno == errno.ENOSPC:
        return StoreError(f"{path}: the disk is full; free space or set --runs-dir to another disk."
                          + (f" Its previous {path.name} is intact." if kept else ""))
    if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return StoreError(f"{path}: cannot write here ({e.strerror}); choose a writable --runs-dir")
    return StoreError(f"{path}: cannot write ({e.strerror or e})")


def atomic_write(path: Path, data: bytes) -> None:
    """files.write_whole, its failure said for a run directory."""
    try:
        write_whole(path, data)
    except OSError as e:
        raise _disk_error(path, e, kept=path.exists()) from None


def safe_child(root: Path, *names: str) -> Path:
    """root/names..., refusing names that would escape root (../, absolute paths, separators)."""
    for name in names:
        try:
            check_name(name)
        except ValueError as e:
            raise StoreError(str(e)) from None
    path = root.joinpath(*names)
    if not path.resolve().is_relative_to(root.resolve()):
        raise StoreError(f"{'/'.join(names)!r} would escape the runs directory {root}")
    return path


STAMP = "%Y%m%d-%H%M%S"  # a run directory's name starts with the time its run started


def started_from_name(run_dir: Path) -> str | None:
    """The start time a run directory's name records, as ISO text (runs whose summary never got written)."""
    try:
        return dt.datetime.strptime(run_dir.name[:15], STAMP).isoformat()
    except ValueError:
        return None


class RunStore:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self._metrics = None
        self._ended = threading.Event()
        self._beat = threading.Lock()  # the heartbeat thread's last beat must not follow the end's removal
        self._lock: int | None = None  # the .lock file's descriptor while this process trains the run

    @classmethod
    def create(cls, runs_dir: Path, experiment: str, run: str) -> "RunStore":
        stamp = dt.datetime.now().strftime(STAMP)
        base = safe_child(Path(runs_dir), experiment)
        path = safe_child(base, f"{stamp}-{run}")
        n = 1
        while path.exists():  # two runs of the same name within a second
            n += 1
            path = safe_child(base, f"{stamp}-{run}-{n}")
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise _disk_error(path, e) from None
        store = cls(path)
        store.claim()
        return store

    def claim(self) -> None:
        """Hold the run's lock while this process trains it. Two resumes started together (two terminals, the
        TUI's r and `vitlab resume`) both passed the heartbeat check before either beat, and both trained the run
        into one directory. The system lets go of the lock when the process ends, however it ends."""
        try:
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return  # an unwritable directory: the run's first write says so
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise VitlabError(f"{self.dir}: another process is training this run right now; let it finish or stop "
                              "it (Ctrl-C where it runs, ctrl+x in the vitlab that started it)") from None
        except OSError:  # a file system without locks: the heartbeat check alone
            os.close(fd)
            return
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor lets go of its flock
            self._lock = None

    # -- writing ----------------------------------------------------------------------------------
    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write(self.dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False).encode())

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(self.dir / "summary.json", json.dumps(summary, indent=2).encode())

    def append_metrics(self, record: dict[str, Any]) -> None:
        try:
            if self._metrics is None:
                self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
        except OSError as e:
            raise _disk_error(self.dir / "metrics.jsonl", e) from None

    def keep_alive(self) -> None:
        """Touch the heartbeat from a daemon thread until the run ends, so a quiet live run never looks dead."""
        self.heartbeat()

        def beat() -> None:
            while not self._ended.wait(HEARTBEAT_EVERY_S):
                self.heartbeat()

        threading.Thread(target=beat, name="vitlab-heartbeat", daemon=True).start()

    def heartbeat(self) -> None:
        """Written whole (a temporary file, then a rename): a process killed while writing it must not leave an
        empty, fresh heartbeat behind, which nobody could prove dead."""
        tmp = self.dir / ".heartbeat.tmp"
        with self._beat:
            if self._ended.is_set():  # a beat that woke as the run ended: it would say a finished run still trains
                return
            try:
                tmp.write_text(f"{os.getpid()} {time.time():.0f} {socket.gethostname()}\n")
                os.replace(tmp, self.dir / "heartbeat")
            except OSError:
                pass  # a missed heartbeat only makes a live run look stale; never fail training for it

    def log(self, text: str) -> None:
        try:
            with open(self.dir / "run.log", "a", encoding="utf-8") as f:
                f.write(f"[{dt.datetime.now().isoformat(timespec='seconds')}] {text.rstrip()}\n")
        except OSError:
            pass

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import io

        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self.dir / "checkpoint.pt", buf.getvalue())

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def record(self, event: Event) -> None:
        """The store as an event consumer: every event a line of metrics.jsonl, the summary at the end."""
        record = event.to_dict()
        record["time"] = time.time()
        if not isinstance(event, RunEnded):
            self.append_metrics(record)
            self.heartbeat()
            return
        record.pop("summary")  # summary.json holds it
        try:
            self.append_metrics(record)
            self.write_summary(event.summary)
        finally:  # a full disk too: a heartbeat beating on after the end showed the run `running` while its
            with self._beat:  # process lived on (the rest of a queue, the TUI); without it, `interrupted`
                self._ended.set()
                (self.dir / "heartbeat").unlink(missing_ok=True)
            self.close()
            self.release()


class NullStore(RunStore):
    """What ranks other than 0 of a distributed run hold: they read checkpoints (resume) but write nothing."""

    def __init__(self, run_dir: Path | None = None):
        super().__init__(Path(run_dir) if run_dir else Path(os.devnull))

    def write_config(self, resolved): pass
    def write_summary(self, summary): pass
    def append_metrics(self, record): pass
    def heartbeat(self): pass
    def keep_alive(self): pass
    def claim(self): pass
    def log(self, text): pass
    def save_checkpoint(self, state): pass
    def record(self, event): pass


# -- reading ----------------------------------------------------------------------------------------

def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete line of metrics.jsonl; a torn last line (killed writer) is skipped."""
    records = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return records
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        # a line edited or written by something else: only records whose figures are numbers are read
        if isinstance(record, dict) and all(_is_number(record[k]) for k in METRIC_NUMBERS if k in record):
            records.append(record)
    return records


METRIC_NUMBERS = ("epoch", "step", "loss", "accuracy", "eval_loss", "train_loss", "elapsed_s", "mean_images_per_s")
SUMMARY_TEXT = ("name", "experiment", "status", "model", "precision", "device", "error", "failure", "memory_kind",
                "started_at", "run_dir")
SUMMARY_NUMBERS = ("params", "trainable_params", "flops", "batch_size", "accumulation_steps", "world_size",
                   "effective_batch", "epochs", "epochs_planned", "train_time_s", "throughput_img_s", "mfu",
                   "peak_memory_mb", "accuracy", "best_accuracy", "eval_loss", "train_loss", "skipped_steps")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rounded(value: Any, digits: int) -> Any:
    return round(value, digits) if _is_number(value) else value


def _readable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json edited by hand or by another tool: a field of the wrong type is read as missing (None), a
    name as text, so one damaged run cannot end `vitlab compare` or the Results view in a traceback."""
    for key in SUMMARY_NUMBERS:
        if key in summary and summary[key] is not None and not _is_number(summary[key]):
            summary[key] = None
    for key in SUMMARY_TEXT:
        if key in summary and summary[key] is not None and not isinstance(summary[key], str):
            summary[key] = str(summary[key])
    if not isinstance(summary.get("config"), dict):
        summary["config"] = {}
    return summary


def _fresh_heartbeat(run_dir: Path) -> tuple[str, str] | None:
    """(pid, host) of a heartbeat younger than HEARTBEAT_STALE_S, or None."""
    try:
        path = run_dir / "heartbeat"
        if time.time() - path.stat().st_mtime >= HEARTBEAT_STALE_S:
            return None
        pid, _, host = (path.read_text().split() + ["", "", ""])[:3]
    except OSError:
        return None
    return pid, host


def heartbeat_alive(run_dir: Path) -> bool:
    """A fresh heartbeat, unless it names a process of this machine that is gone (killed, OOM-killed): then the
    run is known dead at once instead of after HEARTBEAT_STALE_S. Another machine's (a shared disk) is trusted."""
    if (beat := _fresh_heartbeat(run_dir)) is None:
        return False
    pid, host = beat
    if not (pid.isdigit() and host):  # torn (an older vitlab wrote it in place): it vouches for nothing
        return False
    if host == socket.gethostname():
        import psutil

        return psutil.pid_exists(int(pid))
    return True


def training_process(run_dir: Path) -> int | None:
    """The pid of the vitlab process of this machine training the run (its heartbeat names it), or None: so a
    new TUI can stop a run an earlier one left training."""
    beat = _fresh_heartbeat(run_dir)
    if beat is None or beat[1] != socket.gethostname() or not beat[0].isdigit():
        return None
    import psutil

    try:  # a recycled pid would be another program: only a vitlab (or torchrun'd vitlab) process qualifies
        return int(beat[0]) if "vitlab" in " ".join(psutil.Process(int(beat[0])).cmdline()) else None
    except (psutil.Error, OSError):
        return None


def summary_from_metrics(run_dir: Path) -> dict[str, Any]:
    """A summary for a run that wrote none (still running, or killed): built from config and metrics."""
    from ..config import RunConfig, run_label

    config: dict[str, Any] = {}
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        pass
    config = config if isinstance(config, dict) else {}
    metrics = read_metrics(run_dir / "metrics.jsonl")
    evals = [m for m in metrics if m.get("event") == "EpochEvaluated" and "accuracy" in m and "epoch" in m]
    steps = [m for m in metrics if m.get("event") == "StepsLogged" and isinstance(m.get("memory"), dict)]
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    label = "?"
    try:
        label = run_label(RunConfig.from_resolved(config))
    except Exception:  # a config.yaml another version or tool wrote, any shape: the table says "?", never fails
        pass
    return _readable({
        "name": config.get("name", run_dir.name),
        "experiment": run_dir.parent.name,
        "status": "running" if heartbeat_alive(run_dir) else "interrupted",
        "model": label,
        "params": None, "flops": None,
        "precision": train.get("precision"),
        "batch_size": train.get("batch_size"),
        "accumulation_steps": train.get("accumulation_steps"),
        "effective_batch": (train.get("batch_size") or 0) * (train.get("accumulation_steps") or 0) or None,
        "epochs": evals[-1]["epoch"] if evals else 0,
        "epochs_planned": train.get("epochs"),
        "train_time_s": _rounded(steps[-1].get("elapsed_s"), 3) if steps else None,  # as a summary has them
        "throughput_img_s": _rounded(steps[-1].get("mean_images_per_s"), 2) if steps else None,
        "peak_memory_mb": max((p for s in steps if _is_number(p := s["memory"].get("peak_mb"))), default=None),
        "memory_kind": steps[-1]["memory"].get("device") if steps else None,
        "accuracy": evals[-1]["accuracy"] if evals else None,
        "best_accuracy": max((e["accuracy"] for e in evals), default=None),
        "eval_loss": evals[-1].get("eval_loss") if evals else None,
        "train_loss": evals[-1].get("train_loss") if evals else None,
        "run_dir": str(run_dir),
        "started_at": started_from_name(run_dir),
        "error": None,
        "config": config,
    })


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json, or one rebuilt from its metrics; a live `running` summary is refreshed too."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return summary_from_metrics(run_dir)
    if not isinstance(summary, dict):
        return summary_from_metrics(run_dir)
    if not summary.get("name") or not summary.get("status"):  # `{}`, or another tool's: what the directory says
        summary = {**summary_from_metrics(run_dir), **{k: v for k, v in summary.items() if v is not None}}
    summary = _readable(summary)
    if summary.get("status") == "running":
        live = summary_from_metrics(run_dir)
        summary.update({k: v for k, v in live.items() if v is not None and k not in ("params", "flops", "model")})
    summary["run_dir"] = str(run_dir)
    summary["started_at"] = summary.get("started_at") or started_from_name(run_dir)
    return summary


def nothing_to_resume_from(summary: dict[str, Any]) -> str | None:
    """Why a run that trained epochs cannot resume: no checkpoint.pt (train.checkpoint off, or deleted). Resumed, it
    started again from epoch 1 in place and overwrote the epochs it had. None when it can, or has nothing to lose."""
    run_dir = summary.get("run_dir")
    if not run_dir or not (summary.get("epochs") or 0) or (Path(run_dir) / "checkpoint.pt").is_file():
        return None
    off = not checkpointed(summary.get("config"))
    return (f"{run_dir} has no checkpoint.pt to resume from ({'train.checkpoint was off' if off else 'it is gone'}), "
            f"and resuming would train it again from epoch 1 over its {summary['epochs']} recorded epoch(s)")


def drop_metrics_after_checkpoint(run_dir: Path) -> None:
    """Metrics logged after the last checkpoint will be logged again by the resumed run: keep one copy. The
    checkpoint's own epoch line, lost when the run was killed between writing the two, comes back from it."""
    ckpt = run_dir / "checkpoint.pt"
    done, evaluated = 0, None
    if ckpt.exists():
        try:
            import torch

            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            done, evaluated = state["epoch"], state.get("evaluated")  # no "evaluated" before 2026-11-27
        except Exception as e:  # truncated (a full disk, a copy cut short), or not vitlab's: torch's errors vary
            raise VitlabError(f"{ckpt}: not a readable checkpoint ({type(e).__name__}), so the run cannot resume "
                              f"from it; train it afresh (move the directory away)") from None
    kept = [r for r in read_metrics(run_dir / "metrics.jsonl")
            if not (r.get("event") in ("StepsLogged", "EpochEvaluated") and r["epoch"] > done)]
    if evaluated and evaluated.get("epoch") == done and not any(
            r.get("event") == "EpochEvaluated" and r["epoch"] == done for r in kept):
        at = len(kept)
        while at and kept[at - 1].get("event") in ("RunCancelled", "RunFailed", "RunFinished"):
            at -= 1  # before the end a second Ctrl-C wrote after it: the lines in the order they happened
        kept.insert(at, evaluated)
    atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept).encode())


def resume_command(run_dir: Path | str, nproc: int = 1) -> str:
    """The command that resumes the run on as many processes as it trained on, its path quoted as one word."""
    return f"vitlab resume {shlex.quote(str(run_dir))}" + (f" --nproc {nproc}" if nproc > 1 else "")


def way_back(run_dir: Path, summary: dict[str, Any], nproc: int = 1, ways: tuple[str, ...] = ()) -> str:
    """How to go on with a run that stopped before its end (`ways`: others than the resume command, first)."""
    if lost := nothing_to_resume_from(summary):
        return f"{lost}; train it afresh (vitlab run PRESET makes a new directory and keeps this one)."
    start = ("the checkpoint of its last finished epoch" if (Path(run_dir) / "checkpoint.pt").is_file() else
             "its first epoch: it had no checkpoint yet")
    return f"Resume it with {' or '.join([*ways, f'`{resume_command(run_dir, nproc)}`'])} (from {start})."


def mark_failed(run_dir: Path, why: str, failure: str, nproc: int = 1, ways: tuple[str, ...] = ()) -> dict[str, Any]:
    """A run whose training process died before it wrote its end: failed on disk, as `failure`, with the way back
    where its checkpoint makes one (`ways`: others than the command, first). A run that had ended keeps its summary;
    returned either way. A summary that cannot be written (a full disk) is still returned, for the screen."""
    summary = read_run(run_dir)
    if summary.get("status") in ("running", "interrupted"):
        summary.update(status="failed", failure=failure,
                       error=f"{why}; the run was stopped. {way_back(run_dir, summary, nproc, ways)}")
        try:
            RunStore(run_dir).write_summary(summary)
        except StoreError:
            pass
    return summary


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").exists() or (path / "summary.json").exists()


def find_runs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Summaries of every run dir given or below the paths given, newest first."""
    seen: set[Path] = set()
    runs = []
    for root in map(Path, paths):
        # either file makes a run directory, as is_run_dir says (one without its config.yaml went unlisted)
        candidates = [root] if is_run_dir(root) else sorted({p.parent for name in ("config.yaml", "summary.json")
                                                             for p in root.rglob(name)})
        for run_dir in candidates:
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            runs.append(read_run(run_dir))
    runs.sort(key=_start_order, reverse=True)
    return runs


def _start_order(summary: dict[str, Any]) -> tuple[list[str], int]:
    """The directory's start stamp (to the second), then, for runs started within one second (the seeds of a
    short run), when its config.yaml was written: the queue's order, which the paths' names are not."""
    run_dir = Path(summary["run_dir"])
    try:
        written = (run_dir / "config.yaml").stat().st_mtime_ns
    except OSError:
        written = 0
    return run_dir.name.split("-", 2)[:2], written
