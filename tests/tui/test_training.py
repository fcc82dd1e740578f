"""Real (tiny) training through the UI, in its child process: the quickstart preset to a finished run, cancel
mid-run, quit while a run is active (cancel it, or leave it training), a killed child. Digits on CPU."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, ListView
from textual.widgets._toast import Toast

from vitlab.tui.bridge import outcome
from vitlab.tui.widgets.live_panes import AccuracyChart, LogPane, LossChart

from .conftest import TINY_PRESET, form_ready, make_app, wait_for, write_preset

QUICKSTART = Path(__file__).resolve().parents[2] / "presets" / "quickstart.yaml"


def summaries(runs_dir: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in runs_dir.rglob("summary.json")}


async def test_quickstart_through_the_ui_to_finished_runs_and_their_spread_across_seeds(runs_dir):
    app = make_app(QUICKSTART, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        assert app.sub_title == "quickstart"
        names = [r.name for r in app.setup.queue]
        assert names[0] == "vit-tiny"
        # keep it small: drop the other runs, 2 epochs without warmup for the ViT, two seeds
        queue = app.setup.query_one("#queue", ListView)
        while len(app.setup.queue) > 1:
            queue.focus()
            queue.index = len(app.setup.queue) - 1
            await pilot.press("delete")
            await pilot.pause()
        form = app.setup.form
        form.query_one("#f-train-warmup_epochs", Input).value = "0"
        form.query_one("#f-train-epochs", Input).value = "2"
        await pilot.pause()
        assert app.setup.queue[0].train.epochs == 2
        app.setup.set_seeds(app.setup.queue, [0, 1])
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.running and app.views.active == "live"
        # the child has its copy of the queue: the form says edits made now are for the next ctrl+r
        assert "edits here apply to the next ctrl+r" in str(app.setup.query_one("#run-hint").render())
        await wait_for(pilot, lambda: not app.running, timeout=90)
        await pilot.pause(0.3)
        assert "ctrl+r trains the queue (2 runs)" in str(app.setup.query_one("#run-hint").render())
        tracks = [app.state.runs[f"vit-tiny-s{seed}"] for seed in (0, 1)]
        assert all(t.status == "finished" and len(t.evals) == 2 and t.steps for t in tracks)
        assert tracks[0].evals != tracks[1].evals  # two seeds, two trainings
        # the outcome is on screen: the progress pane says finished with the final accuracy
        app.views.active = "live"
        await pilot.pause(0.3)
        progress = str(app.live.query_one("#progress-text").render())
        assert "finished" in progress and "final accuracy" in progress
        # it ends on the comparison table, with these runs' rows, and points at the table across seeds
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.results.history)
        table = app.results.query_one(DataTable)
        assert table.row_count == 2
        row = [str(c) for c in table.get_row_at(0)]
        assert "vit-tiny-s1" in row and "finished" in row
        assert any(n.title == "Across seeds" for n in app.told)
        await pilot.press("g")
        assert table.row_count == 1 and "±" in str(table.get_row_at(0)[5])
    on_disk = summaries(runs_dir)
    assert on_disk["vit-tiny-s0"]["status"] == "finished"
    assert on_disk["vit-tiny-s0"]["accuracy"] is not None
    assert outcome(on_disk["vit-tiny-s0"]).startswith(", final accuracy")


CONTINUE_PRESET = """\
name: cont
defaults:
  data: {dataset: digits, limit_train: 256, limit_val: 64}
  train: {epochs: 2, batch_size: 64, lr: 3.0e-3, log_every: 1}
runs:
  - name: vit-a
    model: {kind: vit, patch_size: 4, embed_dim: 16, heads: 2, layers: 1}
  - name: vit-b
    model: {kind: vit, patch_size: 2, embed_dim: 16, heads: 2, layers: 1}
