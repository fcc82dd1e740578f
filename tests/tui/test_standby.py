"""The standby training process: started after the first paint, it trains the queue ctrl+r starts."""
from __future__ import annotations

import psutil

from vitlab.tui.app import STANDBY_AFTER_S

from .conftest import form_ready, make_app, wait_for


async def test_ctrl_r_hands_the_queue_to_the_standby_process_and_a_new_one_waits_after(tiny_preset, runs_dir):
    app = make_app(tiny_preset, runs_dir, standby=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await form_ready(pilot)
        await wait_for(pilot, lambda: app.standby is not None, timeout=STANDBY_AFTER_S + 10)
        standby = app.standby
        assert "--standby" in psutil.Process(standby.pid).cmdline()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.child is not None)
        assert app.child is standby and app.standby is None  # no second torch load for this queue
        assert app.child.log_path.name.endswith("-tiny.log")  # the log took the experiment's name
        await wait_for(pilot, lambda: not app.running, timeout=120)
        assert {t.status for t in app.state.runs.values()} == {"finished"}
        await wait_for(pilot, lambda: app.standby is not None)  # the next queue finds one ready
        spare = app.standby
    assert spare.proc.poll() is not None  # leaving the app ends an unused standby, and its empty log goes
    assert not list((runs_dir / ".tui").glob("standby-*.log"))


def test_a_standby_worker_exits_when_the_tui_goes_away_unused(runs_dir):
    from vitlab.tui.child import TrainingChild

    standby = TrainingChild.standby(runs_dir)
    standby.detach()  # what the TUI's exit does to the pipe
    assert standby.proc.wait(timeout=60) == 0


async def test_a_session_that_trained_nothing_leaves_no_runs_folder(tmp_path, runs_dir):
    """The standby's log and a queue refused before its first run (its data missing) left RUNS_DIR/.tui behind in
    a folder where nothing trained."""
    preset = tmp_path / "cifar.yaml"
    preset.write_text(f"""\
name: cifar
defaults:
  data: {{dataset: cifar10, root: "{tmp_path / 'nowhere'}"}}
  train: {{epochs: 1}}
runs:
  - name: vit-a
    model: {{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1}}
""")
    app = make_app(preset, runs_dir, standby=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await wait_for(pilot, lambda: app.standby is not None, timeout=STANDBY_AFTER_S + 10)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.child is not None)
        assert app.child.log_path.parent == runs_dir / ".tui"  # the standby took it
        await wait_for(pilot, lambda: not app.running, timeout=120)
        assert app.state.refused
        assert not list((runs_dir / ".tui").glob("*-cifar.*"))  # its experiment and its empty log
    assert not runs_dir.exists()
