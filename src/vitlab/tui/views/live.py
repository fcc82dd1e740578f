"""The Live view: progress, loss and accuracy charts, memory, throughput, queue status and a log.

Wide terminals show every pane at once; small ones (80x24) keep progress and the figures in view and put
the charts and the log in tabs. The panes hold no data of their own, so switching layout loses nothing.
"""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from ..bridge import LiveState
from ..widgets.live_panes import (AccuracyChart, LogPane, LossChart, MemoryPane, Pane, ProgressPane, RunsPane,
                                  ThroughputPane)

WIDE_MIN = (110, 32)  # columns, rows of the terminal for the all-panes layout


class LiveView(Vertical):
    wide = reactive(False, recompose=True)

    def __init__(self, state: LiveState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.drawn = -1

    def compose(self) -> ComposeResult:
        yield ProgressPane(id="progress", classes="pane")
        side = Vertical(MemoryPane(id="memory", classes="pane"), ThroughputPane(id="throughput", classes="pane"),
                        RunsPane(id="runs", classes="pane"), id="live-side", classes="-wide" if self.wide else "")
        if self.wide:
            with Horizontal(id="live-main"):
                yield LossChart(id="loss", classes="pane chart")
                yield AccuracyChart(id="accuracy", classes="pane chart")
                yield side
            yield LogPane(id="log", classes="pane")
        else:
            with Horizontal(id="live-main"):
                with TabbedContent(id="live-tabs"):
                    with TabPane("Loss 1", id="tab-loss"):
                        yield LossChart(id="loss", classes="pane chart")
                    with TabPane("Accuracy 2", id="tab-accuracy"):
                        yield AccuracyChart(id="accuracy", classes="pane chart")
                    with TabPane("Log 3", id="tab-log"):
                        yield LogPane(id="log", classes="pane")
                yield side

    def on_mount(self) -> None:
        self.fit(self.app.size.width, self.app.size.height)
        self.call_after_refresh(self.redraw, True)

    def fit(self, width: int, height: int) -> None:
        self.wide = width >= WIDE_MIN[0] and height >= WIDE_MIN[1]

    def watch_wide(self) -> None:
        self.app.refresh_bindings()  # the tabs' keys (1 2 3) only where there are tabs

    async def recompose(self) -> None:
        """A change of layout builds new, empty panes: draw them once they are mounted (drawn before, into the
        old ones, the view stayed blank until the state changed again)."""
        await super().recompose()
        self.drawn = -1
        self.call_after_refresh(self.redraw, True)

    def redraw(self, force: bool = False) -> None:
        """Redraw the panes from the state, if it changed since the last redraw (or `force`)."""
        if not self.is_mounted or (not force and self.drawn == self.state.version):
            return
        waiting = False
        for pane in self.query(Widget):
            if isinstance(pane, Pane):
                waiting |= pane.update_from(self.state, force)
        self.drawn = -1 if waiting else self.state.version  # something deferred: look again next time

    @on(TabbedContent.TabActivated, "#live-tabs")
    def _tab_shown(self) -> None:
        self.call_after_refresh(self.redraw, True)  # what a hidden pane kept back, drawn now at its width

    def show_tab(self, tab: str) -> None:
        if self.is_mounted and not self.wide:
            self.query_one("#live-tabs", TabbedContent).active = tab
