"""DDP through torchrun on the CPU (gloo, two processes): same result as one process at the same effective
batch, one gradient all-reduce per optimizer step, and a killed worker fails the run instead of hanging."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine.runner import train_run

pytestmark = pytest.mark.slow

MODEL = {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1}
DATA = {"dataset": "synthetic", "image_size": 8, "limit_train": 193, "limit_val": 64}  # 193 = 3 x 64 + 1: a last
# window of one sample, which leaves rank 1 idle (its placeholder sample weighs 0)
TRAIN = {"optimizer": "sgd", "lr": 0.05, "seed": 1, "log_every": 2}


def preset(tmp_path, epochs, **train):
    path = tmp_path / "ddp.yaml"
    path.write_text(textwrap.dedent(f"""
        name: ddp
        runs:
          - name: v
            model: {json.dumps(MODEL)}
            data: {json.dumps(DATA)}
            train: {json.dumps({**TRAIN, "epochs": epochs, **train})}
    """))
    return path


def vitlab_run(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "vitlab", "run", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_two_processes_equal_one_at_the_same_effective_batch(tmp_path):
    temp = tmp_path / "tmp"  # torchrun left a torchelastic_* folder in it after every launch
    temp.mkdir()
    proc = vitlab_run(preset(tmp_path, 2, batch_size=16, accumulation_steps=2), "--nproc", 2, "--json",
                      "--runs-dir", tmp_path / "runs", env={**os.environ, "TMPDIR": str(temp)})
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert not [p.name for p in temp.iterdir() if p.name.startswith(("torchelastic_", "vitlab-torchrun-"))]
    ddp = json.loads(out)["runs"][0]
    assert ddp["status"] == "finished" and ddp["world_size"] == 2 and ddp["effective_batch"] == 64
    assert ddp["allreduces_per_step"] == 1.0  # no_sync on every micro-step but the window's last
    assert ddp["device"] == "cpu (1 thread) x 2 processes"  # torchrun's OMP_NUM_THREADS=1 for each
    single = train_run(RunConfig.model_validate({"name": "v", "model": MODEL, "data": DATA, "train": {
        **TRAIN, "epochs": 2, "batch_size": 64, "accumulation_steps": 1}}), experiment="one", runs_dir=tmp_path)
    assert ddp["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-5)
    a = torch.load(Path(ddp["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(Path(single["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_killed_worker_fails_the_run_without_hanging(tmp_path):
    proc = vitlab_run(preset(tmp_path, 500, batch_size=16), "--nproc", 2, "--runs-dir", tmp_path / "runs",
                      start_new_session=True)
    deadline = time.time() + 120
    run_dir = None
    while time.time() < deadline and run_dir is None:
        for metrics in (tmp_path / "runs").glob("ddp/*/metrics.jsonl"):
            if '"EpochEvaluated"' in metrics.read_text():
                run_dir = metrics.parent
        time.sleep(0.05)
    assert run_dir is not None, "the distributed run never finished an epoch"
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if p.environ().get("RANK") == "1" and "vitlab" in " ".join(p.cmdline())]
    assert workers, "no rank-1 worker found"
    workers[0].send_signal(signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the run hung after a worker was killed")
    assert proc.returncode == 1
    assert f"torchrun: rank 1 (pid {workers[0].pid}) was killed by SIGKILL" in err  # a line, not torchrun's traceback
    assert "ChildFailedError" not in err and "OMP_NUM_THREADS" not in err  # nor its warning about threads
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"] == "distributed"  # was "error", gloo's own words
    # rank 0 heard gloo lose its peer, or torchrun stopped it first (a race) and the launcher wrote the summary
    assert summary["error"].startswith(("lost contact with another training process", "a training process died"))
    assert "Traceback" not in summary["error"] and "pair.cc" not in summary["error"]  # gloo's source line, no use
    assert f"`vitlab resume {run_dir} --nproc 2`" in summary["error"]  # either way, the way back
    assert "Sending process" not in err and "exitcode: -9" not in err  # torchrun's log lines say what ours do
    assert err.rstrip().endswith(f"To go on where it stopped: vitlab run {tmp_path / 'ddp.yaml'} --runs-dir "
                                 f"{tmp_path / 'runs'} --nproc 2 --continue")


def test_runs_left_running_by_a_dead_process_are_failed_as_distributed_with_the_way_back(tmp_path):
    """The launcher's side of the race above, made certain: torchrun stopped rank 0 before it wrote a summary."""
    from vitlab.commands.launch import mark_orphans
    from vitlab.engine.store import resume_command

    def run_dir(name, status, checkpoint):
        d = tmp_path / "ddp" / name
        d.mkdir(parents=True)
        config = {"name": "v", "train": {"checkpoint": checkpoint}}
        (d / "config.yaml").write_text(json.dumps(config))  # YAML reads JSON
        (d / "summary.json").write_text(json.dumps({"name": "v", "status": status, "epochs": 1, "config": config}))
        (d / "metrics.jsonl").write_text(json.dumps({"event": "EpochEvaluated", "epoch": 1, "accuracy": 0.5}) + "\n")
        if checkpoint:
            (d / "checkpoint.pt").write_bytes(b"")
        return d

    kept, lost, done = run_dir("a", "running", True), run_dir("b", "running", False), run_dir("c", "finished", True)
    mark_orphans(tmp_path, "ddp", since=0, returncode=1, nproc=2)
    a, b, c = (json.loads((d / "summary.json").read_text()) for d in (kept, lost, done))
    assert a["status"] == b["status"] == "failed" and a["failure"] == b["failure"] == "distributed"
    assert a["error"].startswith("a training process died (torchrun exit code 1); the run was stopped.")
    assert f"Resume it with `{resume_command(kept, 2)}` (from the checkpoint of its last finished epoch)." in a["error"]
    assert "no checkpoint.pt to resume from (train.checkpoint was off)" in b["error"]
    assert "train it afresh" in b["error"]
    assert c["status"] == "finished" and "failure" not in c


