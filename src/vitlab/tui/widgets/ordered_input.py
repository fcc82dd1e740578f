"""An Input whose editing keys take effect in the order they were typed."""
from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """Textual runs an Input's own key bindings (End, Backspace, ctrl+u, the arrows, ...) only once the key has
    bubbled up to the app, while printable keys are handled here at once. Keys that arrive faster than the app
    handles them (its busy first second, keystrokes replayed over SSH) were applied out of order: "End x" as
    "x End" (x replaced the value selected on focus), ctrl+u after the digits typed next, wiping them. Here the
    Input's own bindings run as their key arrives, in line with the characters, as Textual's open fix for it
    proposes (textual#6605, #6631). Keys bound elsewhere, Tab included, still take the long way."""

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority and await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()
                    return
        await super()._on_key(event)
