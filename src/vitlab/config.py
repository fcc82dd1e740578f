"""The validated configuration of a run and of an experiment (a preset).

One schema serves the CLI, the TUI forms and the run store: unknown keys are errors, and every
cross-field rule names the field it is about so messages can point at it.
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator,
                      model_serializer, model_validator)
from pydantic_core import PydanticCustomError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
NAME_RULE = "1-64 characters of letters, digits, '.', '_', '+', '-', starting with a letter or digit"

# Native resolution and class count of each dataset; imagefolder learns its classes from disk.
NATIVE_SIZE = {"digits": 8, "cifar10": 32, "cifar100": 32, "synthetic": 32, "imagefolder": 224}
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "synthetic": 10}
# the folders torchvision's CIFAR classes extract to, under data.root (a preset list checks them without torch)
CIFAR_FOLDERS = {"cifar10": ("CIFAR-10", "cifar-10-batches-py"), "cifar100": ("CIFAR-100", "cifar-100-python")}
SWIN_HUB_IDS = {
    "tiny": "microsoft/swin-tiny-patch4-window7-224",
    "small": "microsoft/swin-small-patch4-window7-224",
    "base": "microsoft/swin-base-patch4-window7-224",
}


def cross_field(field: str, message: str) -> PydanticCustomError:
    """A rule that involves several fields, reported against `field` (a dotted path in the run)."""
    return PydanticCustomError("cross_field", "{message}", {"field": field, "message": message})


# A path typed in a preset or form: '~' is the user's home, as in a shell (the resolved config keeps it expanded).
UserPath = Annotated[str, AfterValidator(os.path.expanduser)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NUMBERS = (int, float, int | None, float | None)


def no_bool_number(cls: type[BaseModel], value: Any, info: Any) -> Any:
    """`epochs: true` is no number (pydantic's lax mode read it as 1, and trained one epoch)."""
    if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in NUMBERS:
        raise PydanticCustomError("number_type", "must be a number, not {value}", {"value": str(value).lower()})
    return value


class Section(Strict):
    """Data and train: plain fields. (Not the models: a validator on `kind` breaks their discriminated union.)"""

    _numbers = field_validator("*", mode="before")(classmethod(no_bool_number))


def check_name(value: str) -> str:
    if not SAFE_NAME.match(value) or value in {".", ".."}:
        raise ValueError(f"{value!r} is not a safe name: use {NAME_RULE}")
    return value


class ViTModel(Strict):
    # Upper bounds far past any ViT trained (ViT-22B: width 6144, 48 layers, MLP 24576) but below what breaks
    # tensor shapes: a width of 10**23 typed into the form ended in a TypeError from torch.empty
    kind: Literal["vit"] = "vit"
    patch_size: int = Field(4, ge=1, le=1024)
    embed_dim: int = Field(192, ge=8, le=65536)
    heads: int = Field(3, ge=1, le=1024)
    layers: int = Field(6, ge=1, le=1024)
    mlp_ratio: float = Field(4.0, gt=0, le=64)
    mlp_dim: int | None = Field(None, ge=1, le=1 << 20)
    stem: Literal["patchify", "conv"] = "patchify"
    act: Literal["gelu", "relu"] = "gelu"
    class_token: bool = True
    final_norm: bool = True
    _numbers = field_validator("patch_size", "embed_dim", "heads", "layers", "mlp_ratio", "mlp_dim",
                               mode="before")(classmethod(no_bool_number))

    @model_validator(mode="after")
    def _shape(self) -> "ViTModel":
        if self.embed_dim % self.heads:
            raise cross_field("model.heads", f"must divide embed_dim {self.embed_dim} (got {self.heads})")
        if self.mlp_dim is not None and "mlp_ratio" in self.model_fields_set:
            raise cross_field("model.mlp_dim", "give either mlp_ratio or mlp_dim, not both")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise cross_field(
                "model.patch_size",
                f"the conv stem reaches the patch stride with stride-2 convs, so patch_size must be a power of 2 >= 2 (got {self.patch_size})",
            )
        return self

    @model_serializer(mode="wrap")
    def _one_width(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.mlp_dim is not None:  # mlp_dim decides; writing the default ratio too would not validate again
            data.pop("mlp_ratio", None)
        return data

    @property
    def hidden_dim(self) -> int:
        return self.mlp_dim if self.mlp_dim is not None else int(self.embed_dim * self.mlp_ratio)

    def tokens(self, image_size: int) -> int:
        """The sequence attention runs over: the patches, and the class token where there is one."""
        return (image_size // self.patch_size) ** 2 + self.class_token


class SwinModel(Strict):
    kind: Literal["swin"] = "swin"
    variant: Literal["tiny", "small", "base"] = "tiny"
    pretrained: bool = False
    weights: UserPath | None = None  # local save_pretrained dir or hub id (read from the local HF cache)

    @model_validator(mode="after")
    def _variant_of_the_weights(self) -> "SwinModel":
        """A known hub id names its variant, whatever `variant` says: those are the weights that load (with the
        default variant, `weights: microsoft/swin-base-...` was labelled, and profiled without them, as Swin-T)."""
        self.variant = next((v for v, hub_id in SWIN_HUB_IDS.items() if hub_id == self.weights), self.variant)
        return self

    @property
    def weights_source(self) -> str:
        return self.weights or SWIN_HUB_IDS[self.variant]


class ResNet18Model(Strict):
    kind: Literal["resnet18"] = "resnet18"
    weights: UserPath | None = None  # a local state-dict file, loaded with weights_only=True
    # imagenet: torchvision's model (7x7 stride-2 conv + max-pool: 32 px is 8x8 before the first block);
    # cifar: a 3x3 stride-1 conv, no max-pool, the usual ResNet for 32 px images (He et al. 2016, sec. 4.2)
    stem: Literal["imagenet", "cifar"] = "imagenet"

    @model_validator(mode="after")
    def _stem_fits_weights(self) -> "ResNet18Model":
        if self.weights is not None and self.stem == "cifar":
            raise cross_field("model.stem", "pretrained ResNet-18 weights come with the ImageNet stem (a 7x7 conv): "
                                            "use stem: imagenet with weights")
        return self


ModelConfig = Annotated[Union[ViTModel, SwinModel, ResNet18Model], Field(discriminator="kind")]
MODEL_CLASSES = {"vit": ViTModel, "swin": SwinModel, "resnet18": ResNet18Model}


class DataConfig(Section):
    dataset: Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"] = "digits"
    root: UserPath = "data"
    # None: the dataset's native size. At most 1024 px (21x ImageNet's 224 in pixels): far past that, one image's
    # activations no longer fit a machine, and the profile and the first step fail on allocation instead
    image_size: int | None = Field(None, ge=4, le=1024)
    augment: bool | None = None  # None: on for CIFAR (random crop + flip), off otherwise
    num_workers: int = Field(2, ge=0)  # DataLoader workers (imagefolder only)
    download: bool = False
    on_device: Literal["auto"] | bool = "auto"  # keep the whole dataset on the GPU as uint8
    # the first N training samples (synthetic: its size; an image folder: N in its classes' proportions, fixed)
    limit_train: int | None = Field(None, ge=1, le=1 << 31)
    limit_val: int | None = Field(None, ge=1, le=1 << 31)
    num_classes: int | None = Field(None, ge=2, le=1 << 20)  # synthetic only
    # CIFAR: evaluate on N training images held out (stratified, fixed), not on the test split, so that picking
    # the best epoch or setting by it leaves the test split unseen
    holdout: int | None = Field(None, ge=1, le=49_999)  # CIFAR has 50000 training images

    @model_validator(mode="after")
    def _synthetic_only(self) -> "DataConfig":
        if self.num_classes is not None and self.dataset != "synthetic":
            raise cross_field("data.num_classes", f"only the synthetic dataset takes num_classes ({self.dataset} has its own)")
        if self.holdout is not None and self.dataset not in ("cifar10", "cifar100"):
            raise cross_field("data.holdout", f"only CIFAR takes holdout ({self.dataset} has its own validation split)")
        return self

    @property
    def size(self) -> int:
        return self.image_size or NATIVE_SIZE[self.dataset]

    @property
    def use_augment(self) -> bool:
        return self.augment if self.augment is not None else self.dataset in ("cifar10", "cifar100")

    @property
    def classes(self) -> int | None:
        """Class count known from the config alone (None for imagefolder: read from disk)."""
        if self.dataset == "synthetic":
            return self.num_classes or 10
        return NUM_CLASSES.get(self.dataset)


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1 << 20)  # the micro-batch that goes through the model at once
    accumulation_steps: int = Field(1, ge=1, le=1 << 16)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    # weights: decay the weights of linear and conv layers only, not biases, norm scales, position embeddings or
    # the class token (timm's and Swin's recipes); all: every parameter (how vitlab trained before 2026-11-27)
    weight_decay_on: Literal["weights", "all"] = "weights"
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    scheduler: Literal["none", "cosine"] = "none"
    warmup_epochs: float = Field(0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = Field(0, ge=0, lt=2**32)  # the epoch order's generator takes seed * 1_000_003 + epoch
    # torch.compile the model. auto: on CUDA for a single-process ViT run long enough to repay the
    # compilation (see engine/runner.py compile_wanted); true/false force it.
    compile: Literal["auto"] | bool = "auto"
    # CUDA only: capture each optimizer step (every micro-batch and the update) as one CUDA graph and
    # replay it. auto: whenever the run allows it (data on the GPU, adam/adamw, one process).
    cuda_graphs: Literal["auto"] | bool = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = Field(10, ge=1)  # optimizer steps between host reads of the running loss
    freeze: Literal["none", "backbone"] = "none"  # backbone: train the classifier head only
    tensorboard: bool = False
    checkpoint: bool = True

    @field_validator("lr", "weight_decay", mode="before")  # before the bounds: nan failed "> 0", inf "finite"
    @classmethod
    def _finite(cls, v: Any, info: Any) -> Any:
        try:
            finite = math.isfinite(float(v))
        except (TypeError, ValueError):
            return v  # not a number: the field's own message says so
        if not finite:  # weight_decay inf ended as a "non-finite loss: lower train.lr" failure
            raise ValueError("must be a finite number " + ("> 0" if info.field_name == "lr" else ">= 0"))
        return v

    @model_validator(mode="after")
    def _warmup(self) -> "TrainConfig":
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise cross_field("train.warmup_epochs", f"must be less than epochs ({self.epochs}); 0 turns warmup off")
        return self

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.accumulation_steps


class RunConfig(Strict):
    name: str
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _fits_data(self) -> "RunConfig":
        size, m = self.data.size, self.model
        if isinstance(m, ViTModel) and size % m.patch_size:
            fits = [str(p) for p in range(1, size + 1) if size % p == 0]
            raise cross_field("model.patch_size", f"must divide data.image_size {size} (got {m.patch_size}): "
                                                  f"{', '.join(fits[:-1])} or {fits[-1]}")
        # the variant shapes (window 7); weights bring their own, checked from their config.json before a queue
        # starts (preflight.swin_too_small)
        if isinstance(m, SwinModel) and m.weights is not None and size % 32:
            raise cross_field("data.image_size", f"Swin needs a multiple of 32 (got {size}; how small depends on "
                                                 "the shapes of model.weights, checked before the queue starts)")
        if isinstance(m, SwinModel) and m.weights is None and (size % 32 or size < 224):
            raise cross_field(
                "data.image_size",
                f"Swin needs a multiple of 32 that is at least 224 (patch 4 x window 7 x 8; got {size}): "
                "smaller stages shrink the window but not its position table",
            )
        return self

    def resolved(self) -> dict[str, Any]:
        """The fully resolved config, as written to config.yaml."""
        return self.model_dump(mode="json")

    @classmethod
    def from_resolved(cls, raw: Any) -> "RunConfig":
        """A config.yaml read back, also as older versions wrote it (before 2026-11-26 the default mlp_ratio
        was written beside mlp_dim, which does not validate; before 2026-11-27 every parameter was decayed)."""
        model = raw.get("model") if isinstance(raw, dict) else None
        if isinstance(model, dict) and model.get("mlp_dim") is not None:
            model = {k: v for k, v in model.items() if k != "mlp_ratio"}
            raw = {**raw, "model": model}
        train = raw.get("train") if isinstance(raw, dict) else None
        if isinstance(train, dict) and "weight_decay_on" not in train:  # resumed and compared as it trained
            raw = {**raw, "train": {**train, "weight_decay_on": "all"}}
        return cls.model_validate(raw)


class ExperimentConfig(Strict):
    name: str
    description: str = ""
    runs: list[RunConfig] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _unique(self) -> "ExperimentConfig":
        seen: set[str] = set()
        for i, run in enumerate(self.runs):
            if run.name.lower() in seen:
                raise cross_field(f"runs.{i}.name",
                                  f"run name {run.name!r} is used twice (names must be unique, case-insensitively)")
            seen.add(run.name.lower())
        return self


def seeded_name(name: str, seed: int) -> str:
    """The name of one seed's run: `vit` trained with seed 2 is `vit-s2` (a preset's `seeds`, --seeds, Seeds…)."""
    return f"{name}-s{seed}"


def checkpointed(resolved: dict[str, Any] | None) -> bool:
    """A run of this resolved config keeps checkpoints (train.checkpoint), so it can resume after a stop."""
    return (((resolved or {}).get("train") or {}).get("checkpoint", True)) is not False


def unseeded_name(name: str, seed: int) -> str:
    """`vit` for vit-s2 trained with seed 2; any other name as it is."""
    return name.removesuffix(f"-s{seed}")


def picked_by(name: str, seed: int | None) -> set[str]:
    """The names `--run NAME` picks a run by: its own, and without its seed's suffix (every seed's run of
    `vit`), in lower case as run names are told apart."""
    return {name.lower(), *([unseeded_name(name, seed).lower()] if isinstance(seed, int) else [])}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.001}} -> {'train.lr': 0.001}: dotted paths, as messages and --set name fields."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def condition_key(resolved: dict[str, Any]) -> str:
    """A resolved run config less its name and seed: runs with one key differ by their seed alone. Stricter than
    trained_key on purpose: seeding a queue keeps apart two runs that differ only in how they are watched."""
    train = {k: v for k, v in (resolved.get("train") or {}).items() if k != "seed"}
    return json.dumps({**resolved, "name": None, "train": train}, sort_keys=True, default=str)


# How a run is watched, not what it trains: runs that differ only here trained the same thing
WATCH_ONLY = ("train.tensorboard", "train.log_every", "data.num_workers")


def trained_key(resolved: dict[str, Any], seed: bool = False) -> str:
    """What a run trained: its resolved config less its name, what only watches it (WATCH_ONLY) and, unless asked,
    its seed. Seed groups and `--continue` compare runs by it (a --tensorboard run is the same training)."""
    flat = flatten({k: v for k, v in resolved.items() if k != "name"})
    return json.dumps({k: v for k, v in flat.items() if k not in WATCH_ONLY and (seed or k != "train.seed")},
                      sort_keys=True, default=str)


def profile_key(cfg: RunConfig) -> str:
    """What params and FLOPs depend on: the model, the image size, the class count, what is frozen."""
    return json.dumps([cfg.model.model_dump(mode="json"), cfg.data.size, cfg.data.dataset, cfg.data.num_classes,
                       cfg.data.root if cfg.data.dataset == "imagefolder" else None, cfg.train.freeze])


def from_pretrained(model: ViTModel | SwinModel | ResNet18Model) -> bool:
    """The model starts from trained weights (Swin pretrained, ResNet-18 from a state dict): those were trained on
    ImageNet-normalised images, so its inputs are normalised the same way."""
    return bool(model.pretrained) if isinstance(model, SwinModel) else bool(getattr(model, "weights", None))


def run_label(cfg: RunConfig) -> str:
    """The model, and `probe` where only its head trains (train.freeze: backbone): a linear probe and a
    fine-tune of the same weights read alike in a table otherwise."""
    return model_label(cfg.model) + (" probe" if cfg.train.freeze == "backbone" else "")


def model_label(model: ViTModel | SwinModel | ResNet18Model) -> str:
    """Short human form of a model, e.g. `ViT p8 d512 h2 L8`, `ViT p4 d192 h3 L11 conv-stem`, `Swin-T pretrained`."""
    if isinstance(model, ViTModel):
        stem = " conv-stem" if model.stem == "conv" else ""
        return f"ViT p{model.patch_size} d{model.embed_dim} h{model.heads} L{model.layers}{stem}"
    if isinstance(model, SwinModel):
        mode = "pretrained" if model.pretrained else "scratch"
        if model.weights and str(model.weights) not in SWIN_HUB_IDS.values():  # its shapes are the weights', not
            return f"Swin {os.path.basename(str(model.weights).rstrip(os.sep))} {mode}"  # the variant's
        return f"Swin-{model.variant[0].upper()} {mode}"
    return "ResNet-18" + (" pretrained" if model.weights else "") + (" cifar-stem" if model.stem == "cifar" else "")
