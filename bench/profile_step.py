"""Where a training step's time goes: the device kernels of vitlab's steady state, per optimizer step.

Runs one vitlab variant (same models and data as bench.py) and profiles `--steps` optimizer steps
after `--warmup` (compilation and graph capture left out), then prints per step: the wall time, the
summed kernel time (the GPU's busy time; the rest is gaps between kernels), the kernel count, and the
kernels that take the most time. On the CPU it lists operators instead. `--trace FILE` also writes a
Chrome trace (open it in https://ui.perfetto.dev).

usage: python bench/profile_step.py [--model vit-a] [--accum 1] [--variant compile+graphs] [--top 25]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench import LOG_EVERY, MODELS, VARIANTS, run_config, sync


class Window:
    """Starts the profiler at the warm-up's last log point and stops it `steps` later (engine log events)."""

    def __init__(self, prof: profile, device: torch.device, warmup: int, steps: int):
        self.prof, self.device, self.warmup, self.steps = prof, device, warmup, steps
        self.started = self.seconds = None

    def __call__(self, event) -> None:
        from vitlab.engine.events import StepsLogged

        if not isinstance(event, StepsLogged):
            return
        if event.step == self.warmup:
            sync(self.device)
            self.prof.start()
            self.started = time.perf_counter()
        elif event.step == self.warmup + self.steps and self.started is not None:
            sync(self.device)
            self.seconds = time.perf_counter() - self.started
            self.prof.stop()


def kernel_table(prof: profile, on_gpu: bool) -> dict[str, list[float]]:
    """name -> [count, microseconds] of device kernels (GPU) or of operators' own time (CPU)."""
    table: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    if on_gpu:
        for e in prof.events():
            if e.device_type == DeviceType.CUDA:
                table[e.name][0] += 1
                table[e.name][1] += e.time_range.elapsed_us()
    else:
        for e in prof.key_averages():
            if e.self_cpu_time_total > 0:
                table[e.key] = [e.count, e.self_cpu_time_total]
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=[*MODELS, "resnet18"], default="vit-a")
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--variant", choices=list(VARIANTS), default=None,
                    help="default: compile+graphs on CUDA, eager on the CPU")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None)
    ap.add_argument("--warmup", type=int, default=30, help="optimizer steps before profiling (multiple of 10)")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps profiled (multiple of 10)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--trace", default=None, help="also write a Chrome trace here")
    args = ap.parse_args()
    if args.steps % LOG_EVERY or args.warmup % LOG_EVERY or args.warmup < LOG_EVERY or args.batch % args.accum:
        ap.error(f"--steps and --warmup must be multiples of {LOG_EVERY}; --batch a multiple of --accum")
    on_gpu = args.device == "cuda"
    args.precision = args.precision or ("bf16" if on_gpu else "fp32")
    args.variant = args.variant or ("compile+graphs" if on_gpu else "eager")

    from vitlab.engine.runner import train_run

    device = torch.device(args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    prof = profile(activities=activities)
    window = Window(prof, device, args.warmup, args.steps)
    cfg = run_config(args, args.batch * (args.warmup + args.steps + LOG_EVERY), args.variant)
    with tempfile.TemporaryDirectory() as runs:
        summary = train_run(cfg, experiment="profile", runs_dir=runs, emit=window)
    if summary["status"] != "finished" or window.seconds is None:
        print(f"profile_step: the run ended {summary['status']} {summary['error'] or ''}", file=sys.stderr)
        return 1
    if args.trace:
        prof.export_chrome_trace(args.trace)
    table = kernel_table(prof, on_gpu)
    per = args.steps
    busy = sum(t for _, t in table.values()) / per
    count = sum(c for c, _ in table.values()) / per
    wall = 1e6 * window.seconds / per
    what = "kernels" if on_gpu else "operators (self CPU time)"
    print(f"{args.model} {args.variant} {args.precision}, micro {args.batch // args.accum} x {args.accum}, "
          f"cuda_graphs={summary['cuda_graphs']}, on {summary['device']}, {per} steps profiled")
    print(f"per step: wall {wall:,.0f} us, {what} {busy:,.0f} us in {count:,.0f} calls"
          + (f", gaps {wall - busy:,.0f} us" if on_gpu else ""))
    print(f"{'us/step':>9} {'share':>6} {'calls':>6}  name")
    for name, (c, t) in sorted(table.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{t / per:9.1f} {100 * t / per / busy:5.1f}% {c / per:6.1f}  {name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
