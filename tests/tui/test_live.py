"""The Live view's progress line says what a run is doing before its first figures arrive."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vitlab.tui.bridge import EngineEvent
from vitlab.tui.widgets.live_panes import LogPane

from .conftest import form_ready, make_app
from .fakes import finished_event, live_events


async def show_live_with_one_queued_run(app, pilot) -> None:
    """The Live view of a queue of one run that has sent nothing yet."""
    await form_ready(pilot)
    app.state.start_queue(["vit-a"], ["ViT p2 d32 h2 L1"])
    app.views.active = "live"
    await pilot.pause()


async def test_progress_says_setting_up_then_training_before_the_first_figures():
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(100, 30)) as pilot:
        await show_live_with_one_queued_run(app, pilot)

        def progress() -> str:
            app.live.redraw(force=True)
            return str(app.query_one("#progress-text").render())

        assert "setting up (loading data, building the model)" in progress()
        started = replace(live_events()[0], config={"train": {"log_every": 10}}, compiled=True)
        app.post_message(EngineEvent(started))
        await pilot.pause()
        assert "training: compiling the model, then the first figures after 10 optimizer steps" in progress()
        resumed = replace(live_events()[0], config={"train": {"log_every": 10}}, start_epoch=2, run_dir="/nowhere")
        app.post_message(EngineEvent(resumed))  # a resumed run starts where it was, not at 0 %
        await pilot.pause()
        assert "training: resumed after epoch 2/4: the next figures after 10 optimizer steps" in progress()
        assert app.query_one("#progress-bar").percentage == 0.5
        assert app.state.log[-1][1].startswith("vit-a: resumed after epoch 2/4 (1/2)")  # the log said "started"


async def test_long_log_lines_wrap_in_a_narrow_log_pane():
    """RichLog renders 78 columns wide unless told otherwise: at 80x24 the end of each line was cut off."""
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await show_live_with_one_queued_run(app, pilot)
        app.live.show_tab("tab-log")
        await pilot.pause()
        app.state.add_log("", "vit-a: epoch 1/20  train loss 2.2860  eval loss 2.1000  accuracy 31.25%  END")
        app.live.redraw(force=True)
        await pilot.pause()
        log = app.live.query_one(LogPane)
        text = "".join(strip.text for strip in log.lines)
        assert "END" in text and max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width
        app.live.show_tab("tab-loss")  # written while the Log tab is hidden: wrapped at 20 columns, not the pane's
        await pilot.pause()
        app.state.add_log("", "vit-b: warning [chance-accuracy] after epoch 1 the accuracy is at chance TAIL")
        app.live.redraw(force=True)
        await pilot.pause()
        app.live.show_tab("tab-log")
        await pilot.pause()
        app.live.redraw(force=True)
        await pilot.pause()
        last = [strip.text.rstrip() for strip in log.lines][-2:]
        assert last[-1].endswith("TAIL") and 30 < len(last[0]) <= log.scrollable_content_region.width, last


async def test_a_resize_across_the_wide_layout_redraws_the_new_panes():
    """Each layout switch builds new panes; they show the state at once. (In a real terminal the old code drew
    into the outgoing panes and left the new ones blank — seen in tmux; the pilot's timing hides that race.)"""
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(120, 36)) as pilot:
        await show_live_with_one_queued_run(app, pilot)
        for ev in [*live_events(), finished_event()]:
            app.post_message(EngineEvent(ev))
        await pilot.pause()
        app.live.redraw(force=True)
        for size in ((80, 24), (120, 36), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause(1.0)
            assert app.live.wide == (size == (120, 36))
            assert "finished" in str(app.query_one("#progress-text").render())
            assert "vit-a" in str(app.query_one("#runs").render())
            assert "MiB" in str(app.query_one("#memory").render())


async def test_keys_1_2_3_pick_the_live_tabs_where_there_are_tabs():
    from textual.widgets import Footer, TabbedContent

    def footer() -> str:
        return " ".join(str(key.render()) for key in app.screen.query_one(Footer).children)

    app = make_app(None, Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("1")  # Setup: not a Live key
        await pilot.pause()
        assert "Accuracy" not in footer()
        await pilot.press("f2")
        await pilot.pause()
        tabs = app.live.query_one("#live-tabs", TabbedContent)
        assert "Accuracy" in footer() and tabs.active == "tab-loss"
        await pilot.press("2")
        await pilot.pause()
        assert tabs.active == "tab-accuracy"
        await pilot.press("3")
        await pilot.pause()
        assert tabs.active == "tab-log"
        await pilot.resize_terminal(120, 36)  # every pane at once: no tabs, no keys
        await pilot.pause(0.5)
        assert app.live.wide and "Accuracy" not in footer()
        await pilot.press("1")  # a key that does nothing here: the view and its layout stay, no tab comes back
        await pilot.pause()
        assert app.views.active == "live" and app.live.wide and not app.live.query(TabbedContent)


def test_a_run_that_did_not_finish_reports_its_last_accuracy_not_a_final_one():
    from vitlab.tui.bridge import outcome

    assert outcome({"status": "finished", "accuracy": 0.5}) == ", final accuracy 50.00%"
    assert outcome({"status": "failed", "accuracy": 0.5, "best_accuracy": 0.6}) == \
        ", last accuracy 50.00% (best 60.00%)"


def test_chart_ticks_are_round_values_within_the_range():
    from vitlab.tui.widgets.live_panes import nice_ticks, tick_labels

    assert nice_ticks(4.5, 84.7) == [20, 40, 60, 80]  # plotext's own: 84.7, 71.3, 57.9, 31.2, 17.8, 4.5
    assert nice_ticks(74.5, 99.6) == [75, 80, 85, 90, 95]
    assert nice_ticks(0.0012, 0.0031) == [0.0015, 0.002, 0.0025, 0.003]
    assert nice_ticks(2.0, 2.0) == [2.0]
    assert tick_labels([2.56, 2.58, 2.6]) == ["2.56", "2.58", "2.60"] and tick_labels([1, 2, 3]) == ["1", "2", "3"]
    assert tick_labels(nice_ticks(2.58, 2.58)) == ["2.58"]


async def test_live_names_a_run_an_earlier_vitlab_left_training(runs_dir):
    from .fakes import left_training, until_left_training_is_seen

    left_training(runs_dir)
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await until_left_training_is_seen(app, pilot)
        await pilot.press("f2")
        await pilot.pause(0.3)
        app.live.redraw(force=True)
        await pilot.pause()
        text = str(app.live.query_one("#progress-text").render())
        assert "Training in the background, from an earlier vitlab: old/vit-bg" in text


async def test_the_charts_turn_to_the_next_run_at_once_and_a_hidden_log_does_not_keep_the_view_redrawing():
    """Charts redraw at most every few seconds; the next run's start used to wait for that too, and its empty
    chart sat under the previous run's curve. The Log tab, hidden at 80x24, kept every pane redrawing each tick."""
    from vitlab.tui.widgets.live_panes import LossChart

    app = make_app(None, Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        app.state.start_queue(["vit-a", "vit-b"], ["m", "m"])
        app.views.active = "live"
        await pilot.pause()
        for ev in live_events("vit-a"):
            app.post_message(EngineEvent(ev))
        await pilot.pause()
        app.live.redraw(force=True)
        chart = app.query_one(LossChart)
        assert chart._shown[:3] == ("vit-a", "running", len(app.state.runs["vit-a"].steps))
        assert app.live.drawn == app.state.version  # nothing left waiting: the next tick redraws nothing
        app.post_message(EngineEvent(live_events("vit-b")[0]))
        await pilot.pause()
        app.live.redraw()  # not forced, well within the charts' 3 s
        assert chart._shown[0] == "vit-b"
        await pilot.press("3")  # the log, kept back while hidden, is written when its tab shows
        await pilot.pause()
        await pilot.pause()
        assert "vit-b: started" in "\n".join(line.text for line in app.query_one(LogPane).lines)


async def test_the_accuracy_chart_names_the_split_it_is_measured_on():
    """CIFAR's accuracy is measured on its test split (the log said `200 test images`): the chart called it val."""
    from vitlab.tui.widgets.live_panes import AccuracyChart

    app = make_app(None, Path("runs"))
    async with app.run_test(size=(120, 36)) as pilot:
        await show_live_with_one_queued_run(app, pilot)
        chart = app.query_one(AccuracyChart)
        assert chart.border_title == "Accuracy (%)"  # no run has said yet
        started, *rest = live_events()
        app.post_message(EngineEvent(replace(started, eval_split="test"), *rest))
        await pilot.pause()
        app.live.redraw(force=True)
        await pilot.pause()
        assert chart.border_title == "Accuracy (test, %)"
        assert "test acc" in chart.render().plain and "val" not in chart.render().plain
        assert "360 test images" in app.state.log[1][1]
