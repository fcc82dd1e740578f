"""Runs end cleanly and keep what they measured: cancel, Ctrl-C, hang-up, kill + resume, OOM, NaN, bad paths, full disk."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from vitlab.config import ExperimentConfig, RunConfig
from vitlab.engine.events import RunCancelled, RunFailed, StepsLogged
from vitlab.engine.runner import resume_run, run_experiment, train_run
from vitlab.engine.store import RunStore, read_run
from vitlab.errors import StoreError, VitlabError

MODEL = {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1}


SMALL_DATA = {"dataset": "synthetic", "image_size": 8, "limit_train": 384, "limit_val": 64}


def config(name="r", **train):
    return RunConfig.model_validate({"name": name, "model": MODEL, "data": SMALL_DATA,
                                     "train": {"epochs": 3, "batch_size": 64, "log_every": 2, **train}})


def assert_kept(run_dir, status):
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == status
    assert (run_dir / "config.yaml").exists() and (run_dir / "checkpoint.pt").exists()
    assert (run_dir / "metrics.jsonl").read_text().strip()
    return summary


def test_cancel_mid_run_keeps_everything(tmp_path):
    events = []
    stop = lambda: sum(isinstance(e, StepsLogged) for e in events) >= 3
    summary = train_run(config(), experiment="c", runs_dir=tmp_path, emit=events.append, should_stop=stop)
    assert summary["status"] == "cancelled" and isinstance(events[-1], RunCancelled)
    assert_kept(summary["run_dir"], "cancelled")
    assert summary["steps"] >= 6 and summary["train_time_s"] > 0


def test_cancel_is_heard_between_the_micro_batches_of_a_window(tmp_path):
    """A long accumulation window (a CPU at 224 px: minutes) must not have to finish before a cancel lands."""
    asked = []
    stop = lambda: asked.append(1) or True
    summary = train_run(config(batch_size=16, accumulation_steps=4), experiment="c", runs_dir=tmp_path,
                        should_stop=stop)
    assert summary["status"] == "cancelled"
    assert summary["steps"] == 0 and len(asked) == 1  # heard after the first micro-batch; no update was taken
    # heard in the fourth window (asked 4 times a window; log_every 2 reported two): the third counts too
    asked.clear()
    stop = lambda: asked.append(1) or len(asked) > 4 * 3
    summary = train_run(config(batch_size=16, accumulation_steps=4, log_every=2), experiment="d", runs_dir=tmp_path,
                        should_stop=stop)
    assert summary["status"] == "cancelled" and summary["steps"] == 3


@pytest.mark.parametrize("fault, reason, advice", [("oom:3", "oom", "accumulation_steps"),
                                                   ("nan:3", "non-finite", "train.lr")])
def test_oom_and_nan_fail_cleanly_and_queue_goes_on(tmp_path, monkeypatch, fault, reason, advice):
    monkeypatch.setenv("VITLAB_INJECT_FAULT", fault)
    events = []
    exp = ExperimentConfig(name="f", runs=[config("first"), config("second")])
    first_done = []

    def emit(e):
        events.append(e)
        if isinstance(e, RunFailed):  # the fault applies to the first run only
            monkeypatch.delenv("VITLAB_INJECT_FAULT")
            first_done.append(e)

    summaries = run_experiment(exp, runs_dir=tmp_path, emit=emit)
    assert [s["status"] for s in summaries] == ["failed", "finished"]
    assert first_done[0].reason == reason and advice in first_done[0].error
    kept = assert_kept(summaries[0]["run_dir"], "failed")
    assert advice in kept["error"] and "Traceback" not in kept["error"] and kept["failure"] == reason
    if reason == "oom":
        assert "DefaultCPUAllocator: can't allocate memory" in (Path(summaries[0]["run_dir"]) / "run.log").read_text()
        assert "machine's memory" in kept["error"] and "bf16" not in kept["error"]  # CPU advice
    else:  # deterministic training would fail at the same step again: resume says so instead
        assert "fp16" not in kept["error"]  # an fp32 run is not told about fp16 overflows
        with pytest.raises(VitlabError, match="non-finite loss.*--set train.lr"):
            resume_run(summaries[0]["run_dir"])


def test_the_scheduler_warning_of_a_skipped_fp16_step_stays_out_of_the_output(tmp_path):
    """GradScaler skips an overflowing step, so the scheduler steps without an optimizer step: torch warns."""
    import warnings

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    with warnings.catch_warnings(record=True) as seen:
        train_run(config(epochs=1), experiment="w", runs_dir=tmp_path)  # a run sets its filters
        scheduler.step()  # what a skipped step looks like to torch
    assert not [w for w in seen if "lr_scheduler" in str(w.message)]


PRESET = """
name: sig
runs:
  - name: long
    model: {kind: vit, patch_size: 2, embed_dim: 32, heads: 2, layers: 1}
    train: {epochs: EPOCHS, batch_size: 64, log_every: 2, seed: 5, scheduler: cosine, warmup_epochs: 1}
  - name: after
    model: {kind: vit, patch_size: 2, embed_dim: 32, heads: 2, layers: 1}
    train: {epochs: 1, batch_size: 64}
