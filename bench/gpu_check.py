"""On a CUDA machine: do whole-step CUDA graphs take the same steps as eager training?

Trains each case twice from the same seed, once eagerly (cuda_graphs: false) and once replaying
graphs (auto), with accumulation and a short last window every epoch, and prints one JSON line per
case: whether the graph was used, the final train loss of both, and the largest weight difference.
The fp16 cases run GradScaler inside the graph; `vit-fp16-overflow` starts it at 2**24 so the first
steps overflow and are skipped in replays too: both runs must skip the same steps (`skipped_steps`).

usage: python bench/gpu_check.py [--cases vit-fp32,vit-bf16,vit-fp16,vit-fp16-overflow,vit-compile,resnet18,swin]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from unittest import mock

import torch

VIT = {"kind": "vit", "patch_size": 4, "embed_dim": 64, "heads": 2, "layers": 2}
CASES = {
    "vit-fp32": (VIT, {"precision": "fp32"}, 32),
    "vit-bf16": (VIT, {"precision": "bf16"}, 32),
    "vit-fp16": (VIT, {"precision": "fp16"}, 32),
    "vit-fp16-overflow": (VIT, {"precision": "fp16"}, 32),
    "vit-compile": (VIT, {"precision": "bf16", "compile": True}, 32),
    "resnet18": ({"kind": "resnet18"}, {"precision": "bf16"}, 32),
    "swin": ({"kind": "swin", "variant": "tiny", "pretrained": False}, {"precision": "bf16"}, 224),
}


INIT_SCALE = {"vit-fp16-overflow": 2.0 ** 24}


def scaler_from(init_scale: float) -> type[torch.amp.GradScaler]:
    class StartingScale(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "init_scale": init_scale})

    return StartingScale


def run(model: dict, train: dict, size: int, graphs, runs: str) -> tuple[dict, dict]:
    from vitlab.config import RunConfig
    from vitlab.engine.runner import train_run

    # 200 samples in windows of 16 x 3 = 48: four full windows (3 warm-up, then capture) and one of 8
    cfg = RunConfig.model_validate({
        "name": f"check-{graphs}", "model": model,
        "data": {"dataset": "synthetic", "num_classes": 10, "image_size": size, "augment": True,
                 "limit_train": 200, "limit_val": 64},
        "train": {"epochs": 3, "batch_size": 16, "accumulation_steps": 3, "optimizer": "adamw", "lr": 1e-3,
                  "log_every": 2, "cuda_graphs": graphs, **train}})
    summary = train_run(cfg, experiment="gpu-check", runs_dir=runs)
    weights = torch.load(f"{summary['run_dir']}/checkpoint.pt", weights_only=True, map_location="cpu")["model"]
    return summary, weights


def check(name: str) -> dict:
    model, train, size = CASES[name]
    # the runner builds torch.amp.GradScaler(...): this case's starts elsewhere
    scaler = scaler_from(INIT_SCALE[name]) if name in INIT_SCALE else torch.amp.GradScaler
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs, mock.patch.object(torch.amp, "GradScaler", scaler):
        eager, w_eager = run(model, train, size, False, runs)
        graphed, w_graphed = run(model, train, size, "auto", runs)
    diff = max((w_eager[k].float() - w_graphed[k].float()).abs().max().item() for k in w_eager
               if w_eager[k].is_floating_point())
    scale = max(w.float().abs().max().item() for w in w_eager.values() if w.is_floating_point())
    return {"case": name, "status": [eager["status"], graphed["status"]], "cuda_graphs": graphed["cuda_graphs"],
            "error": graphed["error"] or eager["error"], "train_loss": [eager["train_loss"], graphed["train_loss"]],
            "accuracy": [eager["accuracy"], graphed["accuracy"]], "max_weight_diff": diff, "max_weight": scale,
            "steps": graphed["steps"], "skipped_steps": [eager["skipped_steps"], graphed["skipped_steps"]],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    for name in args.cases.split(","):
        try:
            print(json.dumps(check(name)), flush=True)
        except Exception as e:  # one broken case must not hide the others
            print(json.dumps({"case": name, "crash": f"{type(e).__name__}: {e}"[:500]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
