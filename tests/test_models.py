"""The model factory builds the libraries' own models: params equal timm / torchvision / transformers, and
weights load from the formats those libraries write."""
import re

import pytest
import torch
from hub_cache import in_hub_cache
from torch import nn

from vitlab.config import RunConfig
from vitlab.engine.models import ConvStem, build_model, classifier_head, count_params
from vitlab.errors import ModelError


def run(model, size=32, dataset="synthetic", **train):
    return RunConfig.model_validate({"name": "m", "model": model, "data": {"dataset": dataset, "image_size": size},
                                     "train": train})


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("extra, timm_args", [
    ({}, {}),
    ({"act": "relu", "class_token": False, "final_norm": False, "mlp_dim": 100},
     {"act_layer": nn.ReLU, "class_token": False, "global_pool": "avg", "final_norm": False, "mlp_ratio": 100 / 96}),
])
def test_vit_params_match_timm(extra, timm_args):
    from timm.models.vision_transformer import VisionTransformer

    ours = build_model(run({"kind": "vit", "patch_size": 4, "embed_dim": 96, "heads": 3, "layers": 2, **extra}), 10)
    ref = VisionTransformer(img_size=32, patch_size=4, num_classes=10, embed_dim=96, depth=2, num_heads=3, **timm_args)
    assert count_params(ours) == (n_params(ref),) * 2
    assert ours(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_mlp_dim_survives_float_rounding():
    assert int(88 * (120 / 88)) == 119  # what timm would build from the plain ratio
    built = build_model(run({"kind": "vit", "patch_size": 4, "embed_dim": 88, "heads": 2, "layers": 1,
                             "mlp_dim": 120}), 10)
    assert built.blocks[0].mlp.fc1.out_features == 120


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

    assert count_params(build_model(run({"kind": "resnet18"}, 224, "cifar100"), 100))[0] == 11_227_812
    donor = torchvision.models.resnet18(num_classes=1000)
    torch.save(donor.state_dict(), tmp_path / "r18.pt")
    cfg = run({"kind": "resnet18", "weights": str(tmp_path / "r18.pt")})
    new_head = build_model(cfg, 10)
    assert torch.equal(new_head.conv1.weight, donor.conv1.weight) and new_head.fc.out_features == 10
    same_head = build_model(cfg, 1000)
    assert torch.equal(same_head.fc.weight, donor.fc.weight)
    assert count_params(build_model(cfg, 10, load_weights=False))[0] == count_params(new_head)[0]


def test_resnet18_cifar_stem_keeps_32px_into_the_first_block():
    cifar = build_model(run({"kind": "resnet18", "stem": "cifar"}, 32, "cifar100"), 100)
    # torchvision's count less the stem's 7x7 kernels plus 3x3 ones: 11,227,812 - 9,408 + 1,728 (kuangliu's CIFAR
    # ResNet-18 has the same 11,220,132)
    assert count_params(cifar)[0] == 11_220_132
    stem = torch.nn.Sequential(cifar.conv1, cifar.bn1, cifar.relu, cifar.maxpool)
    assert stem(torch.zeros(1, 3, 32, 32)).shape[-1] == 32  # the ImageNet stem leaves 8
    with pytest.raises(ValueError, match="pretrained ResNet-18 weights come with the ImageNet stem"):
        run({"kind": "resnet18", "stem": "cifar", "weights": "r18.pt"})


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not a checkpoint", "not a loadable state dict"),
    (torch.zeros(3), "holds a Tensor, not a state dict"),
    ({"conv1.weight": torch.zeros(1)}, "does not fit ResNet-18"),
    ({"model": {}}, r"not a ResNet-18 state dict \(\d+ missing, 1 unexpected"),
])
def test_bad_resnet18_weights_name_the_file(tmp_path, content, message):
    path = tmp_path / "r18.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ModelError, match=message) as e:
        build_model(run({"kind": "resnet18", "weights": str(path)}), 10)
    assert str(path) in str(e.value) and "weights_only=False" not in str(e.value)


@pytest.mark.parametrize("variant, params", [("tiny", 27_596_254), ("small", 48_914_158)])
def test_swin_scratch_params_match_transformers(variant, params):
    # the Hugging Face swin-{tiny,small}-patch4-window7-224 shapes with a 100-class head
    assert count_params(build_model(run({"kind": "swin", "variant": variant}, 224, "cifar100"), 100))[0] == params