"""


def start(tmp_path, epochs, *extra):
    preset = tmp_path / "sig.yaml"
    preset.write_text(textwrap.dedent(PRESET.replace("EPOCHS", str(epochs))))
    return subprocess.Popen([sys.executable, "-m", "vitlab", "run", str(preset), "--runs-dir", str(tmp_path / "runs"),
                             "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_epoch(tmp_path, epoch, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for metrics in (tmp_path / "runs").glob("sig/*/metrics.jsonl"):
            if f'"event": "EpochEvaluated", "run": "long", "experiment": "sig", "epoch": {epoch},' in metrics.read_text():
                return metrics.parent
        time.sleep(0.02)
    raise AssertionError("the run never reached the epoch")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # SIGTERM: a scheduler's stop (scancel)
def test_ctrl_c_cancels_with_summary(tmp_path, sig):
    proc = start(tmp_path, 200)
    run_dir = wait_for_epoch(tmp_path, 1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["runs"][0]["status"] == "cancelled" and doc["not_started"] == ["after"]
    assert_kept(run_dir, "cancelled")
    assert "Traceback" not in err
    assert f"vitlab resume {run_dir}\n" in err  # the command on one line, however long the path: to copy
    assert f"Not started: after. To go on where this stopped: vitlab run {tmp_path / 'sig.yaml'} --json " \
           f"--runs-dir {tmp_path / 'runs'} --continue\n" in err


def test_second_ctrl_c_exits_at_once_leaving_a_readable_run(tmp_path):
    proc = start(tmp_path, 200)
    run_dir = wait_for_epoch(tmp_path, 1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "To go on where this stopped: vitlab run" in err and "--continue" in err  # the way back
    doc = json.loads(out)  # and the report of what ended, at once
    assert [r["name"] for r in doc["runs"]] == ["long"] and doc["not_started"] == ["after"]
    summary = read_run(run_dir)
    assert summary["status"] in ("cancelled", "interrupted") and summary["epochs"] >= 1
    assert (run_dir / "checkpoint.pt").exists()


def test_hangup_keeps_training_to_the_end(tmp_path):
    proc = start(tmp_path, 4)
    run_dir = wait_for_epoch(tmp_path, 1)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert assert_kept(run_dir, "finished")["epochs"] == 4


def test_a_reader_that_leaves_ends_the_output_not_the_training(tmp_path):
    """`vitlab run ... 2>&1 | head -2`: Rich's answer to the closed pipe was SystemExit(1) at the next line of
    progress, mid-run, which left the run `running` for good."""
    proc = start(tmp_path, 2)
    proc.stderr.readline()  # the first run's first line
    proc.stderr.close()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert [read_run(d)["status"] for d in sorted((tmp_path / "runs" / "sig").iterdir())] == ["finished"] * 2


def test_sigkill_then_resume_matches_uninterrupted_run_bit_for_bit(tmp_path):
    proc = start(tmp_path, 12)  # ~2 s of epochs after the kill's cue: a slow test process still kills it mid-run
    run_dir = wait_for_epoch(tmp_path, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert read_run(run_dir)["status"] in ("interrupted", "running")  # no final summary was written
    out = subprocess.run([sys.executable, "-m", "vitlab", "resume", str(run_dir), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    resumed = json.loads(out.stdout)["runs"][0]
    assert resumed["status"] == "finished" and resumed["epochs"] == 12
    # cosine with warmup, as every shipped preset: a scheduler not restored (or not stepped) changes the weights
    reference = train_run(RunConfig.model_validate({"name": "long", "model": MODEL, "train": {
        "epochs": 12, "batch_size": 64, "log_every": 2, "seed": 5, "scheduler": "cosine", "warmup_epochs": 1}}),
        experiment="ref", runs_dir=tmp_path / "ref")
    assert resumed["eval_loss"] == reference["eval_loss"] and resumed["accuracy"] == reference["accuracy"]
    on_disk = read_run(run_dir)
    assert (on_disk["steps"], on_disk["skipped_steps"]) == (reference["steps"], reference["skipped_steps"])
    a = torch.load(Path(resumed["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(Path(reference["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    evals = [json.loads(l)["epoch"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()
             if '"EpochEvaluated"' in l]
    assert evals == list(range(1, 13))  # no epoch logged twice, nor lost


def test_an_epoch_checkpointed_but_not_yet_logged_gets_its_metrics_line_back_on_resume(tmp_path, monkeypatch):
    """Stopped (here a second Ctrl-C; a kill alike) after an epoch's checkpoint and before its metrics line: the
    resume starts after that epoch, so the line comes from the checkpoint, or the epoch is missing for good."""
    write = RunStore.write_summary

    def interrupted(store, summary):
        if summary["status"] == "running" and summary["epochs"] == 2:  # between the checkpoint and the line
            raise KeyboardInterrupt
        write(store, summary)

    monkeypatch.setattr(RunStore, "write_summary", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_run(config(), experiment="k", runs_dir=tmp_path)
    monkeypatch.setattr(RunStore, "write_summary", write)
    [run_dir] = (tmp_path / "k").iterdir()

    def logged() -> list[int]:
        return [r["epoch"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                if r["event"] == "EpochEvaluated"]

    assert logged() == [1] and torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2
    resumed = resume_run(run_dir)
    assert resumed["status"] == "finished" and logged() == [1, 2, 3]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    events = [(r["event"], r.get("epoch")) for r in map(json.loads, lines)]
    assert events.index(("EpochEvaluated", 2)) < events.index(("RunCancelled", None))  # in the order they happened
    assert read_run(run_dir)["accuracy"] == resumed["accuracy"]


def test_resume_reads_config_yaml_of_older_versions_and_names_a_bad_field(tmp_path):
    cfg = RunConfig.model_validate({"name": "m", "model": {**MODEL, "mlp_dim": 48}, "data": SMALL_DATA,
                                    "train": {"epochs": 2, "batch_size": 64}})
    run_dir = Path(train_run(cfg, experiment="e", runs_dir=tmp_path, should_stop=lambda: True)["run_dir"])
    assert read_run(run_dir)["status"] == "cancelled"
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["model"]["mlp_dim"] == 48 and "mlp_ratio" not in resolved["model"]  # the one that decides
    resolved["model"]["mlp_ratio"] = 4.0  # as vitlab wrote it before 2026-11-26
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved))
    assert resume_run(run_dir)["status"] == "finished"
    resolved["train"]["epochs"] = "many"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved))
    with pytest.raises(VitlabError) as e:
        resume_run(run_dir)
    assert str(e.value).startswith(f"{run_dir}/config.yaml: train.epochs: ") and "\n" not in str(e.value)


def test_a_fresh_heartbeat_of_a_dead_process_on_this_machine_is_interrupted_at_once(tmp_path):
    import socket

    store = RunStore.create(tmp_path, "e", "r")
    store.write_summary({"name": "r", "status": "running"})
    store.heartbeat()
    assert read_run(store.dir)["status"] == "running"  # this process: alive
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    beat = store.dir / "heartbeat"
    beat.write_text(f"{gone.pid} {time.time():.0f} {socket.gethostname()}\n")
    assert read_run(store.dir)["status"] == "interrupted"
    beat.write_text(f"{gone.pid} {time.time():.0f} another-host\n")  # a shared disk: trust the fresh beat
    assert read_run(store.dir)["status"] == "running"
    beat.write_text("")  # what a writer killed mid-write left when the heartbeat was written in place
    assert read_run(store.dir)["status"] == "interrupted"
    store.heartbeat()
    assert beat.read_text().split()[0] == str(os.getpid()) and not (store.dir / ".heartbeat.tmp").exists()


def test_names_cannot_escape_runs_dir(tmp_path):
    for experiment, run in (("../up", "r"), ("e", "../../x"), ("/abs", "r"), ("e", "a/b")):
        with pytest.raises(StoreError):
            RunStore.create(tmp_path, experiment, run)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_runs_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write"):
        train_run(config(), experiment="e", runs_dir=blocker / "runs")


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    store = RunStore.create(tmp_path, "e", "r")
    store.save_checkpoint({"epoch": 1})
    before = (store.dir / "checkpoint.pt").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match="disk is full"):
        store.save_checkpoint({"epoch": 2, "big": torch.zeros(1000)})
    assert (store.dir / "checkpoint.pt").read_bytes() == before
    assert not list(store.dir.glob(".*.tmp"))


def test_heartbeat_beats_between_events(tmp_path, monkeypatch):
    from vitlab.engine import store as store_module

    monkeypatch.setattr(store_module, "HEARTBEAT_EVERY_S", 0.05)
    store = RunStore.create(tmp_path, "e", "quiet")
    store.keep_alive()
    beat = store.dir / "heartbeat"
    first = beat.stat().st_mtime_ns
    deadline = time.time() + 5
    while beat.stat().st_mtime_ns == first and time.time() < deadline:
        time.sleep(0.02)
    assert beat.stat().st_mtime_ns != first  # touched again with no event in between
    assert read_run(store.dir)["status"] == "running"
    store.record(RunCancelled("quiet", "e", {"name": "quiet", "status": "cancelled"}))
    store.heartbeat()  # the beat thread woke as the run ended: it must not bring the heartbeat back
    time.sleep(0.2)
    assert not beat.exists()  # else a resume said "still training" for two minutes


def test_a_cancel_during_evaluation_keeps_the_trained_epoch_and_resume_evaluates_it(tmp_path):
    """An evaluation at 224 px on a CPU takes minutes: a cancel is heard in it, and the epoch it evaluated,
    already trained, is checkpointed, so the resumed run ends exactly where an uninterrupted one does."""
    calls = []
    steps_per_epoch = 6  # 384 samples / 64: should_stop is asked once per step, then once per eval batch
    stop = lambda: calls.append(1) or len(calls) > steps_per_epoch
    cancelled = train_run(config("e", seed=3), experiment="c", runs_dir=tmp_path, should_stop=stop)
    assert cancelled["status"] == "cancelled" and cancelled["epochs"] == 1 and cancelled["accuracy"] is None
    beat = Path(cancelled["run_dir"]) / "heartbeat"
    beat.write_text(f"{os.getpid()} {time.time():.0f} {socket.gethostname()}\n")  # as if a process trained it
    with pytest.raises(VitlabError, match="still training"):
        resume_run(cancelled["run_dir"])  # two processes must not write one run directory
    beat.unlink()
    time.sleep(1.1)  # a resume a second later keeps the run's own start time
    resumed = resume_run(cancelled["run_dir"])
    assert resumed["started_at"] == cancelled["started_at"]
    reference = train_run(config("e", seed=3), experiment="ref", runs_dir=tmp_path / "ref")
    assert resumed["status"] == "finished" and resumed["epochs"] == 3
    assert (resumed["accuracy"], resumed["eval_loss"], resumed["train_loss"]) == \
        (reference["accuracy"], reference["eval_loss"], reference["train_loss"])
    evals = [json.loads(line) for line in (Path(resumed["run_dir"]) / "metrics.jsonl").read_text().splitlines()
             if '"EpochEvaluated"' in line]
    assert [e["epoch"] for e in evals] == [1, 2, 3]  # epoch 1 evaluated once, by the resume


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")  # skipped steps
def test_an_fp16_run_resumes_with_its_loss_scale_and_its_count_of_skipped_steps(tmp_path, monkeypatch):
    from test_graphed import OverflowingScaler

    from vitlab.engine.events import EpochEvaluated

    # GradScaler at 2**22: the first steps overflow and are skipped, each halving the scale. A resume that started
    # again from 2**22 would skip more steps, and one that did not restore the count would report fewer
    monkeypatch.setattr(torch.amp, "GradScaler", OverflowingScaler)
    evaluated = []
    cancelled = train_run(config("h", epochs=2, precision="fp16"), experiment="c", runs_dir=tmp_path,
                          emit=lambda e: evaluated.append(e) if isinstance(e, EpochEvaluated) else None,
                          should_stop=lambda: bool(evaluated))
    assert cancelled["status"] == "cancelled" and cancelled["epochs"] == 1 and cancelled["skipped_steps"] > 0
    resumed = resume_run(cancelled["run_dir"])
    reference = train_run(config("h", epochs=2, precision="fp16"), experiment="ref", runs_dir=tmp_path / "ref")
    assert resumed["status"] == reference["status"] == "finished"
    assert resumed["skipped_steps"] == reference["skipped_steps"]
    assert (resumed["accuracy"], resumed["eval_loss"]) == (reference["accuracy"], reference["eval_loss"])
    a = torch.load(Path(resumed["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(Path(reference["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_a_path_that_is_no_run_says_so_in_a_line(tmp_path, capsys):
    from vitlab.cli import main as cli_main

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.yaml").write_text("a: [\n")
    (tmp_path / "empty").mkdir()
    for path in ("nowhere", "bad", "empty"):
        assert cli_main(["resume", str(tmp_path / path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"vitlab: {tmp_path / 'nowhere'}: no such run directory (vitlab compare RUNS_DIR lists the runs "
                   "and their directories)",
                   f"vitlab: {tmp_path / 'bad'}/config.yaml:2: not readable YAML (expected the node content, but "
                   "found '<stream end>')",
                   f"vitlab: {tmp_path / 'empty'}: not a vitlab run directory (its config.yaml: No such file or "
                   "directory)"]


def test_resume_refuses_a_torn_checkpoint_and_another_number_of_processes_in_a_line(tmp_path, capsys):
    from vitlab.cli import main as cli_main

    cfg = RunConfig.model_validate({"name": "m", "model": MODEL, "data": SMALL_DATA,
                                    "train": {"epochs": 2, "batch_size": 64}})
    run_dir = Path(train_run(cfg, experiment="e", runs_dir=tmp_path, should_stop=lambda: True)["run_dir"])
    ckpt = run_dir / "checkpoint.pt"
    blob = ckpt.read_bytes()
    ckpt.write_bytes(blob[:1000])  # a copy cut short: torch's own error was a traceback
    assert cli_main(["resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vitlab: {ckpt}: not a readable checkpoint (RuntimeError), so the run cannot resume from it; train it "
        "afresh (move the directory away)"]
    ckpt.write_bytes(blob)
    summary = read_run(run_dir)
    (run_dir / "summary.json").write_text(json.dumps({**summary, "world_size": 2, "effective_batch": 128}))
    assert cli_main(["resume", str(run_dir)]) == 2  # trained by `--nproc 2`: one process would halve its batch
    assert capsys.readouterr().err.splitlines() == [
        f"vitlab: {run_dir}: this run trained on 2 processes (effective batch 128); resuming it on 1 process would "
        f"change its effective batch: vitlab resume {run_dir} --nproc 2"]


def test_resume_where_the_data_is_not_says_so_and_keeps_the_run_s_record(tmp_path, monkeypatch, capsys):
    """A run trained on CIFAR under a relative data.root, resumed from another directory: refused in a line that
    says where it looked, its summary untouched (it was rewritten as failed after 0 epochs)."""
    from datagen import write_cifar

    from vitlab.cli import main as cli_main

    write_cifar(tmp_path / "project" / "data", "cifar10", n_train=64, n_test=32)
    monkeypatch.chdir(tmp_path / "project")
    cfg = RunConfig.model_validate({"name": "m", "model": MODEL, "data": {"dataset": "cifar10", "root": "data"},
                                    "train": {"epochs": 3, "batch_size": 32}})
    stops = iter([False] * 3 + [True] * 100)
    cancelled = train_run(cfg, experiment="e", runs_dir=Path("runs"), should_stop=lambda: next(stops))
    assert cancelled["status"] == "cancelled"
    run_dir = (tmp_path / "project" / cancelled["run_dir"]).resolve()
    before = (run_dir / "summary.json").read_text()
    monkeypatch.chdir(tmp_path)
    assert cli_main(["resume", str(run_dir)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"vitlab: {run_dir}: cannot resume: CIFAR-10 not found under data")
    assert line.endswith(f"(data.root data: relative to the directory vitlab runs in, {tmp_path}; resume from the "
                         "one the run was started in)")
    assert (run_dir / "summary.json").read_text() == before


def test_a_run_of_an_older_vitlab_resumes_decaying_every_parameter_as_it_trained(tmp_path):
    """Before 2026-11-27 every parameter was decayed (one optimizer group) and config.yaml had no
    train.weight_decay_on: read back, such a run resumes as it trained (two groups would not load its state)."""
    calls = []
    cancelled = train_run(config("old", weight_decay=0.05, weight_decay_on="all"), experiment="c", runs_dir=tmp_path,
                          should_stop=lambda: calls.append(1) or len(calls) > 8)
    assert cancelled["status"] == "cancelled" and cancelled["epochs"] >= 1
    run_dir = Path(cancelled["run_dir"])
    assert len(torch.load(run_dir / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]) == 1
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    del resolved["train"]["weight_decay_on"]  # as the older vitlab wrote it
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved))
    resumed = resume_run(run_dir)
    assert resumed["status"] == "finished" and resumed["config"]["train"]["weight_decay_on"] == "all"


def test_a_queue_cancelled_after_a_failed_run_exits_130_like_any_ctrl_c(capsys):
    from rich.console import Console

    from vitlab.commands.run import run_and_report

    runs = [{"name": "a", "status": "failed"}, {"name": "b", "status": "cancelled"}]
    code = run_and_report("q", lambda: runs, as_json=True, console=Console(stderr=True), planned=["a", "b", "c"])
    assert code == 130 and json.loads(capsys.readouterr().out)["not_started"] == ["c"]
    assert run_and_report("q", lambda: runs[:1], as_json=True, console=Console(stderr=True)) == 1


def test_a_ctrl_c_before_the_first_run_starts_none(tmp_path, capsys):
    """Ctrl-C while torch loaded made the first run's directory, cancelled at step 0 with a checkpoint and a
    "resume with" line."""
    from rich.console import Console

    from vitlab.commands.run import run_and_report

    exp = ExperimentConfig(name="q", runs=[config("a", epochs=1), config("b", epochs=1)])
    code = run_and_report("q", lambda: run_experiment(exp, runs_dir=tmp_path, should_stop=lambda: True),
                          as_json=True, console=Console(stderr=True), planned=["a", "b"],
                          again="vitlab run q --continue")
    out, err = capsys.readouterr()
    assert code == 130 and json.loads(out)["not_started"] == ["a", "b"] and not (tmp_path / "q").exists()
    assert "Not started: a, b. To go on where this stopped: vitlab run q --continue" in err


def test_a_full_disk_at_a_run_s_end_leaves_it_interrupted_not_running_and_a_resume_finishes_it(tmp_path,
                                                                                                   monkeypatch):
    """The summary could not be written: the heartbeat thread beat on while the process lived (the rest of a
    queue, the TUI), so the run read `running` and could not be resumed until the process ended."""
    write = RunStore.write_summary

    def full_at_the_end(store, summary):
        if summary["status"] != "running":
            raise StoreError(f"{store.dir / 'summary.json'}: the disk is full; free space ...")
        write(store, summary)

    with monkeypatch.context() as m:
        m.setattr(RunStore, "write_summary", full_at_the_end)
        ended = train_run(config(epochs=1), experiment="e", runs_dir=tmp_path)
    assert (ended["status"], ended["failure"]) == ("failed", "store") and "the disk is full" in ended["error"]
    run_dir = Path(ended["run_dir"])
    assert not (run_dir / "heartbeat").exists()
    assert read_run(run_dir)["status"] == "interrupted"
    again = resume_run(run_dir)  # space freed: the checkpoint of its last epoch, and the summary written
    assert again["status"] == "finished" and again["accuracy"] == ended["accuracy"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_a_full_disk_at_a_run_s_start_fails_that_run_and_a_resume_keeps_its_figures(tmp_path, monkeypatch):
    """config.yaml not written for a full disk raised out of the queue (exit 2, no table); a resume that failed so,
    before its checkpoint loaded, ended with 0 epochs and no accuracy over the ones it had."""
    done = train_run(config(epochs=1), experiment="e", runs_dir=tmp_path)
    run_dir = Path(done["run_dir"])
    (run_dir / "summary.json").write_text(json.dumps({**done, "status": "cancelled"}))

    def full_for(name: str):
        def fsync(fd):
            if os.readlink(f"/proc/self/fd/{fd}").endswith(f".{name}.tmp"):
                raise OSError(errno.ENOSPC, "No space left on device")
        return fsync

    monkeypatch.setattr(os, "fsync", full_for("config.yaml"))
    fresh = train_run(config(epochs=1), experiment="e", runs_dir=tmp_path)
    assert (fresh["status"], fresh["failure"]) == ("failed", "store") and "the disk is full" in fresh["error"]
    assert "intact" not in fresh["error"]  # there was no earlier config.yaml to keep
    with monkeypatch.context() as m:  # full before anything of the run changed: refused, one line
        m.setattr(os, "fsync", full_for("metrics.jsonl"))
        with pytest.raises(StoreError, match="the disk is full.* Its previous metrics.jsonl is intact"):
            resume_run(run_dir)
    again = resume_run(run_dir)
    assert (again["status"], again["failure"]) == ("failed", "store")
    assert again["epochs"] == 1 and again["accuracy"] == done["accuracy"] and "previous config.yaml is intact" in \
        again["error"]


def test_a_resumed_optimizer_steps_as_this_device_does_not_as_the_checkpoint_s(tmp_path):
    """Loading an optimizer's state replaces its groups' kernel choices: a checkpoint saved on the CPU (fused
    unset) left a resumed GPU run on the unfused path, a host sync per parameter every step."""
    from vitlab.engine.runner import Run

    done = train_run(config(epochs=1), experiment="e", runs_dir=tmp_path)
    ckpt = Path(done["run_dir"]) / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        group["foreach"] = True  # as another device chose it
    torch.save(state, ckpt)
    run = Run(config(epochs=2), RunStore(Path(done["run_dir"])), experiment="e", emit=lambda e: None,
              should_stop=lambda: False, index=0, total_runs=1, resume=True)
    run.setup()
    assert run.epoch == 1 and all(group["foreach"] is None for group in run.optimizer.param_groups)
