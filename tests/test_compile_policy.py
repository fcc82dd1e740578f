"""train.compile: auto compiles only where compilation repays its start-up; true/false are obeyed."""
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine.distributed import Dist
from vitlab.engine.runner import COMPILE_PAYS_OFF_IMAGES, compile_wanted, train_run

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")  # compared against only, never used


def config(model=None, **train):
    data = {"dataset": "synthetic", "image_size": 224}  # a size every model kind accepts
    return RunConfig.model_validate({"name": "c", "model": model or {"kind": "vit"}, "data": data, "train": train})


def test_auto_compiles_long_single_process_vit_runs_on_cuda():
    samples = COMPILE_PAYS_OFF_IMAGES // 100
    on, why = compile_wanted(config(epochs=100), CUDA, Dist(), samples)
    assert on and "2,000,000 training images" in why
    off, why = compile_wanted(config(epochs=99), CUDA, Dist(), samples)
    assert not off and "1,980,000 training images" in why and "train.compile: true" in why


@pytest.mark.parametrize("model, device", [({"kind": "vit"}, CPU), ({"kind": "resnet18"}, CUDA),
                                           ({"kind": "swin", "pretrained": False}, CUDA)])
def test_auto_leaves_unmeasured_cases_alone(model, device):
    assert compile_wanted(config(model, epochs=10_000), device, Dist(), 50_000)[0] is False


@pytest.mark.parametrize("setting", [True, False])
def test_an_explicit_setting_is_obeyed(setting):
    assert compile_wanted(config(epochs=1, compile=setting), CPU, Dist(), 10)[0] is setting


def test_the_summary_says_whether_the_run_was_compiled(tmp_path):
    cfg = RunConfig.model_validate({
        "name": "s", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 32, "limit_val": 16},
        "train": {"epochs": 1, "batch_size": 16, "checkpoint": False}})
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path)
    assert summary["status"] == "finished" and summary["compiled"] is False
    assert "torch.compile off (auto: only single-process ViT runs on CUDA" in (tmp_path / "e").joinpath(
        summary["run_dir"].split("/e/")[-1], "run.log").read_text()


def test_a_compiled_model_keeps_static_shapes_and_the_evaluation_runs_uncompiled(tmp_path, monkeypatch):
    """dynamo's default turned the epoch's shorter last window into a dynamic-shape graph that every full window
    ran through from then on; the evaluation's batch compiled one more graph (about 20 s on a GPU each)."""
    asked, seen = {}, []

    class Compiled(torch.nn.Module):  # stands for torch.compile's module: the same model, its calls recorded
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            seen.append((len(x), self.model.training))
            return self.model(x)

    def compile_(model, **kwargs):
        asked.update(kwargs)
        return Compiled(model)

    monkeypatch.setattr(torch, "compile", compile_)
    cfg = RunConfig.model_validate({
        "name": "s", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 40, "limit_val": 16},
        "train": {"epochs": 2, "batch_size": 16, "compile": True, "checkpoint": False}})
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path)
    assert summary["status"] == "finished" and summary["compiled"] is True and asked["dynamic"] is False
    assert seen == [(16, True), (16, True), (8, True)] * 2  # training only: 40 = 16 + 16 + 8, each epoch
