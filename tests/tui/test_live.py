"""The Live view's progress line says what a run is doing before its first figures arrive."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vitlab.tui.bridge import EngineEvent

from .conftest import form_ready, make_app
from .fakes import live_events


async def test_progress_says_setting_up_then_training_before_the_first_figures():
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(100, 30)) as pilot:
        await form_ready(pilot)
        app.state.start_queue(["vit-a"], ["ViT p2 d32 h2 L1"])
        app.views.active = "live"
        await pilot.pause()

        def progress() -> str:
            app.live.redraw(force=True)
            return str(app.query_one("#progress-text").render())

        assert "setting up (loading data, building the model)" in progress()
        started = replace(live_events()[0], config={"train": {"log_every": 10}}, compiled=True)
        app.post_message(EngineEvent(started))
        await pilot.pause()
        assert "training: compiling the model, then the first figures after 10 optimizer steps" in progress()
