"""The question dialog: answered by its buttons, their first letters, the arrow keys and enter, or escape."""
from __future__ import annotations

from pathlib import Path

from vitlab.tui.screens.dialogs import Choice

from .conftest import form_ready, make_app

ANSWERS = [("leave", "Leave it training", "primary"), ("cancel", "Cancel it and quit", "error"),
           ("stay", "Stay", "default")]


KEYS_AND_ANSWERS = [(["enter"], "leave"), (["right", "enter"], "cancel"), (["right", "right", "left", "enter"], "cancel"),
                    (["s"], "stay"), (["escape"], None)]


async def test_choice_answers_by_arrows_letters_and_escape():
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        for keys, answer in KEYS_AND_ANSWERS:  # one app, a fresh dialog each time
            answers = []
            app.push_screen(Choice("Quit vitlab?", "A run is training.", ANSWERS), answers.append)
            await pilot.pause()
            await pilot.press(*keys)
            await pilot.pause()
            assert answers == [answer], keys
            assert not isinstance(app.screen, Choice)
        app.push_screen(Choice("Quit vitlab?", "A run is training.", ANSWERS))
        await pilot.pause()
        keys = [[span.style for span in button.label.spans] for button in app.screen.query("Button")]
        assert keys == [["underline"]] * 3  # each button shows the key that answers it
        await pilot.press("escape")
        # Enter never takes a destructive first answer: "Replace the queue?" and "Cancel the run?" led with one
        for answers_, safe in (([("replace", "Replace it", "error"), ("back", "Back", "default")], "back"),
                               ([("run", "Cancel this run", "error"), ("all", "Stop the queue (+1 queued)", "warning"),
                                 ("keep", "Keep training", "default")], "keep")):
            answers = []
            app.push_screen(Choice("Sure?", "", answers_), answers.append)
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert answers == [safe]


async def test_ctrl_c_says_how_to_quit_in_plain_words():
    """vitlab's toasts are plain text; Textual's own ctrl+c hint is markup, and showed as '[b]ctrl+q[/b]'."""
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await form_ready(pilot)
        app.set_focus(None)  # in a text field ctrl+c copies
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["Press ctrl+q to quit the app"]


async def test_escape_closes_the_keys_panel():
    app = make_app(None, Path("runs"))
    async with app.run_test(size=(100, 30)) as pilot:
        await form_ready(pilot)
        app.action_show_help_panel()
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        app.set_focus(None)
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_a_cancel_question_about_a_run_that_ended_closes(runs_dir):
    """"Cancel vit-a?" left open while vit-a finished and vit-b trained behind it: answering it cancelled nothing
    (or, once, the wrong run); it closes when vit-a ends and says so. Its footer lists no Live keys meanwhile."""
    from dataclasses import replace

    from textual.widgets import Footer

    from vitlab.tui.bridge import EngineEvent

    from .fakes import finished_event, live_events

    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        app.state.start_queue(["vit-a", "vit-b"], ["ViT p2 d32 h2 L1"] * 2)
        app.post_message(EngineEvent(*live_events()))
        app.views.active = "live"
        app.running, app.nproc = True, 2  # as while its training process streams, on two processes
        await pilot.pause()
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert isinstance(app.screen, Choice) and "Cancel vit-a?" in app.screen.message
        # a queue of several processes continues on as many (ctrl+r with Processes 2; it used to train afresh)
        assert "`vitlab resume RUN_DIR --nproc 2`; ctrl+r on this queue with Processes 2 offers" in app.screen.message
        live_key = app.screen_stack[0].active_bindings.get("2")  # the footer, under the dialog: no Live keys
        assert live_key is None or not live_key.enabled
        footer = app.screen_stack[0].query_one(Footer)
        assert not footer.display  # nor any of the view behind (ctrl+n Add run under Save did nothing)
        app.post_message(EngineEvent(finished_event(), replace(live_events("vit-b")[0], index=1)))
        await pilot.pause()
        await pilot.pause()
        assert not isinstance(app.screen, Choice) and footer.display
        assert "vit-a ended before an answer; nothing was cancelled" in app.told[-1].message
        app.state.runs["vit-b"].checkpointed = False  # train.checkpoint off: nothing to resume it from
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert "Cancel vit-b?" in app.screen.message and "train.checkpoint is off: it cannot resume" in \
            app.screen.message and "resume it later" not in app.screen.message
        await pilot.press("escape")
        app.running = False


async def test_keeping_the_run_says_so(runs_dir, monkeypatch):
    """The cancel question opens on "Keep training": Enter closed it without a word, and the user took it for a
    cancel. Keeping a run (Enter, k or escape) says that nothing was cancelled, as a toast and in the Live log."""
    from vitlab.tui.bridge import EngineEvent

    from .fakes import left_training, live_events, until_left_training_is_seen

    left_training(runs_dir)
    gone = 2**31 - 1  # its process, as its heartbeat names it: no such pid, so a wrong answer signals nothing
    monkeypatch.setattr("vitlab.engine.store.training_process", lambda run_dir: gone)
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await until_left_training_is_seen(app, pilot)
        await pilot.press("ctrl+x")  # nothing trains here: stop the run an earlier vitlab left training?
        await pilot.pause()
        assert app.screen.title_text == "Stop the run left training?"
        await pilot.press("enter")
        await pilot.pause()
        assert app.told[-1].message == f"old/vit-bg keeps training in process {gone}; nothing was stopped."
        app.state.start_queue(["vit-a"], ["ViT p2 d32 h2 L1"])
        app.post_message(EngineEvent(*live_events()))
        app.views.active = "live"
        app.running = True  # as while its training process streams
        await pilot.pause()
        for keys in (["enter"], ["k"], ["escape"]):
            told = len(app.told)
            await pilot.press("ctrl+x")
            await pilot.pause()
            assert isinstance(app.screen, Choice)
            await pilot.press(*keys)
            await pilot.pause()
            assert not isinstance(app.screen, Choice) and app.running
            assert [t.message for t in app.told[told:]] == ["vit-a keeps training; nothing was cancelled."], keys
            assert app.state.log[-1][1] == "vit-a: kept training (not cancelled)"
        app.running = False
