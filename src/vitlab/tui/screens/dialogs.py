"""Small modal dialogs. Each dismisses with a result (None when cancelled with escape)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class Choice(ModalScreen[str | None]):
    """A question with a few answers, each a button with a key (its first letter). Escape answers None; the
    arrow keys move between the answers, as a row of buttons invites. Enter takes the first answer that loses
    nothing (not an "error" or "warning" one): a destructive answer is chosen by its key or on purpose."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back"), Binding("left", "app.focus_previous", show=False),
                Binding("right", "app.focus_next", show=False)]

    def __init__(self, title: str, message: str, answers: list[tuple[str, str, str]]) -> None:
        """answers: (result, label, variant)."""
        super().__init__(classes="dialog-screen")
        self.title_text, self.message, self.answers = title, message, answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-message", markup=False)  # it quotes names and paths
            with Horizontal(classes="dialog-buttons"):
                for result, label, variant in self.answers:  # the key underlined: "Stop it" answers to s
                    yield Button(Content.assemble((label[0], "underline"), label[1:]), variant=variant,
                                 id=f"answer-{result}")

    def on_mount(self) -> None:
        buttons = list(self.query(Button))
        next((b for b in buttons if b.variant not in ("error", "warning")), buttons[0]).focus()

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id).removeprefix("answer-"))

    def on_key(self, event) -> None:
        for result, label, _ in self.answers:
            if event.key == label[0].lower():
                event.stop()
                self.dismiss(result)


class PathPrompt(ModalScreen[dict | None]):
    """Ask for a few text values (e.g. preset name and file). Enter in the last field confirms. `check` sees the
    values first: a message it returns is shown in the dialog, which stays open with what was typed."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, title: str, fields: list[tuple[str, str, str]], ok: str = "Save", note: str = "",
                 check: Callable[[dict], str | None] | None = None,
                 follows: tuple[str, str, Callable[[str], str]] | None = None) -> None:
        """fields: (key, label, initial value). follows: (source, target, rule): the target field shows
        rule(source) as the source is typed, until it is edited itself (the file named after the preset)."""
        super().__init__(classes="dialog-screen")
        self.title_text, self.fields, self.ok, self.note, self.check = title, fields, ok, note, check
        self.follows = follows
        self._followed = dict((key, value) for key, _, value in fields).get(follows[0], "") if follows else ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            for key, label, value in self.fields:
                yield Label(label, classes="dialog-label")
                yield Input(value, id=f"in-{key}", classes="dialog-input", compact=True)
            yield Static(self.note, id="dialog-note", classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    @on(Input.Changed)
    def _follow(self, event: Input.Changed) -> None:
        note = self.query_one("#dialog-note", Static)
        if note.has_class("dialog-problem"):  # what was wrong may be fixed now: back to the note
            note.update(self.note)
            note.remove_class("dialog-problem")
        if not self.follows or event.input.id != f"in-{self.follows[0]}":
            return
        source, target, rule = self.follows
        field = self.query_one(f"#in-{target}", Input)
        if field.value == rule(self._followed):  # not edited by hand: it follows
            field.value = rule(event.value.strip())
        self._followed = event.value.strip()

    def values(self) -> dict:
        return {key: self.query_one(f"#in-{key}", Input).value.strip() for key, _, _ in self.fields}

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        i = inputs.index(event.input)
        if i + 1 < len(inputs):
            inputs[i + 1].focus()
        else:
            self.confirm()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.confirm()
        else:
            self.dismiss(None)

    def confirm(self) -> None:
        values = self.values()
        problem = self.check(values) if self.check else None
        if problem:
            note = self.query_one("#dialog-note", Static)
            note.update(problem)
            note.add_class("dialog-problem")
            return
        self.dismiss(values)


# An experiment not named yet: the title, the runs directory (runs/my-experiment) and the Save dialog say the same
DEFAULT_EXPERIMENT = "my-experiment"


def default_preset_path(directory: Path, name: str) -> str:
    return str(directory / f"{name or DEFAULT_EXPERIMENT}.yaml")
