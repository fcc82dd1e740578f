"""What a queue checks before its first run: every run's dataset and weights are on disk, its device here, and
its image size fits the shapes its Swin weights bring.

Paths and config.json files only, no weights or images loaded, so it is fast and a four-run preset does not
train three runs for hours before the fourth finds its weights missing. Reading the files (and what can go
wrong there) stays with the loaders, which give the same messages.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..config import NUM_CLASSES, ResNet18Model, RunConfig, SwinModel
from .continuation import Step
from .data import missing_data
from .device import missing_device
from .models import HUB_ID, resnet18_weights_help, saved_swin_config, swin_misfit, swin_weights_help


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


def swin_too_small(cfg: RunConfig) -> str | None:
    """A Swin whose weights bring their own shapes (a window other than the variants' 7, fewer stages): whether
    the run's image size fits them, known only from their config.json (the config checks the variants')."""
    m = cfg.model
    if not isinstance(m, SwinModel) or not (m.weights or m.pretrained):
        return None
    saved = saved_swin_config(m, cfg.data.size, NUM_CLASSES.get(cfg.data.dataset, 2))
    problem = saved and swin_misfit(saved)
    return f"{problem[:-1]} (the shapes of {m.weights or m.weights_source})." if problem else None


def queue_blockers(runs: Sequence[RunConfig], steps: Sequence[Step] | None = None) -> tuple[str, str] | None:
    """(the first run that can't start, a message with a line for every missing dataset, weights and device
    naming the runs that need it), or None. With the queue's continuation steps, a run kept as it is needs
    nothing."""
    problems: dict[str, list[str]] = {}
    for cfg in (runs if steps is None else [cfg for cfg, (how, _, _) in zip(runs, steps) if how != "keep"]):
        for problem in (missing_device(cfg.train.device), missing_data(cfg.data),
                        missing_weights(cfg) or swin_too_small(cfg)):
            if problem:
                problems.setdefault(problem, []).append(cfg.name)
    if not problems:
        return None
    first = next(iter(problems.values()))[0]
    return first, "\n".join(f"{problem} Needed by {', '.join(names)}." for problem, names in problems.items())