def test_hang_up_trains_on_ctrl_c_cancels_every_rank_and_resume_takes_the_same_number_of_processes(tmp_path):
    # the launcher alone in its process group, as in a terminal: torchrun and its ranks have sessions of their own
    proc = vitlab_run(preset(tmp_path, 500, batch_size=16), "--nproc", 2, "--runs-dir", tmp_path / "runs",
                      start_new_session=True)
    run_dir = wait_for_an_epoch(tmp_path)
    # an SSH drop: the launcher got SIGHUP and died, its ranks wrote to a closed terminal and failed
    os.killpg(proc.pid, signal.SIGHUP)
    wait_for_an_epoch(tmp_path, 2)
    ranks = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK")]
    assert len(ranks) == 2
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("Ctrl-C did not end the distributed run")
    assert proc.returncode == 130 and "Traceback" not in err, err  # torchrun's own handling printed one
    assert not [r for r in ranks if r.is_running()]  # none left waiting on a rendezvous store
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "cancelled" and summary["world_size"] == 2
    one = subprocess.run([sys.executable, "-m", "vitlab", "resume", str(run_dir)], capture_output=True, text=True,
                         timeout=120)
    assert one.returncode == 2 and "trained on 2 processes" in one.stderr and "--nproc 2" in one.stderr
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("epochs: 500", "epochs: 2"))
    two = subprocess.run([sys.executable, "-m", "vitlab", "resume", str(run_dir), "--nproc", "2", "--json"],
                         capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr
    resumed = json.loads(two.stdout)["runs"][0]
    assert resumed["status"] == "finished" and resumed["world_size"] == 2 and resumed["effective_batch"] == 32


def wait_for_an_epoch(tmp_path, epochs: int = 1):
    deadline = time.time() + 120
    while time.time() < deadline:
        for metrics in (tmp_path / "runs").glob("ddp/*/metrics.jsonl"):
            if metrics.read_text().count('"EpochEvaluated"') >= epochs:
                return metrics.parent
        time.sleep(0.05)
    raise AssertionError(f"the distributed run never finished {epochs} epoch(s)")


def test_a_cancel_heard_after_an_epoch_is_decided_by_every_rank_together(tmp_path, monkeypatch):
    """Only rank 0 hears the TUI's cancel. One heard after an epoch's last log point, at the end of its
    evaluation, used to end rank 0 alone while rank 1 went on into the next epoch: gloo aborted both on a
    collective mismatch. Rank 0 is played here by a Dist that records what it asks every rank."""
    from fakedist import play_rank0

    from vitlab.engine.events import EpochEvaluated

    asked = []
    play_rank0(monkeypatch, agree=lambda flag: asked.append(flag) or flag)
    evaluated = []
    cfg = RunConfig.model_validate({"name": "v", "model": MODEL, "data": DATA,
                                    "train": {**TRAIN, "epochs": 3, "batch_size": 16, "log_every": 100}})
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path,
                        emit=lambda e: evaluated.append(e) if isinstance(e, EpochEvaluated) else None,
                        should_stop=lambda: bool(evaluated))
    assert summary["status"] == "cancelled" and summary["epochs"] == 1
    assert asked[-1] is True  # the cancel went to every rank
    # and right after the evaluation: 7 steps are epoch 1's (ceil(193 / 32): windows of 16 x 2 ranks). Not agreed
    # there, the cancel is heard at epoch 2's only log point, its last step (log_every 100): 14 steps
    assert summary["steps"] == 7


