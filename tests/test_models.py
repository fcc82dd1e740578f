"""The model factory builds the libraries' own models: params equal timm / torchvision / transformers."""
import pytest
import torch
from torch import nn

from vitlab.config import RunConfig
from vitlab.engine.models import ConvStem, build_model, count_params
from vitlab.errors import ModelError


def run(model, size=32, dataset="synthetic", **train):
    return RunConfig.model_validate({"name": "m", "model": model, "data": {"dataset": dataset, "image_size": size},
                                     "train": train})


def test_vit_params_match_timm():
    from timm.models.vision_transformer import VisionTransformer

    ours = build_model(run({"kind": "vit", "patch_size": 4, "embed_dim": 96, "heads": 3, "layers": 2}), 10)
    ref = VisionTransformer(img_size=32, patch_size=4, num_classes=10, embed_dim=96, depth=2, num_heads=3)
    assert count_params(ours) == (sum(p.numel() for p in ref.parameters()),) * 2
    assert ours(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name, patch, dim, heads, layers, params", [
    ("ViT-A", 8, 512, 2, 8, 17_374_820), ("ViT-B", 4, 512, 4, 8, 18_505_316),
    ("ViT-C", 8, 256, 2, 4, 3_435_364), ("ViT-D", 4, 256, 2, 8, 7_159_652)])
def test_seed_report_vit_params(name, patch, dim, heads, layers, params):
    model = {"kind": "vit", "patch_size": patch, "embed_dim": dim, "heads": heads, "layers": layers,
             "mlp_dim": 1024, "act": "relu", "final_norm": False}
    built = build_model(run(model, 224, "cifar100"), 100)
    assert count_params(built)[0] == params
    assert any(isinstance(m, nn.ReLU) for m in built.modules())


def test_resnet18_params_and_local_weights(tmp_path):
    import torchvision

    assert count_params(build_model(run({"kind": "resnet18"}, 32, "cifar100"), 100))[0] == 11_227_812
    donor = torchvision.models.resnet18(num_classes=1000)
    torch.save(donor.state_dict(), tmp_path / "r18.pt")
    built = build_model(run({"kind": "resnet18", "weights": str(tmp_path / "r18.pt")}), 10)
    assert torch.equal(built.conv1.weight, donor.conv1.weight) and built.fc.out_features == 10
    with pytest.raises(ModelError, match="no such file"):
        build_model(run({"kind": "resnet18", "weights": str(tmp_path / "nope.pt")}), 10)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a loadable state dict"):
        build_model(run({"kind": "resnet18", "weights": str(tmp_path / "junk.pt")}), 10)


def test_swin_scratch_params_match_transformers():
    from transformers import SwinConfig, SwinForImageClassification

    ours = build_model(run({"kind": "swin", "variant": "tiny"}, 224, "cifar100"), 100)
    assert count_params(ours)[0] == 27_596_254  # HF swin-tiny-patch4-window7-224 with a 100-class head
    ref = SwinForImageClassification(SwinConfig(num_labels=100))
    assert count_params(ours)[0] == sum(p.numel() for p in ref.parameters())


@pytest.fixture
def tiny_swin_dir(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        num_labels=7)
    model = SwinForImageClassification(config)
    model.save_pretrained(tmp_path / "tiny-swin")
    return tmp_path / "tiny-swin", model


def test_pretrained_swin_from_save_pretrained_dir(tiny_swin_dir):
    path, saved = tiny_swin_dir
    built = build_model(run({"kind": "swin", "pretrained": True, "weights": str(path)}), 10)
    ours = dict(built.model.named_parameters())
    name = "swin.embeddings.patch_embeddings.projection.weight"
    assert torch.equal(ours[name], dict(saved.named_parameters())[name])
    assert built.model.classifier.out_features == 10  # the head was replaced for this dataset
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_missing_pretrained_swin_says_how_to_get_it():
    with pytest.raises(ModelError, match="huggingface-cli download microsoft/swin-tiny-patch4-window7-224"):
        build_model(run({"kind": "swin", "variant": "tiny", "pretrained": True}, 224), 10)
    # the profiler needs shapes only: no weights, no error
    assert count_params(build_model(run({"kind": "swin", "pretrained": True}, 224), 10, load_weights=False))[0] > 0


@pytest.mark.parametrize("model", [
    {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1},
    {"kind": "resnet18"},
    {"kind": "swin", "variant": "tiny"},
])
def test_freeze_backbone_trains_the_head_only(model):
    built = build_model(run(model, 32 if model["kind"] != "swin" else 64, freeze="backbone"), 10)
    trainable = [n for n, p in built.named_parameters() if p.requires_grad]
    assert trainable and all(any(k in n for k in ("head", "fc", "classifier")) for n in trainable)
    assert count_params(built)[1] < count_params(built)[0]


def test_conv_stem_reaches_patch_stride():
    stem = ConvStem(img_size=32, patch_size=8, embed_dim=64)
    convs = [m for m in stem.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)] and convs[-1].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in stem.modules()) == 3
    assert stem(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 64)
    built = build_model(run({"kind": "vit", "patch_size": 8, "embed_dim": 64, "heads": 2, "layers": 1, "stem": "conv"}), 10)
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
