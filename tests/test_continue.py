"""`vitlab run --continue`: a queue stopped part-way keeps its finished runs, resumes the stopped one where it
stopped and trains the rest; a changed config trains afresh; a run still training blocks it."""
import os
import socket

import pytest

from vitlab.config import ExperimentConfig
from vitlab.engine.continuation import plan
from vitlab.engine.events import EpochEvaluated, RunKept, RunStarted, WarningRaised
from vitlab.engine.runner import run_experiment
from vitlab.errors import CannotStart
from vitlab.presets import reseed
from vitlab.report import seed_groups

MODEL = {"kind": "vit", "patch_size": 2, "embed_dim": 16, "heads": 2, "layers": 1}
DATA = {"dataset": "synthetic", "image_size": 8, "limit_train": 128, "limit_val": 32}


def experiment(epochs=(2, 2, 2)):
    return ExperimentConfig.model_validate({"name": "sweep", "runs": [
        {"name": f"r{i}", "model": MODEL, "data": DATA, "train": {"epochs": e, "batch_size": 32, "log_every": 1}}
        for i, e in enumerate(epochs)]})


def test_a_stopped_queue_continues_where_it_stopped(tmp_path):
    steps = []

    def stop_in_r1():  # Ctrl-C during r1's second epoch: r1 cancelled, r2 never starts
        return len(steps) > 6

    def record(event):
        if isinstance(event, RunStarted) and event.run == "r1":
            steps.clear()
        if event.run == "r1" and type(event).__name__ == "StepsLogged":
            steps.append(event)

    first = run_experiment(experiment(), runs_dir=tmp_path, emit=record, should_stop=stop_in_r1)
    assert [s["status"] for s in first] == ["finished", "cancelled"]
    events = []
    again = run_experiment(experiment(), runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert [s["status"] for s in again] == ["finished", "finished", "finished"]
    kept = [e for e in events if isinstance(e, RunKept)]
    assert [e.run for e in kept] == ["r0"] and kept[0].summary["run_dir"] == first[0]["run_dir"]
    started = {e.run: e for e in events if isinstance(e, RunStarted)}
    assert started["r1"].run_dir == first[1]["run_dir"] and started["r1"].start_epoch == 1  # resumed in place
    assert started["r2"].start_epoch == 0 and (started["r1"].index, started["r2"].index) == (1, 2)
    assert len(list((tmp_path / "sweep").iterdir())) == 3  # no run trained twice
    events.clear()
    third = run_experiment(experiment(), runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert all(isinstance(e, RunKept) for e in events) and len(events) == 3
    assert [s["accuracy"] for s in third] == [s["accuracy"] for s in again]
    events.clear()
    changed = run_experiment(experiment(epochs=(2, 2, 3)), runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert changed[2]["run_dir"] != again[2]["run_dir"] and changed[2]["epochs"] == 3  # a new config trains afresh
    assert changed[:2] == again[:2]
    [note] = [e for e in events if isinstance(e, WarningRaised) and e.code == "continue"]  # and says why
    assert note.run == "r2"
    assert note.message == f"its settings changed since {again[2]['run_dir']} (train.epochs 2 -> 3): it trains afresh"
    from rich.console import Console

    from vitlab.commands.progress import ProgressPrinter

    console = Console(record=True, width=300, color_system=None)
    printer = ProgressPrinter(console)
    for event in events:  # said before r2's own lines start: under r1's, "its" read as r1's
        printer(event)
    assert "\nr2 warning (continue): its settings changed since" in console.export_text()


def test_seeds_added_to_a_study_trained_once_keep_its_runs_as_seed_0(tmp_path):
    [once] = run_experiment(experiment(epochs=(1,)), runs_dir=tmp_path)
    events = []
    seeded = experiment(epochs=(1,)).model_copy(update={"runs": reseed(experiment(epochs=(1,)).runs, [0, 1])})
    summaries = run_experiment(seeded, runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert [e.run for e in events if isinstance(e, RunKept)] == ["r0-s0"] and summaries[0] == once
    assert [e.run for e in events if isinstance(e, RunStarted)] == ["r0-s1"]
    assert not any(isinstance(e, WarningRaised) and e.code == "continue" for e in events)  # a new seed is no change
    assert seed_groups(summaries)[0]["seeds"] == [0, 1]


def test_what_only_watches_a_run_is_no_change(tmp_path):
    [once] = run_experiment(experiment(epochs=(1,)), runs_dir=tmp_path)
    watched = ExperimentConfig.model_validate({"name": "sweep", "runs": [
        {"name": "r0", "model": MODEL, "data": {**DATA, "num_workers": 0},
         "train": {"epochs": 1, "batch_size": 32, "log_every": 3, "tensorboard": True}}]})
    events = []
    [kept] = run_experiment(watched, runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert kept == once and [type(e).__name__ for e in events] == ["RunKept"]
    assert len(seed_groups([once, {**kept, "name": "r0-s1", "config": {  # one group: the same training
        **watched.runs[0].resolved(), "train": {**watched.runs[0].resolved()["train"], "seed": 1}}}])) == 1


def test_nothing_earlier_is_said_once(tmp_path):
    events = []
    run_experiment(experiment(epochs=(1, 1)), runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    [note] = [e.message for e in events if isinstance(e, WarningRaised) and e.code == "continue"]
    assert note == f"nothing earlier in {tmp_path / 'sweep'}: every run of the queue trains"


def test_a_nonfinite_failure_is_kept_and_a_live_run_blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("VITLAB_INJECT_FAULT", "nan:1")
    exp = experiment(epochs=(1,))
    [failed] = run_experiment(exp, runs_dir=tmp_path)
    assert failed["failure"] == "non-finite"
    monkeypatch.delenv("VITLAB_INJECT_FAULT")
    events = []
    [kept] = run_experiment(exp, runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert kept["status"] == "failed" and [type(e) for e in events] == [WarningRaised, RunKept]
    assert "would fail again with the same settings" in events[0].message  # and how to train it again
    assert "delete that directory to train it again as it is" in events[0].message
    run_dir = tmp_path / "sweep" / os.path.basename(failed["run_dir"])
    (run_dir / "summary.json").unlink()  # as a run killed mid-training leaves it, with a fresh heartbeat
    (run_dir / "heartbeat").write_text(f"{os.getpid()} 0 {socket.gethostname()}\n")
    with pytest.raises(CannotStart, match="r0: .* is still training"):
        run_experiment(exp, runs_dir=tmp_path, resume_earlier=True)


def test_a_run_trained_again_and_stopped_resumes_rather_than_the_older_finished_one(tmp_path):
    exp = experiment(epochs=(2,))
    [done] = run_experiment(exp, runs_dir=tmp_path)
    seen = []
    [stopped_early] = run_experiment(exp, runs_dir=tmp_path, emit=seen.append, should_stop=lambda: bool(seen))
    assert stopped_early["status"] == "cancelled" and not stopped_early["epochs"]  # in its first epoch
    [(how, kept, _)] = plan(exp, tmp_path)
    assert how == "keep" and kept["run_dir"] == done["run_dir"]  # it has nothing to give back: the finished one
    # "Train all again", stopped after its first epoch: continuing goes on with that attempt
    epochs = []
    [again] = run_experiment(exp, runs_dir=tmp_path, should_stop=lambda: bool(epochs),
                             emit=lambda e: epochs.append(e) if isinstance(e, EpochEvaluated) else None)
    assert again["status"] == "cancelled" and again["epochs"] == 1
    [(how, resumed, _)] = plan(exp, tmp_path)
    assert how == "resume" and resumed["run_dir"] == again["run_dir"]
    [finished] = run_experiment(exp, runs_dir=tmp_path, resume_earlier=True)
    assert finished["run_dir"] == again["run_dir"] and finished["status"] == "finished"


def test_a_run_of_several_processes_is_not_continued_in_one(tmp_path):
    import json

    exp = experiment(epochs=(1,))
    [done] = run_experiment(exp, runs_dir=tmp_path)
    summary = tmp_path / "sweep" / os.path.basename(done["run_dir"]) / "summary.json"
    on_two = {**json.loads(summary.read_text()), "world_size": 2, "effective_batch": 64}
    summary.write_text(json.dumps({**on_two, "status": "cancelled"}))
    [(how, _, note)] = plan(exp, tmp_path, 1)
    assert how == "train" and "trained on 2 processes" in note and "--nproc 2 continues that one" in note
    summary.write_text(json.dumps(on_two))
    events = []  # as `vitlab run --nproc 2` left it: one process would train at half its effective batch
    [again] = run_experiment(exp, runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert again["run_dir"] != done["run_dir"] and again["world_size"] == 1
    [note] = [e.message for e in events if isinstance(e, WarningRaised) and e.code == "continue"]
    assert "trained on 2 processes" in note and "continues" not in note  # finished: no resume to offer
    # planned for two processes (`--nproc 2 --continue`, the TUI's Processes 2): that run is kept, the other trains
    [(how, kept, _)] = plan(exp, tmp_path, 2)
    assert how == "keep" and kept["run_dir"] == done["run_dir"]


@pytest.mark.parametrize("checkpoint", [False, True])  # off, or on and the file deleted
def test_a_run_without_a_checkpoint_is_not_resumed_over_its_epochs(tmp_path, checkpoint, capsys):
    """Resumed without checkpoint.pt, a run trained again from epoch 1 in its own directory: its recorded epochs
    were dropped from metrics.jsonl and its summary overwritten, after vitlab itself had said "resume with"."""
    import json
    import sys

    from rich.console import Console

    from vitlab.commands.progress import ProgressPrinter
    from vitlab.engine.events import RunCancelled
    from vitlab.engine.runner import resume_run
    from vitlab.errors import VitlabError

    train = {"epochs": 1, "batch_size": 32, "checkpoint": checkpoint}
    exp = ExperimentConfig.model_validate({"name": "sweep", "runs": [{"name": "r0", "model": MODEL, "data": DATA,
                                                                       "train": train}]})
    [done] = run_experiment(exp, runs_dir=tmp_path)
    run_dir = tmp_path / "sweep" / os.path.basename(done["run_dir"])
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    cancelled = {**json.loads((run_dir / "summary.json").read_text()), "status": "cancelled"}
    (run_dir / "summary.json").write_text(json.dumps(cancelled))
    metrics = (run_dir / "metrics.jsonl").read_text()
    why = "train.checkpoint was off" if not checkpoint else "it is gone"
    with pytest.raises(VitlabError, match=f"no checkpoint.pt to resume from \\({why}\\).* over its 1 recorded epoch"):
        resume_run(run_dir)
    summary = (run_dir / "summary.json").read_bytes()
    (run_dir / "summary.json").unlink()  # killed before any summary: its epochs are in metrics.jsonl
    with pytest.raises(VitlabError, match="over its 1 recorded epoch"):
        resume_run(run_dir)
    (run_dir / "summary.json").write_bytes(summary)
    events = []
    [again] = run_experiment(exp, runs_dir=tmp_path, emit=events.append, resume_earlier=True)
    assert again["run_dir"] != done["run_dir"] and again["status"] == "finished"  # afresh, elsewhere
    assert (run_dir / "metrics.jsonl").read_text() == metrics  # that one untouched
    [note] = [e.message for e in events if isinstance(e, WarningRaised) and e.code == "continue"]
    assert "trains afresh in a new directory" in note
    ProgressPrinter(Console(file=sys.stderr))(RunCancelled("r0", "sweep", cancelled))  # what Ctrl-C prints
    said = capsys.readouterr().err
    assert ("train.checkpoint is off: it cannot resume" in said) != checkpoint and ("resume with" in said) == checkpoint


def test_a_run_is_trained_by_one_process_at_a_time(tmp_path):
    """Two resumes started together both passed the heartbeat check before either beat, and both trained the run
    into one directory (its metrics had every epoch twice)."""
    import json

    from vitlab.engine.runner import resume_run
    from vitlab.engine.store import RunStore
    from vitlab.errors import VitlabError

    exp = ExperimentConfig.model_validate({"name": "sweep", "runs": [{"name": "r0", "model": MODEL, "data": DATA,
                                                                       "train": {"epochs": 2, "batch_size": 32}}]})
    evaluated = []
    [done] = run_experiment(exp, runs_dir=tmp_path, should_stop=lambda: bool(evaluated),
                            emit=lambda e: evaluated.append(e) if type(e).__name__ == "EpochEvaluated" else None)
    run_dir = tmp_path / "sweep" / os.path.basename(done["run_dir"])
    assert done["status"] == "cancelled" and done["epochs"] == 1
    other = RunStore(run_dir)
    other.claim()  # as the other process's resume holds it while it trains
    summary = (run_dir / "summary.json").read_text()
    with pytest.raises(VitlabError, match="another process is training this run right now"):
        resume_run(run_dir)
    assert (run_dir / "summary.json").read_text() == summary  # untouched
    other.release()  # that process ended
    assert resume_run(run_dir)["status"] == "finished"
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if '"EpochEvaluated"' in line]
    assert epochs == [1, 2]
    stray = tmp_path / "notarun"
    stray.mkdir()
    with pytest.raises(VitlabError, match="not a vitlab run directory"):
        resume_run(stray)
    assert not list(stray.iterdir())  # refused before anything was written there (it left a .lock)


def test_a_ctrl_c_before_a_continued_queue_trains_still_reports_its_kept_runs(tmp_path):
    exp = experiment(epochs=(1, 1))
    [done] = run_experiment(exp.model_copy(update={"runs": exp.runs[:1]}), runs_dir=tmp_path)
    again = run_experiment(exp, runs_dir=tmp_path, resume_earlier=True, should_stop=lambda: True)
    assert [(s["name"], s["status"], s["run_dir"]) for s in again] == [("r0", "finished", done["run_dir"])]
    assert len(list((tmp_path / "sweep").iterdir())) == 1  # r1 did not start
