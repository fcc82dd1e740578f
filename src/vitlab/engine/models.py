"""Model factory: ViT (timm, optional conv stem), Swin (Hugging Face transformers), ResNet-18 (torchvision).

Each model is the library's own class built with the library's own arguments, so parameter counts
match the libraries; forward(x) takes a float (B, 3, S, S) batch and returns logits.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig, SwinModel, ViTModel
from ..errors import ModelError

SWIN_SHAPES = {  # the microsoft/swin-*-patch4-window7-224 shapes
    "tiny": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    "small": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    "base": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
}


class ConvStem(nn.Module):
    """Early-convolution stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better").

    log2(patch) stride-2 3x3 conv + BN + ReLU layers reach the patch stride, then a 1x1 conv projects to
    embed_dim. Channels double each layer and end at embed_dim/2 (ViT-B/16: 48-96-192-384 -> 768; the
    paper's 64-128-256-512 is the same shape). Takes timm's PatchEmbed arguments so VisionTransformer
    can use it as `embed_layer`.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 bias: bool = True, **_: object):
        super().__init__()
        layers = int(math.log2(patch_size))
        widths = [max(16, embed_dim // 2 ** (layers - i)) for i in range(layers)]
        blocks: list[nn.Module] = []
        for width in widths:
            blocks += [nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            in_chans = width
        blocks.append(nn.Conv2d(in_chans, embed_dim, 1, bias=bias))
        self.proj = nn.Sequential(*blocks)
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.patch_size[0] if as_scalar else self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, tokens, embed_dim)


def build_vit(m: ViTModel, image_size: int, num_classes: int) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=image_size, patch_size=m.patch_size, in_chans=3, num_classes=num_classes,
        embed_dim=m.embed_dim, depth=m.layers, num_heads=m.heads, mlp_ratio=m.hidden_dim / m.embed_dim,
        class_token=m.class_token, global_pool="token" if m.class_token else "avg", final_norm=m.final_norm,
        act_layer=nn.ReLU if m.act == "relu" else nn.GELU,
        **({"embed_layer": ConvStem} if m.stem == "conv" else {}),
    )


class LogitsOnly(nn.Module):
    """Hugging Face models return an output object; the loop wants the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def swin_weights_help(source: str) -> str:
    return (f"Pretrained Swin weights {source!r} are not on this machine. On a machine with internet run "
            f"`huggingface-cli download {source}` and copy ~/.cache/huggingface over, or save them with "
            f"`SwinForImageClassification.from_pretrained('{source}').save_pretrained(DIR)` and set model.weights: DIR.")


def build_swin(m: SwinModel, image_size: int, num_classes: int, load_weights: bool) -> nn.Module:
    import transformers
    from transformers import SwinConfig, SwinForImageClassification

    if m.pretrained and load_weights:
        source = m.weights_source
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # "newly initialized classifier" is the point, not news
        try:
            model = SwinForImageClassification.from_pretrained(
                source, num_labels=num_classes, ignore_mismatched_sizes=True, local_files_only=True,
                trust_remote_code=False, image_size=image_size)
        except (OSError, ValueError) as e:
            if Path(source).exists():
                raise ModelError(f"model.weights {source}: cannot load Swin weights from it ({e}).") from None
            raise ModelError(swin_weights_help(source)) from None
        finally:
            transformers.logging.set_verbosity(verbosity)
        return LogitsOnly(model)
    shape = SWIN_SHAPES[m.variant]
    if m.weights and (Path(m.weights) / "config.json").exists():  # shapes of a local checkpoint, no weights
        config = SwinConfig.from_pretrained(m.weights, num_labels=num_classes, image_size=image_size)
    else:
        config = SwinConfig(image_size=image_size, patch_size=4, window_size=7, num_labels=num_classes, **shape)
    return LogitsOnly(SwinForImageClassification(config))


def build_resnet18(weights: str | None, num_classes: int, load_weights: bool) -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    if weights and load_weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"model.weights {weights}: no such file (a ResNet-18 state dict saved with torch.save)") from None
        except Exception as e:
            raise ModelError(f"model.weights {weights}: not a loadable state dict ({type(e).__name__}: {e})") from None
        if state.get("fc.weight") is not None and state["fc.weight"].shape[0] != num_classes:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # new head for these classes
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ModelError(f"model.weights {weights}: not a ResNet-18 state dict "
                             f"(missing {len(missing)}, unexpected {len(unexpected)} keys)")
    return model


def classifier_head(model: nn.Module) -> nn.Module:
    if isinstance(model, LogitsOnly):
        return model.model.classifier
    if hasattr(model, "fc"):
        return model.fc
    return model.head


def build_model(cfg: RunConfig, num_classes: int, *, load_weights: bool = True) -> nn.Module:
    m, size = cfg.model, cfg.data.size
    if isinstance(m, ViTModel):
        model = build_vit(m, size, num_classes)
    elif isinstance(m, SwinModel):
        model = build_swin(m, size, num_classes, load_weights)
    else:
        model = build_resnet18(m.weights, num_classes, load_weights)
    if cfg.train.freeze == "backbone":  # a linear probe: only the classifier learns
        model.requires_grad_(False)
        classifier_head(model).requires_grad_(True)
    return model


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
