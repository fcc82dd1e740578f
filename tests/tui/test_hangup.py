"""A hang-up (SSH dropped) ends the TUI, not its training: the child runs in its own session, ignores SIGHUP
and finishes the run. A new session's Results view shows the runs still going (`running`, with their latest
figures from metrics.jsonl) and the ones that died (`interrupted`)."""
from __future__ import annotations

import json
import os
import socket
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from vitlab.config import RunConfig, ViTModel
from vitlab.engine.store import RunStore
from vitlab.presets import load_preset, save_preset

from .conftest import form_ready, make_app, wait_for
from .fakes import live_events

QUICKSTART = Path(__file__).resolve().parents[2] / "presets" / "quickstart.yaml"

# The TUI in a process of its own (headless driver): train the preset, print the child's pid, then wait to be hung up.
TUI = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from vitlab.tui.app import VitlabApp

    async def main():
        app = VitlabApp(Path(sys.argv[1]), Path(sys.argv[2]), profiler=None)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+r")
            while not any(t.steps for t in app.state.runs.values()):
                await asyncio.sleep(0.05)
            print(app.child.pid, flush=True)
            await asyncio.sleep(600)

    asyncio.run(main())
""")


def statuses(runs_dir: Path) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in runs_dir.rglob("summary.json")]


async def test_hangup_kills_the_tui_not_the_training(tmp_path):
    exp = load_preset(QUICKSTART, ["train.epochs=10", "train.warmup_epochs=0", "train.log_every=1"])
    preset = save_preset(exp.model_copy(update={"runs": exp.runs[:1]}), tmp_path / "qs.yaml")
    runs_dir = tmp_path / "runs"
    tui = subprocess.Popen([sys.executable, "-c", TUI, str(preset), str(runs_dir)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        child = int(tui.stdout.readline())
        tui.send_signal(signal.SIGHUP)
        assert tui.wait(timeout=10) == -signal.SIGHUP  # the TUI is gone...
    finally:
        tui.kill()
    os.kill(child, signal.SIGHUP)  # ...and a hang-up that reaches the training process is ignored
    app = make_app(None, runs_dir)  # a new session, while the run is still training
    async with app.run_test(size=(120, 36)) as pilot:
        await form_ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.results.history, timeout=10)
        row = app.results.history[0]
        assert row["status"] == "running" and row["throughput_img_s"], row
    deadline = time.monotonic() + 120
    while statuses(runs_dir) != ["finished"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert statuses(runs_dir) == ["finished"]
    summary = next(runs_dir.rglob("summary.json"))
    assert json.loads(summary.read_text())["epochs"] == 10


def write_run(runs_dir: Path, name: str, *, alive: bool) -> Path:
    """A run on disk as a training process leaves it while it trains: config, `running` summary, metrics."""
    cfg = RunConfig(name=name, model=ViTModel(patch_size=2, embed_dim=32, heads=2, layers=1))
    store = RunStore.create(runs_dir, "demo", name)
    store.write_config(cfg.resolved())
    store.write_summary({"name": name, "experiment": "demo", "status": "running", "model": "ViT", "params": 9930,
                         "run_dir": str(store.dir), "config": cfg.resolved()})
    for ev in live_events(name, "demo"):
        store.record(ev)  # also touches the heartbeat
    store.close()
    if not alive:
        old = time.time() - 3600
        os.utime(store.dir / "heartbeat", (old, old))
    return store.dir


async def test_results_show_running_and_interrupted_runs(runs_dir):
    write_run(runs_dir, "going", alive=True)
    write_run(runs_dir, "died", alive=False)
    app = make_app(None, runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await form_ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(app.results.history) == 2, timeout=10)
        rows = {s["name"]: s for s in app.results.rows()}
        assert rows["going"]["status"] == "running" and rows["died"]["status"] == "interrupted"
        for row in rows.values():  # the latest figures, from metrics.jsonl
            assert row["throughput_img_s"] == 7200.0 and row["accuracy"] == 0.6 and row["epochs"] == 2
        table = app.results.query_one("#results-table")
        cells = {str(c) for i in range(table.row_count) for c in table.get_row_at(i)}
        assert {"running", "interrupted"} <= cells


# Stands in for a `vitlab worker` left training: its command line names vitlab, SIGINT is its stop.
LEFT_TRAINING = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    signal.signal(signal.SIGINT, lambda *_: (Path(sys.argv[1]).write_text("stopped"), sys.exit(0)))
    print("ready", flush=True)
    time.sleep(120)
""")


async def test_a_new_session_can_stop_a_run_left_training(runs_dir, tmp_path):
    run_dir = write_run(runs_dir, "going", alive=True)
    marker = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-c", LEFT_TRAINING, str(marker), "vitlab-worker-stand-in"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        (run_dir / "heartbeat").write_text(f"{proc.pid} {time.time():.0f} {socket.gethostname()}\n")
        app = make_app(None, runs_dir)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await form_ready(pilot)
            await wait_for(pilot, lambda: app.results.history, timeout=10)
            await pilot.pause()
            assert any("Still training, from an earlier vitlab: demo/going" in n.message for n in app.told)
            await pilot.press("ctrl+x")
            await pilot.pause()
            assert "going is training in process" in str(app.screen.query_one(".dialog-message").render())
            await pilot.press("s")  # Stop it
            await pilot.pause()
            assert proc.wait(timeout=10) == 0 and marker.read_text() == "stopped"
            summary = json.loads((run_dir / "summary.json").read_text())  # as the worker ends it: in its first epoch
            (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "cancelled", "epochs": 0}))
            app.results.reload()  # it stays in the table, where the dialog said r continues it
            await wait_for(pilot, lambda: [(r["name"], r["status"]) for r in app.results.rows()] == [
                ("going", "cancelled")], timeout=10)
    finally:
        proc.kill()
