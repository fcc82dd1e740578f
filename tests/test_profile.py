"""FLOPs include attention (fvcore + an SDPA handle) and agree with the closed form."""
import pytest
import torch

from vitlab.config import RunConfig
from vitlab.engine.models import LogitsOnly, build_model
from vitlab.engine.profile import count_flops, guessed, profile_run, vit_flops_analytic


def vit(patch=2, dim=192, heads=3, layers=2, size=32, **extra):
    return RunConfig.model_validate({"name": "v", "model": {"kind": "vit", "patch_size": patch, "embed_dim": dim,
                                                            "heads": heads, "layers": layers, **extra},
                                     "data": {"dataset": "cifar100", "image_size": size}})


def fvcore_without_attention_handle(model, size):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, size, size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


def test_vit_flops_include_attention():
    cfg = vit()
    model = build_model(cfg, 100)
    counted = count_flops(model, 32)
    assert counted == pytest.approx(vit_flops_analytic(cfg.model, 32, 100), rel=0.01)
    tokens = 16 * 16 + 1
    attention = 2 * 2 * tokens * tokens * 192  # layers x (QK^T + AV)
    assert counted - fvcore_without_attention_handle(model, 32) == attention  # exactly what fvcore would miss
    assert 0.10 < attention / counted < 0.25  # ~15 % at patch 2 on 32 px: a count without it is plainly wrong


@pytest.mark.parametrize("extra", [{}, {"class_token": False}, {"final_norm": False},
                                   {"class_token": False, "final_norm": False}, {"act": "relu", "mlp_dim": 100}])
def test_closed_form_equals_fvcore(extra):
    # not just within 1 %: every term, LayerNorms and the avg-pool fc_norm included, is fvcore's
    cfg = vit(dim=64, heads=2, **extra)
    assert count_flops(build_model(cfg, 10), 32) == vit_flops_analytic(cfg.model, 32, 10)


def test_swin_attention_counted_whether_sdpa_or_eager():
    from transformers import SwinConfig, SwinForImageClassification

    shape = dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4)
    sdpa = LogitsOnly(SwinForImageClassification(SwinConfig(**shape)))
    eager = LogitsOnly(SwinForImageClassification(SwinConfig(**shape, attn_implementation="eager")))
    assert sdpa.model.config._attn_implementation == "sdpa"  # transformers' default: fvcore alone misses it
    assert count_flops(sdpa, 32) == count_flops(eager, 32) > fvcore_without_attention_handle(sdpa, 32)


def test_profile_swin_needs_no_weights(tmp_path):
    cfg = RunConfig.model_validate({"name": "s", "model": {"kind": "swin", "variant": "tiny", "pretrained": True},
                                    "data": {"dataset": "cifar100", "root": str(tmp_path / "absent"), "image_size": 224}})
    p = profile_run(cfg)
    assert p.name == "s" and p.config == cfg.resolved()
    # Swin-T: 4.5 GFLOPs in its paper; without attention it would be 4.37
    assert p.params == p.trainable_params == 27_596_254 and p.flops == pytest.approx(4.51e9, rel=0.003)


def test_profile_of_a_swin_says_when_its_shapes_are_the_variant_s(tmp_path):
    """A Swin from scratch takes its shapes from model.weights' config.json; where that is not on this machine the
    profile is the variant's, and says so (it used to print the guess as if it were the run's)."""
    from transformers import SwinConfig

    SwinConfig(image_size=224, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
               window_size=7).save_pretrained(tmp_path / "small")

    def swin(weights):
        return RunConfig.model_validate({"name": "s", "model": {"kind": "swin", "weights": str(weights)},
                                         "data": {"dataset": "synthetic", "image_size": 224, "num_classes": 10}})

    saved = profile_run(swin(tmp_path / "small"))
    assert guessed(swin(tmp_path / "small")) is None and saved.params < 100_000  # the saved shapes, not Swin-T's
    guess = profile_run(swin(tmp_path / "absent"))
    assert guess.params > 27_000_000
    assert guessed(swin(tmp_path / "absent")) == (f"model.weights {tmp_path / 'absent'} is not on this machine: "
                                                  "the tiny variant's shapes are assumed")


def test_profile_resnet18_and_image_folder_classes(tmp_path):
    def resnet(size):
        return RunConfig.model_validate({"name": "r", "model": {"kind": "resnet18"},
                                         "data": {"dataset": "imagefolder", "root": str(tmp_path), "image_size": size}})

    r = profile_run(resnet(224))
    assert r.params == 11_689_512  # no image folder yet: an ImageNet-sized head, and the profile says so
    assert guessed(resnet(224)) == f"no image folder at {tmp_path / 'train'}: a 1000-class head is assumed"
    assert r.flops == pytest.approx(1.82e9, rel=0.003)  # torchvision's ResNet-18 at 224 px
    for name in ("cat", "dog", "eel"):
        (tmp_path / "train" / name).mkdir(parents=True)
    three = profile_run(resnet(32))
    assert three.params == 11_689_512 - 997 * 513 and guessed(resnet(32)) is None  # three class folders: 3 classes


def test_profile_counts_trainable_params():
    frozen = vit()
    frozen.train.freeze = "backbone"
    assert profile_run(frozen).trainable_params == 192 * 100 + 100


def test_count_flops_keeps_training_mode():
    model = build_model(vit(patch=4, dim=32, heads=2, layers=1), 10).train()
    count_flops(model, 32)
    assert model.training


def test_a_model_too_large_to_trace_is_profiled_from_its_shapes():
    """The TUI profiles as a form is typed: a 3.6B-parameter ViT must not cost 14 GB (it did)."""
    import resource

    huge = vit(patch=4, dim=4096, heads=4, layers=4, mlp_dim=102_400)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    p = profile_run(huge, trace_limit=10**8)
    assert p.params == p.trainable_params > 3.6e9 and p.flops == vit_flops_analytic(huge.model, 32, 100)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # no real weights built
    assert profile_run(vit(patch=4, dim=4096, heads=4, layers=4, stem="conv"), trace_limit=10**8).flops is None
    small = vit(patch=4, dim=64, heads=2, layers=1, stem="conv")
    assert profile_run(small, trace_limit=10**8) == profile_run(small)  # under the limit: traced as always


def test_the_tui_profiles_a_huge_vit_from_its_shapes_without_building_it(monkeypatch):
    # default_profiler is what the form's hint calls: it must pass its trace limit, or the real 3.6B model is built
    import vitlab.engine.models as models
    from vitlab.tui.app import default_profiler

    real = models.build_model

    def on_meta_only(*args, **kwargs):
        assert torch.empty(0).device.type == "meta", "the real model was built"  # ~14 GB: stopped before it is
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "build_model", on_meta_only)
    huge = vit(patch=4, dim=4096, heads=4, layers=4, mlp_dim=102_400)
    p = default_profiler(huge)
    assert p.params > 3.6e9 and p.flops == vit_flops_analytic(huge.model, 32, 100)
