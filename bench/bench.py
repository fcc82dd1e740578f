"""vitlab's engine against the plain hand-written loop, same model, same data, same machine, one process.

The plain loop is what a typical script does (and what ../shared/bench/anchor_loops.py calls `plain`):
a torchvision DataLoader with CPU transforms (PIL crop + flip, ToTensor, Normalize), autocast +
GradScaler (fp16 on CUDA; fp32 on the CPU, where fp16 is emulated), Adam, eager, micro-batch 32 x
accumulation 2, and `.item()` every micro-step. vitlab runs the same model on the same uint8 data
through its engine (resident data, on-device augmentation, device-side loss sums), in one or more
variants: eager, graphs (whole-step CUDA graphs), compile (torch.compile), compile+graphs.

usage: python bench/bench.py [--device cpu|cuda] [--model vit-a|vit-b|vit-c|vit-d|resnet18] [--accum N]
                             [--batch N] [--variants graphs,compile+graphs] [--steps N] [--no-plain] [--json]
Prints images/s of each loop and their ratio (vitlab / plain). vitlab's figure is its steady state:
training images over training time between two of its own logging points after --warmup steps (so
compilation and graph capture are left out; the run's summary counts them). Thresholds are never
asserted here.
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
VARIANTS = {"eager": (False, False), "graphs": (False, "auto"), "compile": (True, False),
            "compile+graphs": (True, "auto")}  # name: (train.compile, train.cuda_graphs)
LOG_EVERY = 10


def model_config(name: str) -> dict:
    if name == "resnet18":
        return {"kind": "resnet18"}
    p, d, h, l = MODELS[name]
    return {"kind": "vit", "patch_size": p, "embed_dim": d, "heads": h, "layers": l}


def run_config(args, samples: int, variant: str = "eager"):
    from vitlab.config import RunConfig

    compile_, graphs = VARIANTS[variant]
    return RunConfig.model_validate({
        "name": f"bench-{args.model}",
        "model": model_config(args.model),
        "data": {"dataset": "synthetic", "num_classes": 100, "image_size": 32, "augment": True,
                 "limit_train": samples, "limit_val": 256},
        "train": {"epochs": 1, "batch_size": args.batch // args.accum, "accumulation_steps": args.accum,
                  "precision": args.precision, "optimizer": "adam", "lr": 1e-3, "device": args.device,
                  "compile": compile_, "cuda_graphs": graphs, "log_every": LOG_EVERY, "checkpoint": False},
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


def vitlab_loop(args, variant: str) -> dict:
    """One engine run; images/s between its log points after the warm-up (compile and capture excluded)."""
    from vitlab.engine.device import mfu
    from vitlab.engine.events import StepsLogged
    from vitlab.engine.runner import train_run

    logs: list[StepsLogged] = []
    cfg = run_config(args, args.batch * (args.warmup + args.steps), variant)
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        summary = train_run(cfg, experiment="bench", runs_dir=runs,
                            emit=lambda e: logs.append(e) if isinstance(e, StepsLogged) else None)
    if summary["status"] != "finished":
        raise SystemExit(f"vitlab run {variant} ended {summary['status']}: {summary['error']}")
    start = max((e for e in logs if e.step <= args.warmup), key=lambda e: e.step)
    end = logs[-1]
    ips = (end.step - start.step) * args.batch / (end.elapsed_s - start.elapsed_s)
    return {"variant": variant, "img_s": round(ips, 1), "step_ms": round(1000 * args.batch / ips, 3),
            "mfu": mfu(summary["flops"], ips, torch.device(args.device), args.precision),
            "cuda_graphs": summary["cuda_graphs"], "warmup_s": round(start.elapsed_s, 1),
            "run_wall_s": round(time.perf_counter() - wall, 1), "peak_memory_mb": summary["peak_memory_mb"],
            "device": summary["device"], "flops": summary["flops"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=[*MODELS, "resnet18"], default="vit-c")
    ap.add_argument("--accum", type=int, default=2, help="vitlab's accumulation steps")
    ap.add_argument("--batch", type=int, default=64, help="vitlab's effective batch (the plain loop's is 32 x 2)")
    ap.add_argument("--variants", default=None,
                    help=f"comma-separated vitlab variants of {', '.join(VARIANTS)} "
                         "(default: graphs,compile+graphs on CUDA, eager on the CPU)")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps timed (multiple of 10)")
    ap.add_argument("--warmup", type=int, default=10, help="optimizer steps before timing (multiple of 10)")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None,
                    help="vitlab's precision (default: bf16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain loop (e.g. at batch 512, for MFU)")
    ap.add_argument("--json", action="store_true", help="one JSON line per vitlab variant")
    args = ap.parse_args()
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    variants = (args.variants or ("graphs,compile+graphs" if args.device == "cuda" else "eager")).split(",")
    if args.steps % LOG_EVERY or args.warmup % LOG_EVERY or args.warmup < LOG_EVERY:
        ap.error(f"--steps and --warmup must be multiples of {LOG_EVERY} (the engine's logging points)")
    if args.batch % args.accum or any(v not in VARIANTS for v in variants):
        ap.error(f"--batch must be a multiple of --accum; variants are {', '.join(VARIANTS)}")
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)

    plain = None
    if not args.no_plain:
        from vitlab.engine.data import load_data

        cfg = run_config(args, 64 * (args.steps + args.warmup) * 2)
        data = load_data(cfg.data, torch.device("cpu"), seed=0)
        plain = plain_loop(args, cfg, data)
    results = [vitlab_loop(args, v) for v in variants]
    for r in results:
        r.update(model=args.model, accum=args.accum, batch=args.batch, precision=args.precision,
                 plain_img_s=round(plain, 1) if plain else None,
                 ratio=round(r["img_s"] / plain, 2) if plain else None, torch=torch.__version__)
    if args.json:
        for r in results:
            print(json.dumps(r), flush=True)
        return 0
    print(f"{args.model} on {results[0]['device']}, effective batch {args.batch}:")
    if plain:
        print(f"  {'plain loop (DataLoader + CPU transforms, micro 32 x 2)':<62}{plain:>10,.1f} img/s")
    for r in results:
        label = f"vitlab {r['variant']} ({args.precision}, micro {args.batch // args.accum} x {args.accum})"
        extra = f"  ratio {r['ratio']:.2f}x" if plain else ""
        extra += f"  MFU {100 * r['mfu']:.1f} %" if r["mfu"] else ""
        print(f"  {label:<62}{r['img_s']:>10,.1f} img/s{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
