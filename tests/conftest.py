"""Shared test setup: pinned CPU threads, offline Hugging Face with a cache of its own, no GPU.

One thread per test process: pytest-xdist runs two (pyproject's addopts), one per core of a 2-core machine."""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("NO_COLOR", "1")
# Tests write the Hugging Face cache they need (tests/hub_cache.py); a developer's real cache, with real Swin
# weights in it, must not change what they see. Set before transformers is imported anywhere.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="vitlab-test-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HUB_CACHE"], ignore_errors=True)

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _pin_threads():
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    yield