"""


async def test_ctrl_r_offers_to_continue_a_queue_that_stopped_part_way(tmp_path, runs_dir):
    from vitlab.engine.events import EpochEvaluated
    from vitlab.engine.runner import run_experiment
    from vitlab.presets import load_preset

    preset = tmp_path / "cont.yaml"
    preset.write_text(CONTINUE_PRESET)
    evaluated = []
    earlier = run_experiment(load_preset(preset), runs_dir=runs_dir, emit=evaluated.append,  # vit-b: Ctrl-C
                             should_stop=lambda: any(isinstance(e, EpochEvaluated) and e.run == "vit-b"
                                                     for e in evaluated))
    assert [s["status"] for s in earlier] == ["finished", "cancelled"]
    app = make_app(preset, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen.title_text == "Continue where it stopped?" and not app.running
        assert "1 finished and 1 stopped part-way" in app.screen.message
        assert "Continue keeps the finished one and resumes the stopped one from its checkpoint." in app.screen.message
        await pilot.press("c")
        await wait_for(pilot, lambda: app.running)
        await wait_for(pilot, lambda: not app.running, timeout=90)
        a, b = app.state.runs["vit-a"], app.state.runs["vit-b"]
        assert a.status == "finished" and [e[0] for e in a.evals] == [1, 2]  # kept, its curves read from disk
        assert (a.steps_per_epoch, a.epochs) == (4, 2)  # the loss chart's steps become epochs
        assert b.status == "finished" and [e[0] for e in b.evals] == [1, 2]  # resumed after its first epoch
        assert any(text.startswith("vit-a: finished earlier, kept") for _, text in app.state.log)
        await pilot.press("ctrl+r")  # every run finished now: nothing for Continue to do
        await pilot.pause()
        assert app.screen.title_text == "Nothing left to train" and "2 finished" in app.screen.message
        await pilot.press("s")
        await pilot.pause()
        assert app.views.active == "results" and not app.running
    on_disk = summaries(runs_dir)
    assert on_disk["vit-b"]["status"] == "finished" and on_disk["vit-b"]["run_dir"] == earlier[1]["run_dir"]
    assert len(list((runs_dir / "cont").iterdir())) == 2  # nothing trained twice


async def start_long_run(app, pilot) -> None:
    """ctrl+r on a 300-epoch queue, returning once vit-a has logged steps."""
    await pilot.pause()
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: app.state.runs["vit-a"].steps, timeout=60)


async def test_cancel_mid_run_asks_then_stops(tmp_path, runs_dir):
    app = make_app(write_preset(tmp_path / "long.yaml", epochs=300, log_every=1), runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await start_long_run(app, pilot)
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert "Cancel" in app.screen.title_text  # asks first
        await pilot.press("k")  # keep training
        await pilot.pause()
        assert app.running and app.state.runs["vit-a"].status == "running"
        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("c")  # cancel this run: the queue goes on with the next
        await wait_for(pilot, lambda: app.state.runs["vit-a"].status == "cancelled", timeout=30)
        await wait_for(pilot, lambda: app.state.runs["vit-b"].steps, timeout=60)
        assert app.running
        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("c")  # vit-b is the last run
        await wait_for(pilot, lambda: not app.running, timeout=30)
        assert app.state.runs["vit-b"].status == "cancelled"
        assert app.views.active == "results"
    on_disk = summaries(runs_dir)
    assert on_disk["vit-a"]["status"] == "cancelled" and on_disk["vit-b"]["status"] == "cancelled"
    assert on_disk["vit-a"]["epochs"] < 300


async def test_quit_while_running_asks_cancels_and_exits(tmp_path, runs_dir):
    app = make_app(write_preset(tmp_path / "long.yaml", epochs=300, log_every=1), runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await start_long_run(app, pilot)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "Quit" in app.screen.title_text  # asks while a run is active
        await pilot.press("s")  # stay
        await pilot.pause()
        assert app.running and app.is_running
        said = []  # what it prints on the way out (Textual clears it once printed)
        exit_app = app.exit
        app.exit = lambda *args, **kwargs: (said.append(kwargs.get("message")), exit_app(*args, **kwargs))[1]
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("c")  # cancel it, then quit
        await wait_for(pilot, lambda: not app.is_running, timeout=30)
    assert app.return_code == 0
    on_disk = summaries(runs_dir)
    assert on_disk["vit-a"]["status"] == "cancelled"
    assert "vit-b" not in on_disk  # the queue stopped
    assert said == [f"vitlab: cancelled; metrics and last checkpoint kept in "
                                     f"{on_disk['vit-a']['run_dir']} (vitlab resume {on_disk['vit-a']['run_dir']} "
                                     "continues it)"]  # said on the way out, as "Leave it training" does


async def test_quit_leaving_the_run_training(tmp_path, runs_dir):
    """The run goes on after the app is gone (its own process and session) and finishes on its own."""
    app = make_app(write_preset(tmp_path / "short.yaml", epochs=3, log_every=1), runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await start_long_run(app, pilot)
        pid = app.child.pid
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("l")  # leave it training
        await wait_for(pilot, lambda: not app.is_running, timeout=10)
    assert app.return_code == 0
    os.kill(pid, 0)  # still there
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and [s["status"] for s in summaries(runs_dir).values()] != ["finished"] * 2:
        time.sleep(0.2)
    assert {n: s["status"] for n, s in summaries(runs_dir).items()} == {"vit-a": "finished", "vit-b": "finished"}


async def test_killed_child_fails_the_run_naming_its_log(tmp_path, runs_dir):
    app = make_app(write_preset(tmp_path / "long.yaml", epochs=300, log_every=1), runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await start_long_run(app, pilot)
        await wait_for(pilot, lambda: app.state.runs["vit-a"].evals, timeout=60)  # an epoch recorded, to lose
        os.kill(app.child.pid, signal.SIGKILL)
        await wait_for(pilot, lambda: not app.running, timeout=30)
        track = app.state.runs["vit-a"]
        assert track.status == "failed"
        assert "killed (SIGKILL)" in track.error and str(app.child.log_path) in track.error
        assert "\n" not in track.error
        # the preset trains without checkpoints: no resume offered over its recorded epochs (it once was)
        assert "no checkpoint.pt to resume from (train.checkpoint was off)" in track.error
        assert app.state.runs["vit-b"].status == "skipped"
    on_disk = summaries(runs_dir)["vit-a"]
    assert (on_disk["status"], on_disk["failure"]) == ("failed", "crash")  # on disk too, not left `running`


async def test_quit_when_idle_needs_no_confirmation(runs_dir):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=5)


async def test_processes_field_is_validated(runs_dir):
    from vitlab.engine.hardware import max_processes

    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        limit, _ = max_processes()
        app.setup.query_one("#nproc", Input).value = str(limit + 1)
        await pilot.pause()
        assert f"must be 1 to {limit}" in str(app.setup.query_one("#run-hint").render())
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.running and app.focused is app.setup.query_one("#nproc")
        app.setup.query_one("#nproc", Input).value = "1"
        await pilot.pause()
        assert app.setup.nproc == 1 and "must be" not in str(app.setup.query_one("#run-hint").render())


@pytest.mark.slow
async def test_two_processes_from_the_tui_cancel_and_resume(tmp_path, runs_dir):
    """Processes (GPUs) = 2 on the CPU: torchrun with gloo; rank 0's events stream back to the Live view, a cancel
    reaches every rank, and r in Results resumes the run on two processes again (one would halve its batch)."""
    preset = tmp_path / "ddp.yaml"
    preset.write_text(TINY_PRESET.format(epochs=30, log_every=2).replace("checkpoint: false", "checkpoint: true")
                      .replace("  - name: vit-b", "    train: {epochs: 1}\n  - name: vit-b"))
    app = make_app(preset, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        app.setup.query_one("#nproc", Input).value = "2"
        await pilot.pause()
        await pilot.press("ctrl+r")
        assert app.running, app.told
        await wait_for(pilot, lambda: "vit-b" in app.state.runs and app.state.runs["vit-b"].evals, timeout=120)
        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("c")
        await wait_for(pilot, lambda: not app.running, timeout=60)
        a, b = app.state.runs["vit-a"], app.state.runs["vit-b"]
        assert a.status == "finished" and len(a.evals) == 1 and a.steps
        assert a.summary["world_size"] == 2 and a.summary["effective_batch"] == 128
        assert b.status == "cancelled" and (done := b.summary["epochs"]) < 30
        cancelled = b.summary
        config = Path(cancelled["run_dir"]) / "config.yaml"  # one epoch more to train, however fast this machine
        config.write_text(config.read_text().replace("epochs: 30", f"epochs: {done + 1}"))
        assert app.views.active == "results"
        await wait_for(pilot, lambda: [r["name"] for r in app.results.history] == ["vit-b", "vit-a"])  # newest first
        app.results.query_one(DataTable).focus()
        await pilot.press("home", "r")
        await wait_for(pilot, lambda: app.running, timeout=10)
        assert app.views.active == "live"
        await wait_for(pilot, lambda: not app.running, timeout=120)
        b = app.state.runs["vit-b"]
        assert b.status == "finished" and [e[0] for e in b.evals] == list(range(1, done + 2)), app.told
        assert b.summary["world_size"] == 2 and b.summary["effective_batch"] == 128
        assert (b.summary["run_dir"], b.summary["started_at"]) == (cancelled["run_dir"], cancelled["started_at"])


async def test_unwritable_runs_dir_is_one_message(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    app = make_app(write_preset(tmp_path / "p.yaml"), blocker / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.running
        assert any("cannot write here" in n.message for n in app.told)


async def test_a_run_that_cannot_start_is_reported_and_stops_the_queue(tmp_path, runs_dir):
    runs_dir.mkdir()
    (runs_dir / "tiny").write_text("")  # the experiment's directory cannot be created
    app = make_app(write_preset(tmp_path / "p.yaml"), runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:  # the charts beside the figures
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.running, timeout=60)
        assert app.state.runs["vit-a"].status == "not started" and app.state.runs["vit-b"].status == "skipped"
        app.live.redraw(force=True)
        await pilot.pause()
        progress = str(app.live.query_one("#progress-text").render())
        assert "did not start" in progress and "setting up" not in progress  # not left as if it were still loading
        # the charts say so too: they waited "for the first logged steps" until the next resize
        for chart in (LossChart, AccuracyChart):
            assert "no figures: vit-a not started" in app.query_one(chart).render().plain
        assert "tiny" in app.state.runs["vit-a"].error and "\n" not in app.state.runs["vit-a"].error


async def test_out_of_memory_fails_one_run_and_the_queue_goes_on(tmp_path, runs_dir, monkeypatch):
    # the child inherits the fault seam: an OOM at step 3, which only vit-a (22 steps) reaches; vit-b has 1
    monkeypatch.setenv("VITLAB_INJECT_FAULT", "oom:3")
    preset = tmp_path / "oom.yaml"
    preset.write_text(TINY_OOM)
    app = make_app(preset, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.running and app.state.runs["vit-b"].status == "finished", timeout=90)
        failed = app.state.runs["vit-a"]
        assert failed.status == "failed" and "accumulation_steps" in failed.error
        assert any(n.message.startswith("vit-a: failed: Out of the machine's memory") for n in app.told)
        # still usable: the form answers and the results list both runs
        app.views.active = "results"
        await pilot.pause(0.3)
        rows = [[str(c) for c in app.results.query_one(DataTable).get_row_at(i)]
                for i in range(app.results.query_one(DataTable).row_count)]
        assert any("vit-a" in r and "failed" in r for r in rows) and any("vit-b" in r and "finished" in r for r in rows)
    on_disk = summaries(runs_dir)
    assert on_disk["vit-a"]["status"] == "failed" and on_disk["vit-a"]["steps"] == 2
    assert on_disk["vit-b"]["status"] == "finished"


TINY_OOM = """\
name: oom
defaults:
  data: {dataset: digits}
  train: {epochs: 1, batch_size: 64, log_every: 1, checkpoint: false}
