"""The form for one run: model kind, the fields of that kind, data and training; validated as you type."""
from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from ...config import RunConfig
from ..formspec import SECTION_TITLES, SPECS, FormResult, Spec, native_size, validate, values_from_config

KIND_LABELS = {"vit": "ViT", "swin": "Swin", "resnet18": "ResNet-18"}


def make_widget(spec: Spec) -> Widget:
    wid = spec.widget_id
    if spec.type in ("select", "tristate", "autobool"):
        labels = KIND_LABELS if spec.path == "model.kind" else {}
        options = [(labels.get(o, o), o) for o in spec.options]
        return Select(options, value=spec.options[0], allow_blank=False, compact=True, id=wid,
                      classes="field-input")
    if spec.type == "bool":
        return Checkbox("", compact=True, id=wid, classes="field-input")
    kind = {"int": "integer", "opt_int": "integer", "float": "number"}.get(spec.type, "text")
    return Input(placeholder=spec.placeholder, type=kind, compact=True, id=wid, classes="field-input",
                 select_on_focus=False)


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

    def compose(self) -> ComposeResult:
        yield Static("", id="form-target")
        yield Static("", id="form-general", classes="field-error")
        section = None
        for spec in SPECS:
            if spec.section != section:
                section = spec.section
                yield Static(SECTION_TITLES[section], classes="form-section")
            classes = "field-row" + (f" kind-{spec.kind}" if spec.kind else "")
            widget = make_widget(spec)
            if spec.tooltip:
                widget.tooltip = spec.tooltip
            with Horizontal(classes=classes, id=f"row-{spec.widget_id}"):
                yield Label(spec.label, classes="field-label")
                yield widget  # the message beside it is mounted when the field is first wrong (faster start)

    def on_mount(self) -> None:
        self.border_title = "Run"

    # -- values -------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in SPECS:
            widget = self.query_one(f"#{spec.widget_id}")
            out[spec.widget_id] = widget.value
        return out

    def load(self, cfg: RunConfig, *, base: dict[str, Any] | None = None) -> None:
        """Show `cfg` in the widgets (the `Validated` message follows)."""
        self.base = cfg.resolved() if base is None else base
        for wid, value in values_from_config(cfg).items():
            widget = self.query_one(f"#{wid}")
            if widget.value != value:
                widget.value = value
        self._show_kind(cfg.model.kind)
        self._native_hint(cfg.data.dataset)
        self._loaded = True
        self.check()

    @property
    def kind(self) -> str:
        return self.query_one("#f-model-kind", Select).value  # type: ignore[return-value]

    def _show_kind(self, kind: str) -> None:
        for other in ("vit", "swin", "resnet18"):
            for row in self.query(f".kind-{other}"):
                row.display = other == kind

    def _native_hint(self, dataset: str) -> None:
        self.query_one("#f-data-image_size", Input).placeholder = f"native ({native_size(dataset)})"

    # -- validation ---------------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Message) -> None:
        control = getattr(event, "control", None) or getattr(event, "select", None)
        if control is not None and control.id == "f-model-kind":
            self._show_kind(str(control.value))
        if control is not None and control.id == "f-data-dataset":
            self._native_hint(str(control.value))
        if self._loaded and not self._check_pending:  # a burst of changes (loading a run) validates once
            self._check_pending = True
            self.call_later(self.check)

    def check(self) -> FormResult:
        self._check_pending = False
        values = self.values()
        base = self.base if (self.base or {}).get("model", {}).get("kind") == values["f-model-kind"] else {
            k: v for k, v in (self.base or {}).items() if k != "model"}
        self.result = validate(values, base, {n.lower() for n in self.taken_names})
        for wid in set(self.result.errors) | set(self._shown_errors):
            message = self.result.errors.get(wid, "")
            if self._shown_errors.get(wid, "") == message:
                continue
            row = self.query_one(f"#row-{wid}")
            err = next(iter(row.query(f"#{wid}-err")), None)
            if err is None:
                err = Static("", classes="field-error", id=f"{wid}-err")
                row.mount(err)
            err.update(message)
            err.display = bool(message)
            row.set_class(bool(message), "-invalid")
        self._shown_errors = dict(self.result.errors)
        general = self.query_one("#form-general", Static)
        general.update("\n".join(self.result.general))
        general.display = bool(self.result.general)
        self.post_message(self.Validated(self.result))
        return self.result

    def first_error_field(self) -> Widget | None:
        for spec in SPECS:
            if spec.widget_id in self.result.errors:
                return self.query_one(f"#{spec.widget_id}")
        return None

    def set_target(self, text: str) -> None:
        self.query_one("#form-target", Static).update(text)
