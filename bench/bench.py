"""vitlab's engine against the plain hand-written loop, same model, same data, same machine, one process.

The plain loop is what a typical script does (and what ../shared/bench/anchor_loops.py calls `plain`):
a torchvision DataLoader with CPU transforms (PIL crop + flip, ToTensor, Normalize), autocast +
GradScaler (fp16 on CUDA; fp32 on the CPU, where fp16 is emulated), Adam, eager, micro-batch 32 x
accumulation 2, and `.item()` every micro-step. vitlab runs the same model on the same uint8 data
through its engine (resident data, on-device augmentation, device-side loss sums).

usage: python bench/bench.py [--device cpu|cuda] [--model vit-a|vit-b|vit-c|vit-d|resnet18] [--accum N]
                             [--steps N] [--compile] [--json]
Prints images/s of each loop and their ratio (vitlab / plain). Thresholds are never asserted here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

MODELS = {  # patch, dim, heads, layers (the seed report's ViTs, at CIFAR's 32 px)
    "vit-a": (8, 512, 2, 8), "vit-b": (4, 512, 4, 8), "vit-c": (8, 256, 2, 4), "vit-d": (4, 256, 2, 8)}
MEAN, STD = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)


def model_config(name: str) -> dict:
    if name == "resnet18":
        return {"kind": "resnet18"}
    p, d, h, l = MODELS[name]
    return {"kind": "vit", "patch_size": p, "embed_dim": d, "heads": h, "layers": l}


def run_config(args, samples: int):
    from vitlab.config import RunConfig

    effective = 64
    return RunConfig.model_validate({
        "name": f"bench-{args.model}",
        "model": model_config(args.model),
        "data": {"dataset": "synthetic", "num_classes": 100, "image_size": 32, "augment": True,
                 "limit_train": samples, "limit_val": 256},
        "train": {"epochs": 1, "batch_size": effective // args.accum, "accumulation_steps": args.accum,
                  "precision": args.precision, "optimizer": "adam", "lr": 1e-3, "device": args.device,
                  "compile": args.compile, "log_every": 50, "checkpoint": False},
    })


def plain_loop(args, cfg, data) -> float:
    """The usual script, on the same uint8 images the engine trains on."""
    import torchvision.transforms as T
    from PIL import Image

    from vitlab.engine.models import build_model

    device = torch.device(args.device)
    images = data.train.images.cpu().permute(0, 2, 3, 1).contiguous().numpy()  # (N, 32, 32, 3) uint8
    labels = data.train.labels.cpu()
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

    class Dataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return tf(Image.fromarray(images[i])), int(labels[i])

    workers = min(8, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(Dataset(), batch_size=32, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", drop_last=True,
                                         persistent_workers=True)
    torch.manual_seed(0)
    model = build_model(cfg, 100).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    batches = iter(loader)

    def step():
        for _ in range(2):
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(model(x), y) / 2
            scaler.scale(loss).backward()
            loss.item()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    return args.steps * 64 / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def vitlab_loop(args, cfg) -> tuple[float, dict]:
    """The engine, timed the way it reports itself: training images over training time, after warm-up."""
    from vitlab.engine.runner import train_run

    samples = 64 * (args.steps + args.warmup)
    warm = run_config(args, 64 * args.warmup)
    with tempfile.TemporaryDirectory() as runs:
        if args.warmup:
            train_run(warm, experiment="bench", runs_dir=runs)  # compile, allocator, kernels warm
        summary = train_run(run_config(args, samples), experiment="bench", runs_dir=runs)
    return summary["throughput_img_s"], summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=[*MODELS, "resnet18"], default="vit-c")
    ap.add_argument("--accum", type=int, default=2, help="vitlab's accumulation steps at effective batch 64")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps timed (64 images each)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None,
                    help="vitlab's precision (default: bf16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile in vitlab's loop")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)

    from vitlab.engine.data import load_data

    cfg = run_config(args, 64 * (args.steps + args.warmup) * 2)
    data = load_data(cfg.data, torch.device("cpu"), seed=0)
    plain = plain_loop(args, cfg, data)
    ours, summary = vitlab_loop(args, cfg)
    result = {"model": args.model, "device": summary["device"], "accum": args.accum, "precision": args.precision,
              "compile": args.compile, "plain_img_s": round(plain, 1), "vitlab_img_s": round(ours, 1),
              "ratio": round(ours / plain, 2), "mfu": summary.get("mfu"), "torch": torch.__version__}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} on {summary['device']}, effective batch 64:")
        ours_label = f"vitlab engine ({args.precision}, micro {64 // args.accum} x {args.accum}" \
                     f"{', compiled' if args.compile else ''})"
        print(f"  {'plain loop (DataLoader + CPU transforms, micro 32 x 2)':<58}{plain:>10,.1f} img/s")
        print(f"  {ours_label:<58}{ours:>10,.1f} img/s")
        print(f"  ratio vitlab / plain: {ours / plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
