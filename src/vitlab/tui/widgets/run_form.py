"""The form for one run: model kind, the fields of that kind, data and training; validated as you type."""
from __future__ import annotations

from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from ...config import RunConfig
from ..formspec import SECTION_TITLES, SPECS, FormResult, Spec, native_size, validate, values_from_config

KIND_LABELS = {"vit": "ViT", "swin": "Swin", "resnet18": "ResNet-18"}
# Fields composed before the first paint (the run name and ViT's, what a terminal shows first); the rest
# mount right after it. Each row costs ~15-20 ms to mount and style: all of them held the first paint ~0.5 s.
FIRST_PAINT_FIELDS = 12


class TickBox(Checkbox):
    """A checkbox whose unticked box is empty, not a dimmed X: the two states differ in plain text too (NO_COLOR,
    a screen reader, a copied screen), not by colour alone."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # read by Checkbox when it draws the box
        return "X" if self.value else " "


def make_widget(spec: Spec) -> Widget:
    wid = spec.widget_id
    if spec.type in ("select", "tristate", "autobool"):
        labels = KIND_LABELS if spec.path == "model.kind" else {}
        options = [(labels.get(o, o), o) for o in spec.options]
        return Select(options, value=spec.options[0], allow_blank=False, compact=True, id=wid,
                      classes="field-input")
    if spec.type == "bool":
        return TickBox("", compact=True, id=wid, classes="field-input")
    # focus selects the value, so typing replaces it (Tab to "Heads 3", type 7: 7, not 37), and the run name
    # needs no ctrl+u first: typed in the app's busy first second, ctrl+u (a binding, handled after the key
    # has bubbled up to the app) could land after the letters that followed it and wipe them.
    # Numbers are typed as text and checked by the schema: Input's integer and number types drop the keys they
    # do not take, so "8.5" became 85 and a learning rate of "0,001" became 1, without a word.
    return Input(placeholder=spec.placeholder, compact=True, id=wid, classes="field-input")


def field_rows(specs: list[Spec] | tuple[Spec, ...], section: str | None = None) -> list[Widget]:
    """A row (label, input) per field, with a title where a new section starts after `section`."""
    rows: list[Widget] = []
    for spec in specs:
        if spec.section != section:
            section = spec.section
            rows.append(Static(SECTION_TITLES[section], classes="form-section"))
        widget = make_widget(spec)
        if spec.tooltip:
            widget.tooltip = spec.tooltip
        # the message beside the input is mounted when the field is first wrong (faster start)
        rows.append(Horizontal(Label(spec.label, classes="field-label"), widget, id=f"row-{spec.widget_id}",
                               classes="field-row" + (f" kind-{spec.kind}" if spec.kind else "")))
    return rows


class RunForm(VerticalScroll):
    """Posts `RunForm.Validated` after every change, with the config (or None) and the errors."""

    class Validated(Message):
        def __init__(self, result: FormResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base: dict[str, Any] | None = None  # the run being edited (keeps fields the form hides)
        self.taken_names: set[str] = set()  # names of other queued runs
        self.result = FormResult(None)
        self._shown_errors: dict[str, str] = {}
        self._check_pending = False
        self._loaded = False  # composing widgets report their blank values: no check (and no red) before a run
        self._size_set_for_swin = False  # the image size is the 224 that choosing Swin put there
        self._loaded_values: dict[str, Any] = {}  # the last loaded run's, for fields not mounted yet
        self.complete = False  # every field mounted

    def compose(self) -> ComposeResult:
        yield Static("", id="form-target")
        yield Static("", id="form-general", classes="field-error", markup=False)  # errors quote input
        yield from field_rows(SPECS[:FIRST_PAINT_FIELDS])

    def on_mount(self) -> None:
        self.border_title = "Run"
        self.call_after_refresh(self._mount_rest)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """A wide form shows the focused field's help under it (the help was a tooltip, for a mouse). Mounted on
        the first focus: a fast first paint."""
        row, hint = event.widget.parent, event.widget.tooltip
        if not (isinstance(row, Horizontal) and row.has_class("field-row") and isinstance(hint, str) and hint):
            return
        if not row.query(".field-hint"):
            row.mount(Static(hint, classes="field-hint", markup=False))
        row.add_class("-hinted")
        self.call_after_refresh(row.scroll_visible, animate=False)  # a field on the last line: its help below it

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if isinstance(row := event.widget.parent, Horizontal):
            row.remove_class("-hinted")

    async def _mount_rest(self) -> None:
        await self.mount_all(field_rows(SPECS[FIRST_PAINT_FIELDS:], SPECS[FIRST_PAINT_FIELDS - 1].section))
        self.complete = True
        self._show(self._loaded_values, SPECS[FIRST_PAINT_FIELDS:])
        self._show_kind(self.kind)
        self._native_hint(str(self.query_one("#f-data-dataset", Select).value))
        self._momentum_for(str(self.query_one("#f-train-optimizer", Select).value))
        if self._loaded:
            self.check()

    def _field(self, widget_id: str) -> Widget | None:
        """The widget, or None while it is not mounted yet."""
        try:
            return self.query_one(f"#{widget_id}")  # query_one caches: values() runs on every keystroke
        except NoMatches:
            return None

    # -- values -------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, spec in enumerate(SPECS):
            # the later fields count once their mounting is done: mounted, they hold no value until _show
            # (a Select reads Select.NULL), and ctrl+r in the app's first seconds crashed on it
            widget = self._field(spec.widget_id) if self.complete or i < FIRST_PAINT_FIELDS else None
            out[spec.widget_id] = self._loaded_values.get(spec.widget_id) if widget is None else widget.value
        return out

    def load(self, cfg: RunConfig) -> None:
        """Show `cfg` in the widgets (the `Validated` message follows)."""
        self.base = cfg.resolved()
        self._size_set_for_swin = False  # a loaded run's image size is its own, whatever its kind
        self._loaded_values = values_from_config(cfg)
        self._show(self._loaded_values, SPECS)
        self._show_kind(cfg.model.kind)
        self._native_hint(cfg.data.dataset)
        self._momentum_for(cfg.train.optimizer)
        self._loaded = True
        self.check()

    def _show(self, values: dict[str, Any], specs) -> None:
        for spec in specs:
            widget = self._field(spec.widget_id)
            if widget is not None and spec.widget_id in values and widget.value != values[spec.widget_id]:
                widget.value = values[spec.widget_id]
                if isinstance(widget, Input):  # else the cursor stays where the old value's end was, mid-word
                    widget.cursor_position = len(widget.value)

    @property
    def kind(self) -> str:
        return self.query_one("#f-model-kind", Select).value  # type: ignore[return-value]

    def _show_kind(self, kind: str) -> None:
        for other in ("vit", "swin", "resnet18"):
            for row in self.query(f".kind-{other}"):
                row.display = other == kind

    def _swin_size(self, kind: str) -> None:
        """Choosing Swin with the image size left native (8 or 32 px, which Swin cannot run) sets it to 224,
        Swin's smallest, rather than greeting the choice with an error; leaving Swin again, with that size
        untouched, goes back to native."""
        size, weights = self._field("f-data-image_size"), self._field("f-swin-weights")
        if size is None or weights is None:
            return
        if kind == "swin" and not size.value and not weights.value:
            size.value = "224"  # type: ignore[attr-defined]
            self._size_set_for_swin = True
        elif kind != "swin" and self._size_set_for_swin:
            self._size_set_for_swin = False
            if size.value == "224":  # type: ignore[attr-defined]
                size.value = ""  # type: ignore[attr-defined]

    def _native_hint(self, dataset: str) -> None:
        if (size := self._field("f-data-image_size")) is not None:
            size.placeholder = f"native ({native_size(dataset)})"  # type: ignore[attr-defined]

    def _momentum_for(self, optimizer: str) -> None:
        """Momentum is SGD's alone: greyed out for Adam/AdamW, where a value typed there would change nothing."""
        if (momentum := self._field("f-train-momentum")) is not None:
            momentum.disabled = optimizer != "sgd"

    # -- validation ---------------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Message) -> None:
        control = getattr(event, "control", None) or getattr(event, "select", None)
        if control is not None and control.id == "f-model-kind":
            self._show_kind(str(control.value))
            self._swin_size(str(control.value))
        if control is not None and control.id == "f-data-dataset":
            self._native_hint(str(control.value))
        if control is not None and control.id == "f-train-optimizer":
            self._momentum_for(str(control.value))
        if self._loaded and not self._check_pending:  # a burst of changes (loading a run) validates once
            self._check_pending = True
            self.call_later(self.check)

    def check(self) -> FormResult:
        self._check_pending = False
        values = self.values()
        base = self.base if (self.base or {}).get("model", {}).get("kind") == values["f-model-kind"] else {
            k: v for k, v in (self.base or {}).items() if k != "model"}
        self.result = validate(values, base, {n.lower() for n in self.taken_names})
        shown = {}
        for wid in set(self.result.errors) | set(self._shown_errors):
            message = self.result.errors.get(wid, "")
            row = self._field(f"row-{wid}")
            if row is None:  # not mounted yet: shown by the check that follows its mounting
                continue
            shown[wid] = message
            if self._shown_errors.get(wid, "") == message:
                continue
            err = next(iter(row.query(f"#{wid}-err")), None)
            if err is None:
                err = Static("", classes="field-error", id=f"{wid}-err", markup=False)
                row.mount(err)
            err.update(message)
            err.display = bool(message)
            row.set_class(bool(message), "-invalid")
        self._shown_errors = {wid: message for wid, message in shown.items() if message}
        general = self.query_one("#form-general", Static)
        general.update("\n".join(self.result.general))
        general.display = bool(self.result.general)
        self.post_message(self.Validated(self.result))
        return self.result

    def first_error(self) -> tuple[Widget | None, str] | None:
        """The first marked field in form order and '<its label>: <its error>' (at 80x24 it may be below the
        fold, so a message must name it)."""
        for spec in SPECS:
            if spec.widget_id in self.result.errors:
                return self._field(spec.widget_id), f"{spec.label}: {self.result.errors[spec.widget_id]}"
        return None

    def set_target(self, text: str) -> None:
        self.query_one("#form-target", Static).update(text)
