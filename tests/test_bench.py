"""A CPU smoke of the benchmark, so it keeps working; its figures are printed, never asserted."""
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench" / "bench.py"


def test_bench_runs_both_loops_and_reports_the_ratio():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--model", "vit-c", "--steps", "10",
                          "--warmup", "10", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    [result] = [json.loads(line) for line in out.stdout.splitlines()]
    assert result["variant"] == "eager" and result["cuda_graphs"] is False
    assert result["plain_img_s"] > 0 and result["img_s"] > 0
    assert result["ratio"] == round(result["img_s"] / result["plain_img_s"], 2)
    assert result["flops"] > 0 and result["mfu"] is None  # no MFU without a GPU's peak