def test_swin_below_its_window_is_refused_up_front():
    # transformers' Swin would fail in its first forward pass: 192 px leaves a 6x6 last stage, window 7.
    # The config refuses it for the variant shapes; the factory still guards a config built another way.
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 224"):
        run({"kind": "swin"}, 192)
    cfg = run({"kind": "swin"}, 224).model_copy(update={"data": run({"kind": "vit"}, 192).data})
    with pytest.raises(ModelError, match=r"image_size 192 is too small .* a multiple of 32 from 224\."):
        build_model(cfg, 10)


@pytest.fixture
def tiny_swin_dir(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        num_labels=7)
    model = SwinForImageClassification(config)
    model.save_pretrained(tmp_path / "tiny-swin")
    return tmp_path / "tiny-swin", model


def test_pretrained_swin_from_save_pretrained_dir(tiny_swin_dir, capfd):
    path, saved = tiny_swin_dir
    capfd.readouterr()
    built = build_model(run({"kind": "swin", "pretrained": True, "weights": str(path)}), 10)
    assert capfd.readouterr() == ("", "")  # no load report, no progress bar: the TUI owns the terminal
    name = "swin.encoder.layers.1.blocks.0.attention.q_proj.weight"
    assert torch.equal(built.model.get_parameter(name), saved.get_parameter(name))
    assert built.model.classifier.out_features == 10  # the head was replaced for this dataset
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    same_classes = build_model(run({"kind": "swin", "pretrained": True, "weights": str(path)}), 7)
    assert torch.equal(same_classes.model.classifier.weight, saved.classifier.weight)
    # the profiler reads the checkpoint's shapes from its config.json, not the variant's
    shapes_only = build_model(run({"kind": "swin", "pretrained": True, "weights": str(path)}), 10, load_weights=False)
    assert count_params(shapes_only) == count_params(built)


@pytest.fixture
def tiny_swin_as_hub_tiny(tiny_swin_dir):
    """The tiny Swin in the Hugging Face cache under the id vitlab uses for `variant: tiny`."""
    with in_hub_cache("microsoft/swin-tiny-patch4-window7-224", tiny_swin_dir[0]):
        yield tiny_swin_dir[1]


def test_pretrained_swin_from_the_hugging_face_cache(tiny_swin_as_hub_tiny):
    built = build_model(run({"kind": "swin", "variant": "tiny", "pretrained": True}, 224), 10)
    name = "swin.encoder.layers.1.blocks.0.attention.q_proj.weight"
    assert torch.equal(built.model.get_parameter(name), tiny_swin_as_hub_tiny.get_parameter(name))
    shapes_only = build_model(run({"kind": "swin", "variant": "tiny", "pretrained": True}, 224), 10, load_weights=False)
    assert count_params(shapes_only) == count_params(built)  # the profile reads the cached config.json


def test_swin_checkpoint_with_unmatched_weights_is_refused(tiny_swin_dir):
    from safetensors.torch import load_file, save_file

    path, _ = tiny_swin_dir
    state = load_file(path / "model.safetensors")
    save_file({k.replace("layers.1.", "stages.1."): v for k, v in state.items()}, path / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ModelError, match="not a Swin image-classification checkpoint"):
        build_model(run({"kind": "swin", "pretrained": True, "weights": str(path)}), 10)


def test_swin_weights_reshaped_by_the_image_size_are_refused(tmp_path):
    """ignore_mismatched_sizes is for the head: absolute position embeddings saved at 32 px and loaded at 64 came
    back re-initialised, without a word."""
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        use_absolute_embeddings=True)
    SwinForImageClassification(config).save_pretrained(tmp_path / "abs")
    with pytest.raises(ModelError, match=r"swin.embeddings.position_embeddings is \(1, 64, 16\) in the checkpoint but "
                                         r"\(1, 256, 16\) at data.image_size 64.* use data.image_size 32"):
        build_model(run({"kind": "swin", "pretrained": True, "weights": str(tmp_path / "abs")}, 64), 10)
    assert build_model(run({"kind": "swin", "pretrained": True, "weights": str(tmp_path / "abs")}, 32), 10)


def test_a_known_hub_id_names_its_variant():
    """weights: microsoft/swin-base-... with the default variant was labelled and profiled as Swin-T."""
    from vitlab.config import SwinModel, model_label

    base = SwinModel(pretrained=True, weights="microsoft/swin-base-patch4-window7-224")
    assert base.variant == "base" and model_label(base) == "Swin-B pretrained"
    # the weights decide, also over a variant written beside them (config.yaml files before this wrote tiny)
    assert SwinModel(variant="small", weights="microsoft/swin-base-patch4-window7-224").variant == "base"


