"""MFU's denominator: the dense peak of the GPU torch names, matched as whole words, the specific names first."""
import pytest
import torch

from vitlab.engine import device as devices


@pytest.mark.parametrize("name, precision, tflops", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.0),
    ("NVIDIA H100 PCIe", "bf16", 756.0),  # not the SXM's peak
    ("NVIDIA H100 NVL", "fp32", 417.5),
    ("NVIDIA H200", "fp16", 989.0),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA L4", "bf16", 121.0),
    ("NVIDIA L40S", "bf16", 362.0),  # "L4" is in its name: not an L4
    ("NVIDIA L40", "fp32", 90.5),
    ("NVIDIA A10", "bf16", 125.0),
    ("NVIDIA A10G", "bf16", None),  # not listed: no MFU rather than an A10's
    ("Tesla T4", "bf16", None),  # no bf16 tensor cores
    ("Tesla T4", "fp16", 65.0),
    ("NVIDIA GeForce RTX 3090", "bf16", None),
])
def test_peak_by_device_name(name, precision, tflops):
    assert devices.peak_tflops(name, precision) == tflops


def test_mfu_counts_forward_and_backward_flops_against_the_peak(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L40S")
    cuda = torch.device("cuda", 0)
    # 1 GMAC per image = 2 GFLOP forward, x3 with the backward; 1000 img/s = 6 TFLOP/s of 362
    assert devices.mfu(10**9, 1000.0, cuda, "bf16") == pytest.approx(6 / 362)
    assert devices.mfu(10**9, 1000.0, torch.device("cpu"), "bf16") is None
    # a run that failed before its first throughput reading showed "0.00%" next to img/s "-" in compare
    assert devices.mfu(10**9, None, cuda, "bf16") is None
    # N processes' img/s is the job's, against N devices' peak (it read N times too high); a linear probe's
    # backward runs through its classifier alone, so its work is the forward pass
    assert devices.mfu(10**9, 2000.0, cuda, "bf16", gpus=2) == pytest.approx(6 / 362)
    assert devices.mfu(10**9, 1000.0, cuda, "bf16", probe=True) == pytest.approx(2 / 362)
