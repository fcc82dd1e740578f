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