def test_missing_pretrained_swin_says_how_to_get_it(tmp_path):
    how = "hf download microsoft/swin-tiny-patch4-window7-224"
    with pytest.raises(ModelError, match=how):
        build_model(run({"kind": "swin", "variant": "tiny", "pretrained": True}, 224), 10)
    with pytest.raises(ModelError, match=re.escape(f"'{tmp_path / 'absent'}' are neither a directory here")):
        build_model(run({"kind": "swin", "pretrained": True, "weights": str(tmp_path / "absent")}), 10)
    with pytest.raises(ModelError, match="hf download facebook/swin-other"):  # its own id, not the variant's
        build_model(run({"kind": "swin", "pretrained": True, "weights": "facebook/swin-other"}), 10)
    with pytest.raises(ModelError, match=re.escape(f"model.weights {tmp_path}: cannot load Swin weights from it")):
        build_model(run({"kind": "swin", "pretrained": True, "weights": str(tmp_path)}), 10)
    # the profiler needs shapes only: no weights, no error
    shapes_only = build_model(run({"kind": "swin", "pretrained": True}, 224, "cifar100"), 100, load_weights=False)
    assert count_params(shapes_only)[0] == 27_596_254


@pytest.mark.parametrize("model", [
    {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1},
    {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1, "stem": "conv"},
    {"kind": "resnet18"},
    {"kind": "swin", "variant": "tiny"},
])
def test_freeze_backbone_trains_the_head_only(model):
    size = 224 if model["kind"] == "swin" else 32
    built = build_model(run(model, size, freeze="backbone"), 10)
    trainable = {n for n, p in built.named_parameters() if p.requires_grad}
    head = {"vit": {"head.weight", "head.bias"}, "resnet18": {"fc.weight", "fc.bias"},
            "swin": {"model.classifier.weight", "model.classifier.bias"}}[model["kind"]]
    assert trainable == head
    # and without freeze everything trains
    assert count_params(build_model(run(model, size), 10))[1] == count_params(built)[0]


def test_a_linear_probe_trains_on_the_backbones_inference_features(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    from vitlab.engine.loop import train_mode

    config = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=4,
                        drop_path_rate=0.5, hidden_dropout_prob=0.3, num_labels=7)
    SwinForImageClassification(config).save_pretrained(tmp_path / "swin")
    probe = build_model(run({"kind": "swin", "pretrained": True, "weights": str(tmp_path / "swin")},
                            freeze="backbone"), 10)
    x = torch.randn(4, 3, 32, 32)
    train_mode(probe, "backbone")  # stochastic depth and dropout off in the frozen backbone, the head trains
    assert torch.equal(probe(x), probe(x)) and classifier_head(probe).training
    train_mode(probe, "none")  # fine-tuning keeps them
    assert not torch.equal(probe(x), probe(x))
    resnet = build_model(run({"kind": "resnet18"}, 32, freeze="backbone"), 10)
    train_mode(resnet, "backbone")
    assert not resnet.bn1.training  # BatchNorm's running statistics stay the pretrained ones


def test_conv_stem_reaches_patch_stride():
    stem = ConvStem(img_size=32, patch_size=8, embed_dim=64)
    convs = [m for m in stem.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)] and convs[-1].kernel_size == (1, 1)
    assert [c.out_channels for c in convs] == [16, 32, 64, 64]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in stem.modules()) == 3
    assert sum(isinstance(m, nn.ReLU) for m in stem.modules()) == 3
    assert stem(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 64)  # (B, tokens, embed_dim), like PatchEmbed
    built = build_model(run({"kind": "vit", "patch_size": 8, "embed_dim": 64, "heads": 2, "layers": 1, "stem": "conv"}), 10)
    assert isinstance(built.patch_embed, ConvStem)
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("dim, widths", [(192, [24, 48, 96, 192]), (384, [48, 96, 192, 384]),
                                         (768, [64, 128, 256, 512])])
def test_conv_stem_widths_follow_the_paper(dim, widths):
    # ViTC-1GF and -4GF stems exactly; ViT-B/16's 64..512 (the paper's 18GF stem spans the same)
    stem = ConvStem(img_size=224, patch_size=16, embed_dim=dim)
    assert [m.out_channels for m in stem.modules() if isinstance(m, nn.Conv2d)] == widths + [dim]
