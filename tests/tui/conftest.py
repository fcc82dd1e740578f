"""Fixtures of the TUI tests: a private config dir, a runs dir, tiny presets and fake engine events."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_PRESET = """\
name: tiny
description: two tiny ViTs on digits
defaults:
  data: {{dataset: digits}}
  train: {{epochs: {epochs}, batch_size: 64, lr: 3.0e-3, log_every: {log_every}, checkpoint: false}}
runs:
  - name: vit-a
    model: {{kind: vit, patch_size: 2, embed_dim: 32, heads: 2, layers: 1, mlp_ratio: 2}}
  - name: vit-b
    model: {{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1, mlp_ratio: 2}}
"""


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings and user presets go to a temporary XDG_CONFIG_HOME, never the real ~/.config."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_stray_training(tmp_path: Path):
    """Training processes outlive the app by design: end any a test left behind (its session, torchrun included)."""
    yield
    import contextlib
    import signal

    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "worker" in cmdline and any(str(tmp_path) in arg for arg in cmdline):
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # a session leader: the child the app started
            except OSError:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def write_preset(path: Path, epochs: int = 2, log_every: int = 2) -> Path:
    path.write_text(TINY_PRESET.format(epochs=epochs, log_every=log_every))
    return path


@pytest.fixture
def tiny_preset(tmp_path: Path) -> Path:
    return write_preset(tmp_path / "tiny.yaml")


def make_app(preset: Path | None = None, runs_dir: Path = Path("runs"), profiler="fake", standby: bool = False):
    """The app; without the standby training process unless a test asks (each one loads torch: CPU)."""
    from vitlab.tui.app import VitlabApp

    if profiler == "fake":
        profiler = fake_profiler
    app = VitlabApp(preset, runs_dir, profiler=profiler, standby=standby)
    # every toast in app.told: Textual drops expired ones from app._notifications, and on a loaded machine a
    # toast can expire before the training the test waits for ends
    app.told, notify = [], app.notify

    def record(message: str, **kwargs) -> None:
        app.told.append(Toast(message, kwargs.get("title", "")))
        notify(message, **kwargs)

    app.notify = record
    return app


@dataclass
class Toast:
    message: str
    title: str


def fake_profiler(cfg):
    """Deterministic stand-in for profile_run (no torch): figures from the config alone."""
    from vitlab.engine.profile import Profile

    params = 1000 + 10 * len(cfg.name)
    return Profile(cfg.name, params, params, 123_456_789, cfg.resolved())


async def wait_for(pilot, condition, timeout: float = 60.0, step: float = 0.1) -> None:
    """Poll with plain sleeps: pilot.pause() visits every widget, which would steal CPU from training."""
    import asyncio
    import time

    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out waiting for the app")
        await asyncio.sleep(step)
    await pilot.pause()


os.environ.setdefault("NO_COLOR", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests on a fresh event loop (no pytest-asyncio needed)."""
    import asyncio
    import inspect

    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(pyfuncitem.obj(**kwargs))
        return True
    return None


async def form_ready(pilot) -> None:
    """The form mounts its lower fields right after the first paint (see run_form.py): wait for them."""
    for _ in range(200):
        if pilot.app.setup.form.complete:
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the form's fields never finished mounting")