runs:
  - name: vit-a
    model: {kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1, mlp_ratio: 2}
  - name: vit-b
    model: {kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1, mlp_ratio: 2}
    data: {limit_train: 64}
"""


async def test_missing_data_stops_the_queue_with_one_message_shown_as_written(tmp_path, runs_dir):
    root = tmp_path / "[draft] data"  # brackets in a path are not markup: shown as they are, never a crash
    preset = tmp_path / "cifar.yaml"
    preset.write_text(f"""\
name: cifar
defaults:
  data: {{dataset: cifar10, root: "{root}"}}
  train: {{epochs: 1}}
runs:
  - name: digits-ok
    model: {{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1}}
    data: {{dataset: digits}}
  - name: vit-a
    model: {{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1}}
  - name: vit-b
    model: {{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1, mlp_dim: 48}}
  - name: r18
    model: {{kind: resnet18, weights: "{tmp_path / 'gone.pt'}"}}
    data: {{dataset: digits}}
""")
    app = make_app(preset, runs_dir)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.running, timeout=60)
        await pilot.pause()
        # the whole queue waits for what is missing, and the Live view shows the run that needs it, not the first
        assert app.state.runs["vit-a"].status == "not started"
        assert {app.state.runs[r].status for r in ("digits-ok", "vit-b", "r18")} == {"skipped"}
        app.live.redraw(force=True)
        await pilot.pause()
        progress = str(app.live.query_one("#progress-text").render())
        assert "The queue did not start  4 runs, none trained" in progress and "setting up" not in progress
        assert "Needed by vit-a, vit-b." in progress and "gone.pt: no such file" in progress  # each problem, a line
        [note] = [n for n in app.told if "not found" in n.message]
        assert note.title == "The queue did not start"  # not "vit-a did not start", as if others had
        first, more = note.message.splitlines()  # a toast of every problem would fill an 80x24 screen
        assert first.startswith(f"CIFAR-10 not found under {root}/") and first.endswith("Needed by vit-a, vit-b.")
        assert more == "(+1 more: see the Live view)"
        shown = " ".join(str(toast.render()) for toast in app.screen.query(Toast))
        assert "[draft] data" in shown.replace("\n", " ")
    assert not (runs_dir / "cifar").exists()  # no run started, so none is left failed on disk
    assert not runs_dir.exists()  # nor the queue's files in RUNS_DIR/.tui


async def test_resume_from_results_continues_a_cancelled_run_to_the_end(runs_dir):
    from vitlab.config import RunConfig
    from vitlab.engine.runner import train_run

    cfg = RunConfig.model_validate({"name": "vit-a", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 32,
                                    "heads": 2, "layers": 1}, "data": {"dataset": "digits", "limit_train": 256},
                                    "train": {"epochs": 3, "batch_size": 64, "log_every": 1}})
    asked = []
    stop = lambda: len(asked.append(1) or asked) > 5  # a cancel in the second epoch
    cancelled = train_run(cfg, experiment="tiny", runs_dir=runs_dir, should_stop=stop)
    assert cancelled["status"] == "cancelled" and cancelled["epochs"] < 3
    app = make_app(None, runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await form_ready(pilot)
        await pilot.press("f2", "f3")  # Live seen once (as after an earlier queue): its log has had a size
        await wait_for(pilot, lambda: app.results.history)
        app.results.query_one(DataTable).focus()
        await pilot.press("r")
        await pilot.pause()
        assert app.running and app.views.active == "live"
        await pilot.pause(0.5)
        # written as the view turned to Live, before its layout, the log wrapped at 20 columns of 114
        lines = [line.text.rstrip() for line in app.live.query_one(LogPane).lines]
        assert lines[0] == "queue: 1 run: vit-a" and lines[1].startswith(f"training process {app.child.pid}, log")
        await wait_for(pilot, lambda: not app.running, timeout=90)
        track = app.state.runs["vit-a"]
        assert track.status == "finished" and app.views.active == "results"
        assert [e[0] for e in track.evals] == [1, 2, 3]  # the curves hold the epochs from before the resume too
        assert track.steps[0][0] == 1
    summary = json.loads((Path(cancelled["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 3
    assert summary["started_at"] == cancelled["started_at"]


async def test_the_forms_run_trained_alone_then_queued_is_not_called_unsaved(runs_dir):
    """ctrl+r on an empty queue trains the form's run; queued afterwards, quit said it had "changes that no preset
    holds", though its training (RUNS_DIR/.tui/ and its run directory) holds it."""
    runs_dir.mkdir()
    (runs_dir / "my-experiment").write_text("")  # nothing needs to train for it: it stops at once
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.running)
        await wait_for(pilot, lambda: not app.running, timeout=60)
        await pilot.press("f1", "ctrl+n")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["run-1"] and not app.setup.unsaved
        await pilot.press("ctrl+n")  # a second one, by hand: that one is named
        await pilot.pause()
        assert app.setup.unsaved and app.setup.unsaved_text().endswith("(run-2)")
