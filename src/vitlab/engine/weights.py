"""Whether a run's pretrained weights are on this machine, and how to get them: paths, config.json files and the
local Hugging Face cache only, without torch, so `vitlab presets` and the TUI's preset picker can say it at once."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..config import SWIN_HUB_IDS, ResNet18Model, RunConfig, SwinModel, unseeded_name

HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")  # 'name' or 'owner/name'; anything else can only be a path


def swin_weights_help(source: str, variant: str) -> str:
    # a hub id of its own (`owner/name`, no such path here) is the one to fetch; a missing directory, the variant's
    own = HUB_ID.match(source) and "/" in source and not Path(source).exists()
    hub_id = source if own else SWIN_HUB_IDS[variant]
    return (f"Swin weights {source!r} are neither a directory here nor in the local Hugging Face cache "
            f"(vitlab never downloads). On a machine with internet run `hf download {hub_id}` "
            f"and copy ~/.cache/huggingface over to this one, or save them with "
            f"`SwinForImageClassification.from_pretrained('{hub_id}').save_pretrained(DIR)`, copy DIR over "
            f"and set model.weights: DIR.")


def resnet18_weights_help() -> str:
    return ("expected a ResNet-18 state dict saved with torch.save(model.state_dict(), PATH), e.g. the "
            "resnet18-f37072fd.pth that torchvision.models.resnet18(weights='IMAGENET1K_V1') downloads into "
            "~/.cache/torch/hub/checkpoints/ on a machine with internet")


SWIN_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json")  # what from_pretrained loads, sharded or not


def swin_weights_cached(source: str) -> bool:
    """A hub id whose config and weights are in the local Hugging Face cache (where
    from_pretrained(local_files_only=True) looks). When in doubt, True: the loader decides."""
    if not HUB_ID.match(source):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return all(any(isinstance(try_to_load_from_cache(source, f), str) for f in files)
                   for files in (("config.json",), SWIN_WEIGHT_FILES))
    except Exception:  # an id the hub library rejects: the loader's message covers it
        return True


def swin_dir_problem(directory: Path) -> str | None:
    """What a save_pretrained directory lacks (an empty or half-copied one failed only once its run started)."""
    lacks = [name for name, files in (("config.json", ("config.json",)), ("model.safetensors", SWIN_WEIGHT_FILES))
             if not any((directory / f).is_file() for f in files)]
    if not lacks:
        return None
    return (f"model.weights {directory}: no {' and no '.join(lacks)} in it (a save_pretrained directory holds "
            "both; copy the whole directory).")


def not_swin(config_json: Path) -> str | None:
    """What is wrong with a config.json that is no Swin's (a ViT's save_pretrained failed in its run with
    "TypeError: 'int' object is not subscriptable"), or None."""
    try:
        config = json.loads(config_json.read_text())
    except OSError:
        return None  # unreadable here: the loader says why
    except ValueError as e:  # torn: a Swin from scratch fell back to the variant's shapes without a word
        return f"its config.json is not readable JSON ({e})"
    if not isinstance(config, dict):
        return "its config.json is not a model's config (not a JSON object)"
    kind = config.get("model_type")
    return None if kind in (None, "swin") else f"its config.json describes a {kind!r} model, not a Swin"


def cached_config(source: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "config.json")
    except Exception:  # not a hub id it accepts, or no hub library: no cached config to check (the loader says why)
        return None
    return Path(found) if isinstance(found, str) else None


def missing_weights(cfg: RunConfig) -> str | None:
    """Why a run's pretrained weights are not on disk (the message says how to get them), or None."""
    m = cfg.model
    if isinstance(m, SwinModel) and (m.pretrained or m.weights):  # from scratch, weights give the shapes
        source = m.weights_source if m.pretrained else str(m.weights)
        if Path(source).is_dir():
            directory = Path(source)
            if m.pretrained and (problem := swin_dir_problem(directory)):
                return problem
            if not (directory / "config.json").is_file():
                return f"model.weights {source}: no config.json in it (a Swin from scratch takes its shapes from it)."
            problem = not_swin(directory / "config.json")
            return f"model.weights {source}: {problem}." if problem else None
        config = cached_config(source)
        if not (swin_weights_cached(source) if m.pretrained else config):
            return swin_weights_help(source, m.variant)
        problem = not_swin(config) if config else None
        return f"model.weights {source}: {problem}." if problem else None
    if isinstance(m, ResNet18Model) and m.weights and not Path(m.weights).is_file():
        what = "a directory, not a file" if Path(m.weights).is_dir() else "no such file"
        return f"model.weights {m.weights}: {what} ({resnet18_weights_help()})."
    return None


def lacking_weights(runs: Iterable[RunConfig]) -> list[str]:
    """The runs (named without their seed suffix) whose pretrained weights are not on this machine."""
    return list(dict.fromkeys(unseeded_name(r.name, r.train.seed) for r in runs if missing_weights(r)))
