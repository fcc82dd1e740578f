"""The event stream between the TUI and its training process: every event type survives a JSON line."""
import inspect
import json
import math
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import yaml

from vitlab.commands.worker import Control, torchrun_command
from vitlab.engine import events, wire
from vitlab.engine.events import (EpochEvaluated, Memory, RunCancelled, RunFailed, RunFinished, RunKept, RunStarted,
                                  StepsLogged, WarningRaised)

SUMMARY = {"name": "v", "status": "finished", "accuracy": 0.9, "config": {"train": {"lr": 0.001}}, "mfu": None}
SAMPLES = [
    RunStarted("v", "e", "runs/e/x", 0, 2, {"model": {"kind": "vit"}}, "ViT p2", 10, 9, None, "cpu (2 threads)",
               3, 0, 10, 100, 20, 10, 64, True, "held-out val"),
    StepsLogged("v", "e", 1, 5, 30, 2.25, 1e-3, 900.5, 880.0, 1.5, 12.0, Memory("cuda", 1.0, 2.0, 3.0, None), 4),
    EpochEvaluated("v", "e", 1, 3, 2.0, 1.9, 0.5, 2.5, 2.0),
    WarningRaised("v", "e", "not-learning", "the loss has not moved"),
    RunFinished("v", "e", SUMMARY),
    RunFailed("v", "e", {**SUMMARY, "status": "failed"}, "Out of memory.", "oom"),
    RunCancelled("v", "e", {**SUMMARY, "status": "cancelled"}),
    RunKept("v", "e", SUMMARY),
    wire.RunNotStarted("v", "runs: cannot write here"),
]


def test_every_event_round_trips():
    emitted = {c for _, c in inspect.getmembers(events, inspect.isclass)
               if issubclass(c, events.Event) and c not in (events.Event, events.RunEnded)}
    assert emitted | {wire.RunNotStarted} == {type(m) for m in SAMPLES} == set(wire.MESSAGE_TYPES.values())
    for message in SAMPLES:
        line = wire.encode(message)
        assert "\n" not in line
        back = wire.decode(line)
        assert type(back) is type(message) and back == message
    assert isinstance(wire.decode(wire.encode(SAMPLES[1])).memory, Memory)


def test_nan_loss_and_junk_lines():
    nan = StepsLogged("v", "e", 1, 1, 2, float("nan"), 1e-3, 1.0, 1.0, 0.1, 0.1, Memory("cpu", 1, 1, 1, 8))
    assert math.isnan(wire.decode(wire.encode(nan)).loss)
    for junk in ("", "hello", "[1, 2]", '{"event": "Nope"}', '{"event": "RunFinished", "run": "v"}'):
        try:
            wire.decode(junk)
        except ValueError:
            continue
        raise AssertionError(f"decoded junk: {junk!r}")


def test_torchrun_command_line():
    args = Namespace(experiment_json=Path("q.json"), runs_dir=Path("runs"), nproc=4, resume_dir=None,
                     resume_earlier=False)
    cmd = torchrun_command(args)
    assert cmd == [sys.executable, "-m", "vitlab.commands.launch", "--standalone", "--nproc-per-node=4",
                   "-m", "vitlab", "worker", "--experiment-json", "q.json", "--runs-dir", "runs"]
    args.resume_earlier = True  # Continue with Processes 4: every rank takes the steps rank 0 planned
    assert torchrun_command(args)[-1] == "--continue"
    args.resume_dir = Path("runs/x/run")  # the TUI's r on a run of 4 processes: every rank resumes it
    assert torchrun_command(args)[-2:] == ["--resume-dir", "runs/x/run"]


def test_control_words_arrive_on_stdin():
    control = Control()
    read, write = os.pipe()
    os.write(write, b"noise\ncanc")
    os.write(write, b"el\n")
    os.close(write)
    control.listen(read)  # returns at EOF: the TUI is gone, training goes on
    assert control.cancel and not control.stop and control()
    os.close(read)
    read, write = os.pipe()
    os.write(write, b"stop\n")
    os.close(write)
    control.listen(read)
    os.close(read)
    assert control.stop


def test_a_cancel_naming_a_run_that_ended_cancels_nothing():
    """The TUI's dialog names the run it asked about; answered after that run ended, it must not cancel the next."""
    def heard(control, text):
        read, write = os.pipe()
        os.write(write, text)
        os.close(write)
        control.listen(read)
        os.close(read)
        return control.cancel

    assert heard(Control("r1"), b"cancel r1\n")  # also while torch loads: the first run is meant
    assert not heard(Control("r2"), b"cancel r1\n")
    between = Control("r1")
    between.current = None  # r1 ended, r2 not started
    assert not heard(between, b"cancel r1\n")


def test_worker_is_not_in_the_help():
    out = subprocess.run([sys.executable, "-m", "vitlab", "--help"], capture_output=True, text=True).stdout
    assert "worker" not in out and "run" in out


def test_worker_reports_missing_data_once_before_any_run(tmp_path):
    from vitlab.config import ExperimentConfig

    runs = [{"name": n, "model": {"kind": "resnet18"}, "data": {"dataset": "cifar10", "root": str(tmp_path)}}
            for n in ("a", "b")]
    path = tmp_path / "queue.json"
    path.write_text(ExperimentConfig.model_validate({"name": "q", "runs": runs}).model_dump_json())
    out = subprocess.run([sys.executable, "-m", "vitlab", "worker", "--experiment-json", str(path), "--runs-dir",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    [message] = [wire.decode(line) for line in out.stdout.splitlines()]
    assert isinstance(message, wire.RunNotStarted) and message.run == "a"
    assert "CIFAR-10 not found" in message.message and message.message.endswith("Needed by a, b.")
    assert not (tmp_path / "runs").exists()


def test_worker_refuses_to_resume_on_processes_once_before_torchrun(tmp_path):
    """The TUI's r on a run of two processes: a run that cannot resume is said once, before any rank starts."""
    from vitlab.config import ExperimentConfig, RunConfig

    cfg = RunConfig.model_validate({"name": "v", "model": {"kind": "resnet18"}, "data": {"dataset": "digits"}})
    run_dir = tmp_path / "runs" / "q" / "20250101-000000-v"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.resolved()))
    (run_dir / "summary.json").write_text(json.dumps({"name": "v", "status": "finished", "world_size": 2}))
    path = tmp_path / "queue.json"
    path.write_text(ExperimentConfig(name="q", runs=[cfg]).model_dump_json())
    out = subprocess.run([sys.executable, "-m", "vitlab", "worker", "--experiment-json", str(path), "--runs-dir",
                          str(tmp_path / "runs"), "--nproc", "2", "--resume-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    [message] = [wire.decode(line) for line in out.stdout.splitlines()]
    assert isinstance(message, wire.RunNotStarted) and message.run == "v"
    assert message.message == f"{run_dir}: this run already finished; nothing to resume"
    assert "torch.distributed.run" not in out.stderr
