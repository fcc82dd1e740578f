"""The preset picker: presets in ./presets, the user's own and those shipped with vitlab."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, ListItem, ListView, Static

from ...presets import list_presets
from ...report import runs_count
from ..widgets.jump_list import JumpList


def short_path(path: Path) -> str:
    """presets/x.yaml under the working directory, ~/... under home: the whole absolute path was cut mid-word."""
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        if base.resolve() == Path("/"):  # a container's working directory: usr/lib/... said nothing
            continue
        try:
            return prefix + str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


class PresetPicker(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")
        self.presets = list_presets()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="preset-picker-dialog"):
            yield Static("Load a preset into the queue", classes="dialog-title")
            items = []
            names = [p.name for p in self.presets]
            for p in self.presets:
                text = Text()
                text.append(p.name, style="bold red" if p.error else "bold")
                text.append(f"  {runs_count(p.runs)}" if not p.error else "  invalid", style="dim")
                if p.missing:
                    text.append(f"  needs {', '.join(p.missing)}", style="yellow")
                if names.count(p.name) > 1:  # which is which; otherwise the line under the list says where
                    text.append(f"  {short_path(p.path)}", style="dim")
                items.append(ListItem(Label(text)))  # an invalid one too: highlighted, it shows what is wrong
            yield JumpList(*items, id="preset-list")
            # the keys above the description: a long one ran past the bottom of 24 rows and took the hint along
            yield Static("enter load · escape back · replaces the current queue", classes="dialog-hint")
            yield Static("", id="preset-about", classes="dialog-message")

    def on_mount(self) -> None:
        lst = self.query_one(ListView)
        lst.focus()
        if not self.presets:
            self.query_one("#preset-about", Static).update("No presets found in ./presets or the user preset directory.")

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        lst = self.query_one(ListView)
        if lst.index is None or lst.index >= len(self.presets):
            return
        p = self.presets[lst.index]
        about = Text(p.error, style="red") if p.error else Text(p.description or "(no description)")
        self.query_one("#preset-about", Static).update(about.append(f"  ({short_path(p.path)})", style="dim"))

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        lst = self.query_one(ListView)
        if lst.index is None:
            return
        if (p := self.presets[lst.index]).error is None:
            self.dismiss(p.path)
        else:
            self.notify(f"{p.path} does not load: fix it first (the message above says where).", title="Invalid preset",
                        severity="error", markup=False)
