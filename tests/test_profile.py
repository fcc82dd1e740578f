"""FLOPs include attention (fvcore + an SDPA handle) and agree with the closed form."""
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine.models import build_model
from vitlab.engine.profile import count_flops, profile_run, vit_flops_analytic


def vit(patch=2, dim=192, heads=3, layers=2, size=32, **extra):
    return RunConfig.model_validate({"name": "v", "model": {"kind": "vit", "patch_size": patch, "embed_dim": dim,
                                                            "heads": heads, "layers": layers, **extra},
                                     "data": {"dataset": "cifar100", "image_size": size}})


def fvcore_without_attention(model, size):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, size, size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


def test_vit_flops_match_closed_form_and_include_attention():
    cfg = vit()
    model = build_model(cfg, 100)
    counted = count_flops(model, 32)
    analytic = vit_flops_analytic(cfg.model, 32, 100)
    assert counted == pytest.approx(analytic, rel=0.01)
    tokens = 16 * 16 + 1
    attention = 2 * 2 * tokens * tokens * 192  # layers x (QK^T + AV)
    assert counted - fvcore_without_attention(model, 32) == attention  # exactly what fvcore would miss
    assert 0.10 < attention / counted < 0.25  # ~15 % at patch 2 on 32 px: a count without it is plainly wrong


def test_profile_needs_no_data_or_weights(tmp_path):
    cfg = RunConfig.model_validate({"name": "s", "model": {"kind": "swin", "variant": "tiny", "pretrained": True},
                                    "data": {"dataset": "cifar100", "root": str(tmp_path / "absent"), "image_size": 224}})
    p = profile_run(cfg)
    assert p.params == 27_596_254 and p.flops == pytest.approx(4.5e9, rel=0.03)  # Swin-T: 4.5 GFLOPs
    r = profile_run(RunConfig.model_validate({"name": "r", "model": {"kind": "resnet18"},
                                              "data": {"dataset": "imagefolder", "root": str(tmp_path), "image_size": 224}}))
    assert r.flops == pytest.approx(1.82e9, rel=0.01)  # torchvision's ResNet-18 at 224 px
    frozen = profile_run(vit().model_copy(update={"train": vit().train.model_copy(update={"freeze": "backbone"})}))
    assert frozen.trainable_params == 192 * 100 + 100


def test_count_flops_keeps_training_mode():
    model = build_model(vit(patch=4, dim=32, heads=2, layers=1), 10).train()
    count_flops(model, 32)
    assert model.training
