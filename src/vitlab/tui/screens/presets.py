"""The preset picker: presets in ./presets, the user's own and those shipped with vitlab."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, ListItem, ListView, Static

from ...presets import PresetInfo, list_presets
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
        self.lacking: dict[int, list[str]] = {}  # by index: the runs whose pretrained weights are not here

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="preset-picker-dialog"):
            yield Static("Load a preset into the queue", classes="dialog-title")
            # an invalid one too: highlighted, it shows what is wrong
            yield JumpList(*(ListItem(Label(self.line(p))) for p in self.presets), id="preset-list")
            # the keys above the description: a long one ran past the bottom of 24 rows and took the hint along
            yield Static("enter load · escape back · replaces the current queue", classes="dialog-hint")
            yield Static("", id="preset-about", classes="dialog-message")

    def line(self, p: PresetInfo, lacking: bool = False) -> Text:
        """Its name, runs and what it needs that is not here (which runs lack weights: in its description)."""
        text = Text()
        text.append(p.name, style="bold red" if p.error else "bold")
        text.append(f"  {runs_count(len(p.runs))}" if not p.error else "  invalid", style="dim")
        if needs := [*p.missing, *(["weights"] if lacking else [])]:  # at 80 columns: no room for more
            text.append(f"  needs {', '.join(needs)}", style="yellow")
        if [o.name for o in self.presets].count(p.name) > 1:  # which is which; else the line under the list says
            text.append(f"  {short_path(p.path)}", style="dim")
        return text

    def on_mount(self) -> None:
        lst = self.query_one(ListView)
        lst.focus()
        if not self.presets:
            self.query_one("#preset-about", Static).update("No presets found in ./presets or the user preset directory.")
        self.look_for_weights()

    @work(thread=True, exit_on_error=False)
    def look_for_weights(self) -> None:
        """The runs whose pretrained weights are not on this machine, said beside their preset (they were only said
        at ctrl+r, after the dataset the picker had asked for). In a thread: it reads the disk and the cache."""
        from ...engine.weights import lacking_weights

        for i, p in enumerate(self.presets):
            if lacking := lacking_weights(p.runs):
                self.app.call_from_thread(self.show_lacking, i, lacking)

    def show_lacking(self, index: int, lacking: list[str]) -> None:
        self.lacking[index] = lacking
        if self.is_attached and index < len(items := list(self.query(ListItem))):
            items[index].query_one(Label).update(self.line(self.presets[index], lacking=True))
            if self.query_one(ListView).index == index:
                self.describe(index)

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        lst = self.query_one(ListView)
        if lst.index is not None and lst.index < len(self.presets):
            self.describe(lst.index)

    def describe(self, index: int) -> None:
        p = self.presets[index]
        about = Text(p.error, style="red") if p.error else Text(p.description or "(no description)")
        about.append(f"  ({short_path(p.path)})", style="dim")
        if lacking := self.lacking.get(index):
            about.append(f"\nNot on this machine: the weights of {', '.join(lacking)} (ctrl+r says how to get them).",
                         style="yellow")
        self.query_one("#preset-about", Static).update(about)

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        lst = self.query_one(ListView)
        if lst.index is None:
            return
        if (p := self.presets[lst.index]).error is None:
            self.dismiss(p.path)
        else:
            self.notify(f"{p.path} does not load: fix it first (the message above says where).", title="Invalid preset",
                        severity="error", markup=False)
