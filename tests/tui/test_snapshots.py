"""Snapshots of the Setup, Live and Results views at 80x24 and 120x36 (pytest-textual-snapshot).

Deterministic: a fake profiler, fixed engine events fed straight to the UI (no training), a history
written with fixed figures, relative paths, no toasts. Update with `pytest tests/tui --snapshot-update`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from vitlab.tui.bridge import EngineEvent

from .conftest import form_ready, make_app, write_preset
from .fakes import finished_event, live_events, write_history

SIZES = [(80, 24), (120, 36)]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_preset(tmp_path / "tiny.yaml")
    return tmp_path


async def settle(pilot) -> None:
    """Wait until the (debounced) profiler has filled in the derived figures, then drop the toasts."""
    import asyncio

    from textual.widgets import Input

    app = pilot.app
    await form_ready(pilot)
    for field in app.query(Input):
        field.cursor_blink = False  # a blinking cursor would make the snapshot flaky
    await pilot.pause()
    for _ in range(100):
        text = str(app.setup.query_one("#derived").render())
        if "computing" not in text and (app.setup.config is None or "Params" in text):
            break
        await asyncio.sleep(0.1)
    await app.workers.wait_for_complete()
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_setup_view(snap_compare, workdir, size):
    app = make_app(Path("tiny.yaml"), Path("runs"))
    assert snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_setup_view_with_errors(snap_compare, workdir, size):
    async def type_errors(pilot):
        await form_ready(pilot)
        form = pilot.app.setup.form
        form.query_one("#f-vit-heads").value = "5"
        form.query_one("#f-train-lr").value = "0"
        await settle(pilot)

    app = make_app(Path("tiny.yaml"), Path("runs"))
    assert snap_compare(app, terminal_size=size, run_before=type_errors)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_live_view(snap_compare, workdir, size):
    async def feed(pilot):
        app = pilot.app
        await settle(pilot)
        app.state.start_queue(["vit-a", "vit-b"], ["ViT p2 d32 h2 L1", "ViT p4 d32 h2 L1"])
        for ev in live_events():
            app.post_message(EngineEvent(ev))
        app.views.active = "live"
        await pilot.pause(0.3)
        app.live.redraw(force=True)
        await pilot.pause()

    app = make_app(Path("tiny.yaml"), Path("runs"))
    assert snap_compare(app, terminal_size=size, run_before=feed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_view(snap_compare, workdir, size):
    write_history(workdir / "runs")

    async def finish(pilot):
        app = pilot.app
        await settle(pilot)
        app.state.start_queue(["vit-a"], ["ViT p2 d32 h2 L1"])
        app.post_message(EngineEvent(finished_event()))
        app.views.active = "results"
        await pilot.pause()
        app.results.reload()
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.results.query_one("#results-table").focus()
        app.clear_notifications()
        await pilot.pause()

    app = make_app(Path("tiny.yaml"), Path("runs"))
    assert snap_compare(app, terminal_size=size, run_before=finish)
