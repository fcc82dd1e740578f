"""A ListView whose Home/End/PageUp/PageDown move the highlight (Textual's only scroll, leaving it behind)."""
from __future__ import annotations

from textual.binding import Binding
from textual.widgets import ListView


class JumpList(ListView):
    BINDINGS = [
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
    ]

    def action_jump(self, where: int) -> None:
        if len(self):
            self.index = where % len(self)

    def action_page(self, direction: int) -> None:
        """By the items a page shows, less one (a queue item is two lines: counting lines jumped past the page)."""
        if len(self):
            item = self.highlighted_child or self.children[0]
            step = max(1, self.scrollable_content_region.height // max(1, item.outer_size.height) - 1)
            self.index = min(max((self.index or 0) + direction * step, 0), len(self) - 1)
