"""Model factory: ViT (timm, optional conv stem), Swin (Hugging Face transformers), ResNet-18 (torchvision).

Each model is the library's own class built with the library's own arguments, so parameter counts
match the libraries; forward(x) takes a float (B, 3, S, S) batch and returns logits (B, classes).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from timm.layers import PatchEmbed
from torch import nn

from ..config import ResNet18Model, RunConfig, SwinModel, ViTModel
from ..errors import ModelError
from .weights import resnet18_weights_help, swin_weights_help

if TYPE_CHECKING:
    from transformers import SwinConfig

SWIN_SHAPES = {  # the microsoft/swin-*-patch4-window7-224 shapes
    "tiny": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    "small": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    "base": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
}


def conv_stem_widths(patch_size: int, embed_dim: int) -> list[int]:
    """Output channels of the stride-2 convs: doubling, ending at min(embed_dim, 512), at least 16.

    This reproduces the paper's stems: 24-48-96-192 for dim 192 (ViTC-1GF), 48-96-192-384 for dim 384
    (ViTC-4GF), and 64-128-256-512 for dim 768 (ViT-B/16; the paper's 18GF stem spans the same 64-512 with
    two extra stride-1 convs, which we leave out so every conv halves the resolution). The floor of 16 keeps
    the first conv of a wide patch on a narrow model from being a bottleneck.
    """
    last, n = min(embed_dim, 512), int(math.log2(patch_size))
    return [max(16, last >> (n - 1 - i)) for i in range(n)]


class ConvStem(PatchEmbed):
    """Early-convolution stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better").

    log2(patch) stride-2 3x3 conv + BatchNorm + ReLU layers reach the patch stride (widths: see
    `conv_stem_widths`), then a 1x1 conv projects to embed_dim. It is timm's PatchEmbed with `proj`
    swapped, so VisionTransformer gets every attribute it reads (num_patches, grid_size, feat_ratio,
    dynamic_feat_size, the input-size check) and the same (B, tokens, embed_dim) output.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 bias: bool = True, **kwargs):
        super().__init__(img_size, patch_size, in_chans, embed_dim, bias=bias, **kwargs)
        dd = {"device": kwargs.get("device"), "dtype": kwargs.get("dtype")}
        layers: list[nn.Module] = []
        for width in conv_stem_widths(patch_size, embed_dim):
            # no conv bias: BatchNorm's shift replaces it
            layers += [nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False, **dd),
                       nn.BatchNorm2d(width, **dd), nn.ReLU(inplace=True)]
            in_chans = width
        layers.append(nn.Conv2d(in_chans, embed_dim, 1, bias=bias, **dd))
        self.proj = nn.Sequential(*layers)  # replaces PatchEmbed's single patch_size x patch_size conv


def timm_mlp_ratio(embed_dim: int, hidden_dim: int) -> float:
    """The mlp_ratio for which timm's int(embed_dim * mlp_ratio) is exactly hidden_dim.

    hidden/dim * dim can land just below hidden in floating point (e.g. 120/88*88 = 119.99...), and
    int() would then build a narrower MLP. The next float up lands on it (checked for every embed_dim up to
    2048 and hidden_dim up to 8192).
    """
    ratio = hidden_dim / embed_dim
    return ratio if int(embed_dim * ratio) == hidden_dim else math.nextafter(ratio, math.inf)


def build_vit(m: ViTModel, image_size: int, num_classes: int) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=image_size, patch_size=m.patch_size, in_chans=3, num_classes=num_classes,
        embed_dim=m.embed_dim, depth=m.layers, num_heads=m.heads,
        mlp_ratio=timm_mlp_ratio(m.embed_dim, m.hidden_dim),
        class_token=m.class_token, global_pool="token" if m.class_token else "avg", final_norm=m.final_norm,
        act_layer=nn.ReLU if m.act == "relu" else nn.GELU,
        embed_layer=ConvStem if m.stem == "conv" else PatchEmbed,
    )


