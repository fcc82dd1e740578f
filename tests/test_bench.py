"""A CPU smoke of the benchmark, so it keeps working; its figures are printed, never asserted. Micro-batch 16:
the smoke checks the code path, not the speed (at the default 64 the two took ~2 minutes of the suite)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench" / "bench.py"


def test_bench_runs_both_loops_and_reports_the_ratio():
    out = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--model", "vit-c", "--steps", "10",
                          "--warmup", "10", "--batch", "16", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    [result] = [json.loads(line) for line in out.stdout.splitlines()]
    assert result["variant"] == "eager" and result["cuda_graphs"] is False
    assert result["plain_img_s"] > 0 and result["img_s"] > 0
    # the ratio is of the unrounded plain figure, then rounded to 2 places: within that rounding of the printed
    # figures' ratio (90.8 / 21.8 = 4.17, printed 4.16; 0.316 printed 0.32)
    assert result["ratio"] == pytest.approx(result["img_s"] / result["plain_img_s"], rel=0.01, abs=0.006)
    assert result["flops"] > 0 and result["mfu"] is None  # no MFU without a GPU's peak


def test_step_profile_lists_where_the_time_goes(tmp_path):
    trace = tmp_path / "trace.json"
    out = subprocess.run([sys.executable, str(BENCH.parent / "profile_step.py"), "--device", "cpu", "--model",
                          "vit-c", "--warmup", "10", "--steps", "10", "--top", "5", "--batch", "16",
                          "--trace", str(trace)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("vit-c eager fp32, micro 16 x 1") and "10 steps profiled" in lines[0]
    assert lines[1].startswith("per step: wall") and "operators (self CPU time)" in lines[1]
    assert len(lines) == 3 + 5 and any("aten::" in line for line in lines[3:])
    assert json.loads(trace.read_text())["traceEvents"]
