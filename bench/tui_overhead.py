"""The same run headless and watched in the TUI (Textual's headless driver, live view showing): img/s of each.

usage: python bench/tui_overhead.py [--epochs N] [--size WxH]
The TUI must not slow training: the target is a ratio (TUI / headless) of at least 0.97.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def config(epochs: int):
    from vitlab.presets import load_preset

    exp = load_preset(ROOT / "presets" / "quickstart.yaml", [f"train.epochs={epochs}"])
    return exp, next(r for r in exp.runs if r.model.kind == "vit")


def headless(epochs: int) -> float:
    from vitlab.engine.runner import train_run

    exp, run = config(epochs)
    with tempfile.TemporaryDirectory() as runs:
        return train_run(run, experiment=exp.name, runs_dir=runs)["throughput_img_s"]


async def in_tui(epochs: int, size: tuple[int, int]) -> float:
    import json

    from vitlab.config import ExperimentConfig
    from vitlab.tui.app import VitlabApp

    exp, run = config(epochs)
    with tempfile.TemporaryDirectory() as tmp:
        app = VitlabApp(None, Path(tmp) / "runs")
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.5)
            app.start(ExperimentConfig(name=exp.name, runs=[run]))
            while not list((Path(tmp) / "runs").glob("*/*/summary.json")) or any(
                    json.loads(p.read_text())["status"] == "running"
                    for p in (Path(tmp) / "runs").glob("*/*/summary.json")):
                await pilot.pause(0.2)
            summaries = [json.loads(p.read_text()) for p in (Path(tmp) / "runs").glob("*/*/summary.json")]
        return next(s for s in summaries if s["name"] == run.name)["throughput_img_s"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", default="120x36")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    base = headless(args.epochs)
    tui = asyncio.run(in_tui(args.epochs, size))
    print(f"quickstart vit-tiny, {args.epochs} epochs: headless {base:,.0f} img/s, in the TUI {tui:,.0f} img/s, "
          f"ratio {tui / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
