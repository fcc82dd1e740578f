"""Shared test setup: pinned CPU threads, offline Hugging Face, no GPU."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("NO_COLOR", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _pin_threads():
    import torch

    torch.set_num_threads(2)
    yield
