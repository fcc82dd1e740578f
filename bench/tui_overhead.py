"""The same run headless and watched in the TUI: img/s of each, and the TUI's time to first paint.

usage: python bench/tui_overhead.py [--epochs N] [--size WxH] [--rounds R]

Headless is `vitlab run PRESET` (stderr to /dev/null). The TUI is the real `vitlab PRESET` in a pseudo-terminal
of the given size (it trains in its child process, as always): the bench times its first paint (the Setup form
on screen, from the spawn), waits until the Setup view is idle (params and FLOPs shown), presses ctrl+r and
reads the screen until the run finishes, with the Live view showing. Each round runs both, in alternating
order so a machine that speeds up or slows down hits both alike; the report is the median of the rounds'
ratios, and the TUI process's own CPU while training. The target is a ratio (TUI / headless) of >= 0.97.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from contextlib import suppress
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FIRST_PAINT_MARK = b"Run name"  # a label of the Setup form
SETTLED_MARK = b"GFLOPs/img"  # the Setup view's profiler is done: the TUI is idle, as when a user presses ctrl+r
CTRL_R, CTRL_Q = b"\x12", b"\x11"


def write_preset(folder: Path, epochs: int) -> Path:
    from vitlab.presets import load_preset, save_preset

    exp = load_preset(ROOT / "presets" / "quickstart.yaml", [f"train.epochs={epochs}"])
    vit = [r for r in exp.runs if r.model.kind == "vit"][:1]
    return save_preset(exp.model_copy(update={"name": "tui-overhead", "runs": vit}), folder / "bench.yaml")


def summary(runs: Path) -> dict | None:
    for path in runs.glob("*/*/summary.json"):
        s = json.loads(path.read_text())
        if s["status"] != "running":
            return s
    return None


def headless(preset: Path, runs: Path) -> float:
    subprocess.run([sys.executable, "-m", "vitlab", "run", str(preset), "--runs-dir", str(runs)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return summary(runs)["throughput_img_s"]


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def in_tui(preset: Path, runs: Path, size: tuple[int, int], timeout: float = 600) -> tuple[float, float, float]:
    """(img/s, seconds to first paint, the TUI's CPU while training in % of a core) of the real TUI in a pty."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vitlab", str(preset), "--runs-dir", str(runs)], stdin=slave,
                            stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm-256color"},
                            start_new_session=True)
    os.close(slave)
    screen, first_paint, pressed, training, result, checked = b"", None, False, None, None, 0.0
    try:
        while result is None and time.perf_counter() - start < timeout:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    screen = screen[-64:] + os.read(master, 1 << 16)  # keep draining: a full pty blocks the TUI
                except OSError:  # the TUI is gone
                    break
            if first_paint is None and FIRST_PAINT_MARK in screen:
                first_paint = time.perf_counter() - start
            if first_paint is not None and not pressed and SETTLED_MARK in screen:
                pressed = True
                os.write(master, CTRL_R)
            if time.perf_counter() - checked > 0.2:
                checked = time.perf_counter()
                if training is None and any('"StepsLogged"' in p.read_text() for p in runs.glob("*/*/metrics.jsonl")):
                    training = time.perf_counter(), cpu_seconds(proc.pid)  # the TUI's CPU from the first steps
                result = summary(runs)
        if result is not None:
            tui_cpu = 100 * (cpu_seconds(proc.pid) - training[1]) / (time.perf_counter() - training[0])
        quit_at = time.perf_counter()
        os.write(master, CTRL_Q)  # if the queue has not wound down yet, this asks: answer "cancel it and quit"
        while proc.poll() is None and time.perf_counter() - quit_at < 10:
            if select.select([master], [], [], 0.05)[0]:
                with suppress(OSError):
                    os.read(master, 1 << 16)
            if time.perf_counter() - quit_at > 1:
                os.write(master, b"c")
    finally:
        with suppress(psutil.Error):  # a TUI that did not quit: its training child goes too
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        proc.kill()
        os.close(master)
    if result is None:
        raise SystemExit("the TUI run did not finish")
    return result["throughput_img_s"], first_paint, tui_cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--size", default="120x36", help="terminal columns x rows")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    ratios, base, tui, paints, cpus = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        preset = write_preset(Path(tmp), args.epochs)
        for i in range(args.rounds):
            first_headless = i % 2 == 0  # alternate the order: a machine slowing down hits both alike
            if first_headless:
                base.append(headless(preset, Path(tmp) / f"headless-{i}"))
            ips, paint, cpu = in_tui(preset, Path(tmp) / f"tui-{i}", size)
            if not first_headless:
                base.append(headless(preset, Path(tmp) / f"headless-{i}"))
            tui.append(ips)
            paints.append(paint)
            cpus.append(cpu)
            ratios.append(ips / base[-1])
            print(f"round {i + 1}: headless {base[-1]:,.0f} img/s, TUI {ips:,.0f} img/s (ratio {ratios[-1]:.3f}; "
                  f"TUI process {cpu:.1f}% of a core), first paint {paint:.2f} s", file=sys.stderr)
    med = statistics.median
    print(f"quickstart vit-tiny, {args.epochs} epochs, {args.size}, {args.rounds} rounds: TUI / headless "
          f"{med(ratios):.3f} (median of rounds; medians {med(tui):,.0f} / {med(base):,.0f} img/s); the TUI used "
          f"{med(cpus):.1f}% of a core while training; first paint {med(paints):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
