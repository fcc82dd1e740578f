"""The engine, CLI and config import without Textual; the TUI's import path does not load torch; the default
dataset loads without importing scikit-learn (its import is ~1.7 s of CPU, in every process that trains)."""
import pkgutil
import subprocess
import sys

import vitlab.engine


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_engine_never_imports_textual_nor_digits_sklearn():
    modules = [f"vitlab.engine.{m.name}" for m in pkgutil.iter_modules(vitlab.engine.__path__)]
    modules += ["vitlab.config", "vitlab.presets", "vitlab.report", "vitlab.cli", "vitlab.errors"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += ("import torch\nfrom vitlab.config import DataConfig\nfrom vitlab.engine.data import load_data\n"
             "load_data(DataConfig(dataset='digits'), torch.device('cpu'))\n"
             "print('textual' in sys.modules, 'sklearn' in sys.modules)")
    assert run_python(code).split() == ["False", "False"]


def test_config_and_presets_are_torch_free():
    out = run_python("import sys, vitlab.config, vitlab.presets, vitlab.report, vitlab.engine.events,"
                     "vitlab.engine.weights; print('torch' in sys.modules)")  # `vitlab presets` checks weights
    assert out.strip() == "False"