class LogitsOnly(nn.Module):
    """Hugging Face models return an output object; the loop wants the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars: a replaced head is the point, not news, and
    stray output would garble the TUI. Real loading problems are checked from the loading info instead."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_pretrained_swin(m: SwinModel, image_size: int, num_classes: int) -> nn.Module:
    from transformers import SwinForImageClassification

    source = m.weights_source
    try:
        with quiet_transformers():
            model, info = SwinForImageClassification.from_pretrained(
                source, num_labels=num_classes, image_size=image_size, ignore_mismatched_sizes=True,
                local_files_only=True, trust_remote_code=False, output_loading_info=True)
    except (OSError, ValueError) as e:
        if Path(source).is_dir():
            raise ModelError(f"model.weights {source}: cannot load Swin weights from it ({e}).") from None
        raise ModelError(swin_weights_help(source, m.variant)) from None
    except Exception as e:  # a torn safetensors file (SafetensorError), a config of another model (TypeError)
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        again = ("copy the directory again (save_pretrained writes config.json and model.safetensors)"
                 if Path(source).is_dir() else f"fetch them again: `hf download {source}` on a machine with internet, "
                 "then copy ~/.cache/huggingface over")
        raise ModelError(f"model.weights {source}: its files do not load as Swin weights ({why}); {again}.") from None
    # Only the classifier may be new; anything else missing, or reshaped, would silently train from random init.
    missing = sorted(k for k in info["missing_keys"] | info["unexpected_keys"] if not k.startswith("classifier."))
    if missing:
        raise ModelError(f"model.weights {source}: not a Swin image-classification checkpoint "
                         f"({len(missing)} weights do not match, e.g. {missing[0]}).")
    reshaped = sorted((k, tuple(saved), tuple(here)) for k, saved, here in info.get("mismatched_keys", ())
                      if not k.startswith("classifier."))
    if reshaped:  # absolute position embeddings, sized by the image (use_absolute_embeddings)
        from transformers import SwinConfig

        k, saved, here = reshaped[0]
        saved_size = SwinConfig.from_pretrained(source, local_files_only=True).image_size
        raise ModelError(f"model.weights {source}: {k} is {saved} in the checkpoint but {here} at data.image_size "
                         f"{image_size}, so it would train from random values; use data.image_size {saved_size}, "
                         "the size it was saved at.")
    return model


def saved_swin_config(m: SwinModel, image_size: int, num_classes: int) -> SwinConfig | None:
    """The shapes of the weights the run loads (model.weights, or the variant's hub id when pretrained) when
    their config is on this machine (a save_pretrained dir or the local HF cache), else None."""
    from transformers import SwinConfig

    if source := m.weights or (m.weights_source if m.pretrained else None):
        try:
            with quiet_transformers():
                return SwinConfig.from_pretrained(source, local_files_only=True, num_labels=num_classes,
                                                  image_size=image_size)
        except (OSError, ValueError):
            pass
    return None


def swin_config(m: SwinModel, image_size: int, num_classes: int) -> SwinConfig:
    """The saved shapes, so a profile matches the run; where they are not here, the variant's (the best guess)."""
    from transformers import SwinConfig

    return saved_swin_config(m, image_size, num_classes) or SwinConfig(
        image_size=image_size, patch_size=4, window_size=7, num_labels=num_classes, **SWIN_SHAPES[m.variant])


def swin_misfit(config: SwinConfig) -> str | None:
    """transformers' Swin shrinks the window of a stage smaller than it, but not the stage's relative-position
    table, so its forward pass fails (a shape error deep in attention): why, or None where the size fits."""
    stages, window = len(config.depths), config.window_size
    smallest = config.image_size // config.patch_size // 2 ** (stages - 1)
    if smallest >= window:
        return None
    least = -(-window * config.patch_size * 2 ** (stages - 1) // 32) * 32  # and a multiple of 32, as any Swin's
    return (f"data.image_size {config.image_size} is too small for this Swin: its last stage would be "
            f"{smallest}x{smallest} patches, under its {window}x{window} attention window, which transformers' Swin "
            f"cannot run; use an image_size that is a multiple of 32 from {least}.")


def check_swin_fits(config: SwinConfig) -> None:
    if problem := swin_misfit(config):
        raise ModelError(problem)


def build_swin(m: SwinModel, image_size: int, num_classes: int, load_weights: bool) -> nn.Module:
    from transformers import SwinForImageClassification

    if m.pretrained and load_weights:
        model = load_pretrained_swin(m, image_size, num_classes)
    else:
        model = SwinForImageClassification(swin_config(m, image_size, num_classes))  # random init
    check_swin_fits(model.config)
    return LogitsOnly(model)


def build_resnet18(m: ResNet18Model, num_classes: int, load_weights: bool) -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    if m.stem == "cifar":  # 32 px images keep their resolution into the first block
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    weights = m.weights
    if not (weights and load_weights):
        return model
    how = resnet18_weights_help()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"model.weights {weights}: no such file ({how}).") from None
    except Exception as e:  # torch's own message suggests weights_only=False, which we never do
        raise ModelError(f"model.weights {weights}: not a loadable state dict ({type(e).__name__}); "
                         f"{how}.") from None
    if not isinstance(state, dict):
        raise ModelError(f"model.weights {weights}: holds a {type(state).__name__}, not a state dict; {how}.")
    head = state.get("fc.weight")
    if isinstance(head, torch.Tensor) and head.shape[0] != num_classes:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # a new head for these classes
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ModelError(f"model.weights {weights}: does not fit ResNet-18 ({str(e).splitlines()[-1].strip()}).") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ModelError(f"model.weights {weights}: not a ResNet-18 state dict "
                         f"({len(missing)} missing, {len(unexpected)} unexpected keys); {how}.")
    return model


def classifier_head(model: nn.Module) -> nn.Module:
    if isinstance(model, LogitsOnly):
        return model.model.classifier
    if hasattr(model, "fc"):  # torchvision ResNet
        return model.fc
    return model.head  # timm ViT


def build_model(cfg: RunConfig, num_classes: int, *, load_weights: bool = True) -> nn.Module:
    """The model of `cfg` with a `num_classes` head. load_weights=False: shapes only, random init."""
    m, size = cfg.model, cfg.data.size
    if isinstance(m, ViTModel):
        model = build_vit(m, size, num_classes)
    elif isinstance(m, SwinModel):
        model = build_swin(m, size, num_classes, load_weights)
    else:
        model = build_resnet18(m, num_classes, load_weights)
    if cfg.train.freeze == "backbone":  # a linear probe: only the classifier learns
        model.requires_grad_(False)
        classifier_head(model).requires_grad_(True)
    return model


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
