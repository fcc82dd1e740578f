"""The run queue: the runs that ctrl+r trains, in order; edit, reorder and remove them from the keyboard."""
from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Label, ListItem

from ...config import RunConfig, run_label
from .jump_list import JumpList


class QueueList(JumpList):
    BINDINGS = [
        Binding("enter", "edit", "Edit in form"),
        Binding("delete", "remove", "Remove"),  # no letter: one typed meaning the form took a run away
        Binding("shift+up,K", "move(-1)", "Move up"),
        Binding("shift+down,J", "move(1)", "Move down"),
    ]

    class Action(Message):
        def __init__(self, action: str, index: int, step: int = 0) -> None:
            super().__init__()
            self.action = action
            self.index = index
            self.step = step

    def show(self, runs: list[RunConfig], editing: int | None, select: int | None = None) -> None:
        """List the runs; `select` (else the row selected before) is highlighted once the new rows are mounted:
        set at once, the highlight went to rows about to be removed, and the selection was invisible."""
        target = select if select is not None else self.index or 0
        self.clear()
        width = (self.content_size.width or 30) - 2  # each item's padding
        texts = [self._text(i, run, editing, width) for i, run in enumerate(runs)]
        height = self.content_size.height  # 0 before the first layout: no scrollbar assumed then
        if height and sum(len(t.plain.splitlines()) for t in texts) > height:  # a scrollbar will take room
            texts = [self._text(i, run, editing, width - self.styles.scrollbar_size_vertical)
                     for i, run in enumerate(runs)]
        self.extend(ListItem(Label(text)) for text in texts)
        if runs:
            self.call_after_refresh(self._select, min(target, len(runs) - 1))

    @staticmethod
    def _text(i: int, run: RunConfig, editing: int | None, room: int) -> Text:
        text = Text()
        text.append("✎ " if i == editing else f"{i + 1} ", style="bold" if i == editing else "dim")
        text.append(run.name, style="bold")
        label = run_label(run)  # beside the name where it fits, else under it: never cut
        fits = len(str(i + 1)) + 1 + len(run.name) + 2 + len(label) <= room
        text.append(f"  {label}\n  " if fits else f"\n  {label}\n  ", style="dim")
        d, t = run.data, run.train
        line = f"{d.dataset} {d.size}px · {t.epochs} ep · {t.batch_size}x{t.accumulation_steps}"
        if 2 + len(line) > room:  # at 80 columns "cifar100 32px · 10 ep · 64x1" lost its batch to the border
            line = f"{d.dataset} {d.size}px {t.epochs}ep {t.batch_size}x{t.accumulation_steps}"
        text.append(line, style="dim")
        return text

    def _select(self, index: int) -> None:
        if index < len(self):
            self.index = index

    def _post(self, action: str, step: int = 0) -> None:
        if self.index is not None and len(self):
            self.post_message(self.Action(action, self.index, step))

    def action_edit(self) -> None:
        self._post("edit")

    def action_remove(self) -> None:
        self._post("remove")

    def action_move(self, step: int) -> None:
        self._post("move", step)