def agree(rank: int, store: str) -> None:
    """One rank of test_max_and_any_agree_across_real_ranks (a module-level function: spawn pickles it by name)."""
    import datetime as dt

    import torch.distributed as td

    from vitlab.engine.distributed import Dist

    td.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2,
                          timeout=dt.timedelta(seconds=60))
    try:
        d, cpu = Dist(rank, 2), torch.device("cpu")
        assert d.max_([[1.5, 9.0][rank], [7.0, -2.0][rank]], cpu) == [9.0, 7.0]  # each value's own largest
        assert d.any(rank == 1, cpu) is True and d.any(rank == 0, cpu) is True  # one rank's flag is every rank's
        assert d.any(False, cpu) is False
    finally:
        td.destroy_process_group()


def test_max_and_any_agree_across_real_ranks(tmp_path):
    # the runs above play rank 0 with a fake Dist (fakedist.py): here its all-reduces run on two gloo processes
    torch.multiprocessing.spawn(agree, args=(str(tmp_path / "store"),), nprocs=2)


def ranks_of(pid: int) -> list[psutil.Process]:
    """The training processes under a launcher, while they run."""
    ranks = []
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):  # one that just exited
                if p.environ().get("RANK"):
                    ranks.append(p)
    return ranks


def test_a_queue_of_several_processes_continues_where_it_stopped(tmp_path):
    """`--continue --nproc 2`: rank 0 plans and every rank takes its steps, so the finished run is kept, the
    stopped one resumes in place after a run trained afresh (its ranks reach it at different times), and the
    runs trained on one process are not mixed in."""
    path = tmp_path / "queue.yaml"
    path.write_text(textwrap.dedent(f"""
        name: ddp
        defaults: {{model: {json.dumps(MODEL)}, data: {json.dumps(DATA)}, train: {json.dumps({**TRAIN, "epochs": 1})}}}
        runs: [{{name: kept}}, {{name: new}}, {{name: stopped}}]
    """))
    runs_dir = tmp_path / "runs"
    first = vitlab_run(path, "--nproc", 2, "--run", "kept", "--run", "stopped", "--json", "--runs-dir", runs_dir)
    out = first.stdout.readline()
    ranks = [p.pid for p in ranks_of(first.pid)]  # ended a second or two later, and reaped by torchrun
    deadline = time.time() + 60
    while any(psutil.pid_exists(pid) for pid in ranks) and time.time() < deadline:  # the ranks gone, torchrun
        time.sleep(0.05)  # winding down: a Ctrl-C then stops nothing either
    first.send_signal(signal.SIGINT)  # it killed torchrun ("stopped at once"), or, torchrun gone, raised in Python
    out += first.stdout.read()
    err = first.stderr.read()
    assert first.wait(timeout=240) == 0 and "Traceback" not in err and "stopped at once" not in err, err
    kept, stopped = json.loads(out)["runs"]
    summary = Path(stopped["run_dir"]) / "summary.json"  # as a cancel right after its last checkpoint leaves it
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "cancelled"}))
    again = vitlab_run(path, "--nproc", 2, "--continue", "--json", "--runs-dir", runs_dir)
    first_line = again.stdout.readline()  # rank 0 prints the document once every run has ended
    again.send_signal(signal.SIGINT)  # a Ctrl-C then stops nothing: it was exit 130, a torchrun traceback and
    out = first_line + again.stdout.read()  # "stopped at once ... vitlab resume" over finished runs
    err = again.stderr.read()  # (communicate() would miss what readline() buffered)
    again.wait(timeout=240)
    assert again.returncode == 0 and "Traceback" not in err and "stopped at once" not in err, err
    runs = {r["name"]: r for r in json.loads(out)["runs"]}
    assert runs["kept"]["run_dir"] == kept["run_dir"] and runs["stopped"]["run_dir"] == stopped["run_dir"]
    assert runs["stopped"]["status"] == "finished" and runs["stopped"]["world_size"] == 2
    assert runs["new"]["status"] == "finished" and runs["new"]["world_size"] == 2
    assert "nothing earlier" not in err and "trains afresh" not in err
