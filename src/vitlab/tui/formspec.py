"""The run form as data: which fields it shows, how widget values become a config dict, and how the
config models' errors map back onto fields. Pure Python (no Textual), validated by the same models as the CLI.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..config import (MODEL_CLASSES, NATIVE_SIZE, DataConfig, ResNet18Model, RunConfig, SwinModel, TrainConfig,
                      ViTModel)


@dataclass(frozen=True)
class Spec:
    section: str  # "", "model", "data", "train"
    key: str
    label: str
    type: str  # int, float, str, opt_int, opt_str, select, bool, tristate (None/bool), autobool ("auto"/bool)
    options: tuple[str, ...] = ()
    kind: str | None = None  # model kind this field belongs to (None: every kind)
    placeholder: str = ""
    tooltip: str = ""

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def widget_id(self) -> str:
        parts = ["f", self.kind or self.section or "run", self.key]
        return "-".join(parts)


def _options(model, name) -> tuple[str, ...]:
    return tuple(model.model_fields[name].annotation.__args__)


SPECS: tuple[Spec, ...] = (
    Spec("", "name", "Run name", "str", placeholder="e.g. vit-small", tooltip="Letters, digits, . _ + -"),
    Spec("model", "kind", "Model", "select", tuple(MODEL_CLASSES),
         tooltip="vit from scratch; swin from Hugging Face, pretrained or not; resnet18, the CNN baseline"),
    # ViT
    Spec("model", "patch_size", "Patch size", "int", kind="vit", tooltip="Pixels per patch side; divides the image size"),
    Spec("model", "embed_dim", "Embed dim", "int", kind="vit",
         tooltip="Width of each token; params grow with its square"),
    Spec("model", "heads", "Heads", "int", kind="vit", tooltip="Must divide the embed dim"),
    Spec("model", "layers", "Layers", "int", kind="vit", tooltip="Transformer blocks, one after another"),
    Spec("model", "mlp_ratio", "MLP ratio", "float", kind="vit", tooltip="MLP hidden width = ratio x embed dim"),
    Spec("model", "mlp_dim", "MLP dim", "opt_int", kind="vit", placeholder="from ratio",
         tooltip="Hidden width of the MLP; overrides the ratio"),
    Spec("model", "stem", "Stem", "select", _options(ViTModel, "stem"), kind="vit",
         tooltip="patchify: one strided conv; conv: stride-2 3x3 convs + BatchNorm down to the patch size"),
    Spec("model", "act", "Activation", "select", _options(ViTModel, "act"), kind="vit"),
    Spec("model", "class_token", "Class token", "bool", kind="vit",
         tooltip="Classify from a [CLS] token; off: from the mean of the patch tokens"),
    Spec("model", "final_norm", "Final norm", "bool", kind="vit", tooltip="LayerNorm before the classifier"),
    # Swin
    Spec("model", "variant", "Variant", "select", _options(SwinModel, "variant"), kind="swin"),
    Spec("model", "pretrained", "Pretrained", "bool", kind="swin",
         tooltip="Start from ImageNet-1k weights on this machine (vitlab never downloads)"),
    Spec("model", "weights", "Weights", "opt_str", kind="swin", placeholder="hub id or local dir",
         tooltip="A save_pretrained directory or a hub id in the local Hugging Face cache"),
    # ResNet-18
    Spec("model", "weights", "Weights", "opt_str", kind="resnet18", placeholder="none (scratch)",
         tooltip="A local state-dict file"),
    Spec("model", "stem", "Stem", "select", _options(ResNet18Model, "stem"), kind="resnet18",
         tooltip="imagenet: torchvision's 7x7/2 + max-pool; cifar: 3x3/1, no max-pool, for 32 px images"),
    # data
    Spec("data", "dataset", "Dataset", "select", _options(DataConfig, "dataset"),
         tooltip="digits comes with scikit-learn (offline); CIFAR needs its files under Root"),
    Spec("data", "root", "Root", "str", tooltip="Where the dataset lives"),
    Spec("data", "download", "Download", "bool",
         tooltip="CIFAR: fetch it from its official site into Root when it is missing (needs internet)"),
    Spec("data", "image_size", "Image size", "opt_int", placeholder="native",
         tooltip="Resize images to this many pixels a side"),
    Spec("data", "augment", "Augment", "tristate", ("auto", "on", "off"),
         tooltip="auto: random crop + flip for CIFAR, none otherwise"),
    Spec("data", "limit_train", "Train images", "opt_int", placeholder="all",
         tooltip="Use the first N training images: a quick try before the real run"),
    Spec("data", "limit_val", "Val images", "opt_int", placeholder="all",
         tooltip="Evaluate on the first N images only: faster, noisier"),
    Spec("data", "holdout", "Held-out val", "opt_int", placeholder="none",
         tooltip="CIFAR: evaluate on N training images held out (e.g. 5000), so the test split stays unseen"),
    # train
    Spec("train", "epochs", "Epochs", "int", tooltip="Passes over the training images"),
    Spec("train", "batch_size", "Batch size", "int", tooltip="Micro-batch through the model at once"),
    Spec("train", "accumulation_steps", "Accum. steps", "int", tooltip="Micro-batches per optimizer step"),
    Spec("train", "precision", "Precision", "select", _options(TrainConfig, "precision"),
         tooltip="bf16/fp16: mixed precision (fp16 with a loss scaler); on the CPU fp32 is the fast one"),
    Spec("train", "optimizer", "Optimizer", "select", _options(TrainConfig, "optimizer")),
    Spec("train", "lr", "Learning rate", "float", tooltip="The peak rate, reached after the warmup"),
    Spec("train", "weight_decay", "Weight decay", "float", tooltip="0 turns it off"),
    Spec("train", "weight_decay_on", "Decay on", "select", _options(TrainConfig, "weight_decay_on"),
         tooltip="weights: linear and conv weights only (timm); all: biases, norms and embeddings too"),
    Spec("train", "momentum", "Momentum", "float", tooltip="SGD only"),
    Spec("train", "scheduler", "Scheduler", "select", _options(TrainConfig, "scheduler"),
         tooltip="cosine: from the peak down to 0 at the last step; none: constant"),
    Spec("train", "warmup_epochs", "Warmup epochs", "float", tooltip="Linear from near 0 to the peak rate"),
    Spec("train", "label_smoothing", "Label smooth.", "float", tooltip="0 = plain cross-entropy"),
    Spec("train", "freeze", "Freeze", "select", _options(TrainConfig, "freeze"),
         tooltip="backbone: train the classifier head only (a linear probe of pretrained weights)"),
    Spec("train", "seed", "Seed", "int", tooltip="Initial weights, sample order and augmentation"),
    Spec("train", "log_every", "Log every", "int", tooltip="Optimizer steps between figures (each read is a sync)"),
    Spec("train", "compile", "torch.compile", "autobool", ("auto", "on", "off"),
         tooltip="auto: on CUDA for ViT runs of 2M+ training images, which repay its ~25 s start-up"),
    Spec("train", "cuda_graphs", "CUDA graphs", "autobool", ("auto", "on", "off"),
         tooltip="CUDA only: replay each optimizer step as one CUDA graph; auto: whenever the run allows it"),
    Spec("train", "device", "Device", "select", _options(TrainConfig, "device"),
         tooltip="auto: the GPU where there is one"),
)
SECTION_TITLES = {"": "Run", "model": "Model", "data": "Data", "train": "Training"}


def spec_for(path: str, kind: str) -> Spec | None:
    """The visible field a dotted error path points at (model fields resolve against the current kind)."""
    for spec in SPECS:
        if spec.path == path and (spec.kind is None or spec.kind == kind):
            return spec
    return None


def default_run(name: str = "run-1") -> RunConfig:
    return RunConfig(name=name, model=ViTModel())


def to_widget_value(spec: Spec, value: Any) -> Any:
    """A config value as the widget shows it."""
    if spec.type == "bool":
        return bool(value)
    if spec.type == "tristate":
        return "auto" if value is None else ("on" if value else "off")
    if spec.type == "autobool":
        return "auto" if value == "auto" else ("on" if value else "off")
    if spec.type == "select":
        return str(value)
    if value is None:
        return ""
    if spec.type == "float":
        return f"{value:g}" if isinstance(value, float) else str(value)
    return str(value)


def from_widget_value(spec: Spec, value: Any) -> tuple[bool, Any]:
    """(present, value) for the config dict; blank optional fields are left out (the schema's default)."""
    if spec.type == "bool":
        return True, bool(value)
    if spec.type == "tristate":
        return True, {"auto": None, "on": True, "off": False}[value]
    if spec.type == "autobool":
        return True, {"auto": "auto", "on": True, "off": False}[value]
    if spec.type in ("opt_int", "opt_str"):
        text = str(value).strip()
        return (bool(text), text)
    if spec.type in ("int", "float", "str"):
        return True, str(value).strip()  # pydantic parses numbers (and reports bad ones)
    return True, value


def values_from_config(cfg: RunConfig) -> dict[str, Any]:
    """widget_id -> widget value, for every field of the config's model kind (and the shared ones)."""
    data = cfg.model_dump(mode="python")
    kind = cfg.model.kind
    out: dict[str, Any] = {}
    for spec in SPECS:
        if spec.kind not in (None, kind):
            continue
        block = data if not spec.section else data[spec.section]
        if spec.key in block:
            out[spec.widget_id] = to_widget_value(spec, block[spec.key])
    # fields of the other kinds show their defaults, ready if the user switches kind
    for other, cls in MODEL_CLASSES.items():
        if other == kind:
            continue
        defaults = cls().model_dump(mode="python")
        for spec in SPECS:
            if spec.kind == other and spec.key in defaults:
                out[spec.widget_id] = to_widget_value(spec, defaults[spec.key])
    return out


def build_dict(values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A RunConfig dict from widget values, over `base` (the run being edited: keeps fields the form hides)."""
    kind = values.get("f-model-kind", "vit")
    base = base or {}
    out: dict[str, Any] = {"data": dict(base.get("data") or {}), "train": dict(base.get("train") or {})}
    base_model = base.get("model") or {}
    out["model"] = {"kind": kind}
    for spec in SPECS:
        if spec.kind not in (None, kind) or spec.widget_id not in values or spec.path == "model.kind":
            continue
        present, value = from_widget_value(spec, values[spec.widget_id])
        block = out if not spec.section else out[spec.section]
        if present:
            block[spec.key] = value
        else:
            block.pop(spec.key, None)
    model = out["model"]
    if kind == "vit" and model.get("mlp_dim") not in (None, ""):
        model.pop("mlp_ratio", None)  # the schema takes one or the other
    if base_model.get("kind") == kind:  # keep model fields the form does not show
        shown = {spec.key for spec in SPECS if spec.section == "model"}
        for k, v in base_model.items():
            if k not in shown:
                model.setdefault(k, v)
    return out


@dataclass
class FormResult:
    config: RunConfig | None
    errors: dict[str, str] = field(default_factory=dict)  # widget_id -> message
    general: list[str] = field(default_factory=list)  # errors on fields the form does not show


def error_path(err: dict[str, Any]) -> tuple[str, str]:
    """(dotted field path, message) for one pydantic error, the model-kind tag removed."""
    if err["type"] == "cross_field":
        return err["ctx"]["field"], err["ctx"]["message"]
    loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and x in MODEL_CLASSES)]
    return ".".join(loc), tidy(err)


BOUNDS = {"greater_than_equal": "at least {ge}", "less_than_equal": "at most {le}", "greater_than": "more than {gt}",
          "less_than": "less than {lt}"}


def tidy(err: dict[str, Any]) -> str:
    """Pydantic's message, shortened to fit beside a field."""
    kind, msg = err["type"], err["msg"]
    if kind in ("int_parsing", "float_parsing", "int_from_float") and str(err.get("input", "")).strip() == "":
        return "required"
    if kind in ("int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind == "float_parsing":
        return "must be a number (e.g. 3e-4)"
    if kind == "missing":
        return "required"
    if kind in BOUNDS:  # "must be greater than or equal to 1" wrapped to two lines beside a field at 80 columns
        return "must be " + BOUNDS[kind].format(**err["ctx"])
    msg = msg.removeprefix("Value error, ")
    return msg.replace("Input should be ", "must be ")


def in_form_words(message: str, kind: str) -> str:
    """A config message as the form says it: `data.image_size` and `embed_dim` become the fields' labels
    ("image size", "embed dim"), the names a person sees beside the inputs."""
    def label(match: re.Match[str]) -> str:
        spec = spec_for(match[0], kind) or next(
            (s for s in SPECS if s.key == match[0] and s.kind in (None, kind)), None)
        if spec is None:
            return match[0]
        text = spec.label
        return text[0].lower() + text[1:] if text[1:2].islower() else text
    # dotted paths and snake_case keys only: plain words like "epochs" or "name" read well as they are
    return re.sub(r"\b[a-z]+\.[a-z_]+\b|\b[a-z]+_[a-z_]+\b", label, message)


def validate(values: dict[str, Any], base: dict[str, Any] | None = None,
             taken_names: set[str] = frozenset()) -> FormResult:
    data = build_dict(values, base)
    kind = values.get("f-model-kind", "vit")
    result = FormResult(None)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            path, msg = error_path(err)
            spec = spec_for(path, kind)
            if spec is None:
                result.general.append(f"{path}: {msg}")
            elif spec.path == "name" and err["type"] == "value_error":  # the rule in full took five lines at 80
                result.errors.setdefault(spec.widget_id, "not a safe name: letters, digits, . _ + - (1-64, a letter "
                                                         "or digit first)")
            else:
                result.errors.setdefault(spec.widget_id, in_form_words(msg, kind))
        return result
    if cfg.name.lower() in taken_names:
        result.errors["f-run-name"] = "another queued run has this name"
        return result
    result.config = cfg
    return result


def derived(cfg: RunConfig, nproc: int = 1) -> dict[str, str]:
    """Figures that follow from the config and the process count (params and FLOPs need the profiler)."""
    size = cfg.data.size
    t = cfg.train
    out = {"Eff. batch": f"{t.effective_batch * nproc} = {t.batch_size}x{t.accumulation_steps}"
                         + (f"x{nproc}" if nproc > 1 else ""),
           "Image": f"{size} px" + ("" if cfg.data.image_size else " (native)")}
    m = cfg.model
    if isinstance(m, ViTModel):
        out["Tokens/img"] = f"{m.tokens(size)}" + (" (incl. cls)" if m.class_token else "")
    elif isinstance(m, SwinModel):
        out["Tokens/img"] = f"{(size // 4) ** 2} (stage 1)"
    else:
        out["Tokens/img"] = "- (convnet)"
    return out


def native_size(dataset: str) -> int:
    return NATIVE_SIZE.get(dataset, 224)
