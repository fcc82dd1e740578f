"""A queue checks every run's data, weights and device before its first run: one message for all that is
missing, naming the runs that need it and saying how to get it, and nothing trains."""
import pytest
import torch
from datagen import write_cifar, write_imagefolder
from hub_cache import in_hub_cache

from vitlab.config import ExperimentConfig, RunConfig
from vitlab.engine.preflight import queue_blockers
from vitlab.engine.runner import run_experiment
from vitlab.errors import CannotStart


def run(name, model=None, **data):
    model = model or {"kind": "resnet18"}
    if model["kind"] == "swin":
        data.setdefault("image_size", 224)
    return RunConfig.model_validate({"name": name, "model": model, "data": data})


def test_every_missing_dataset_is_named_with_its_runs(tmp_path):
    write_cifar(tmp_path / "here", "cifar10", n_train=10, n_test=5)
    runs = [run("digits"), run("c10", dataset="cifar10", root=str(tmp_path / "here")),
            run("c100-a", dataset="cifar100", root=str(tmp_path)),
            run("folder", dataset="imagefolder", root=str(tmp_path / "pics")),
            run("c100-b", dataset="cifar100", root=str(tmp_path)),
            run("fetch", dataset="cifar100", root=str(tmp_path / "net"), download=True)]
    first, message = queue_blockers(runs)
    assert first == "c100-a"
    assert message.count("not found") == 2 and "Needed by c100-a, c100-b." in message
    assert f"image folder {tmp_path / 'pics' / 'train'} not found" in message and "Needed by folder." in message
    assert "c10," not in message and "fetch" not in message  # present, or to be downloaded by the loader
    assert [line.rsplit("Needed by ", 1)[1] for line in message.splitlines()] == ["c100-a, c100-b.", "folder."]
    assert queue_blockers(runs[:2]) is None


def test_an_image_folder_imagefolder_would_refuse_is_named_before_the_queue_starts(tmp_path):
    folder = run("folder", dataset="imagefolder", root=str(tmp_path))
    write_imagefolder(tmp_path, classes=("cat", "dog"), n_per_class=1, size=4)
    assert queue_blockers([folder]) is None
    (tmp_path / "val" / "dog" / "0000.png").rename(tmp_path / "val" / "dog" / "notes.txt")  # not an image
    (tmp_path / "train" / "emu" / "deep").mkdir(parents=True)
    (tmp_path / "val" / "emu").mkdir()
    write_imagefolder(tmp_path / "train" / "emu" / "deep", classes=("x",), n_per_class=1, size=4, splits=("",))
    _, message = queue_blockers([folder])  # a class's images may sit in subfolders, as ImageFolder reads them
    assert message == (f"image folder {tmp_path}: no images in val/dog, val/emu; every class folder needs at least "
                       "one (.jpg, .png, ...) (data.root). Needed by folder.")
    (tmp_path / "val" / "emu").rmdir()
    assert "different classes (only in train: ['emu']; only in val: none)" in queue_blockers([folder])[1]
    one = tmp_path / "one"
    write_imagefolder(one, classes=("cat",), n_per_class=1, size=4)
    assert queue_blockers([run("one", dataset="imagefolder", root=str(one))])[1].startswith(
        f"image folder {one}: one class folder (cat); a classifier needs at least two")
    for split in ("train", "val"):
        for path in sorted((tmp_path / split).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    assert queue_blockers([folder])[1].startswith(f"image folder {tmp_path / 'train'} has no class folders;")


def test_missing_weights_are_named_with_how_to_get_them(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    saved = tmp_path / "small"
    SwinForImageClassification(SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                          window_size=4)).save_pretrained(saved)
    torch.save(torch.nn.Linear(1, 1).state_dict(), tmp_path / "r18.pt")
    runs = [run("scratch", {"kind": "swin"}),
            run("cached", {"kind": "swin", "variant": "small", "pretrained": True}),
            run("saved-dir", {"kind": "swin", "pretrained": True, "weights": str(saved)}),
            run("r18-file", {"kind": "resnet18", "weights": str(tmp_path / "r18.pt")}),
            run("tiny-a", {"kind": "swin", "variant": "tiny", "pretrained": True}),
            run("r18-gone", {"kind": "resnet18", "weights": str(tmp_path / "gone.pt")}),
            run("tiny-b", {"kind": "swin", "variant": "tiny", "pretrained": True}),
            run("base-dir", {"kind": "swin", "variant": "base", "pretrained": True, "weights": str(tmp_path / "no")}),
            run("empty-dir", {"kind": "swin", "pretrained": True, "weights": str(tmp_path / "empty")}),
            run("half-dir", {"kind": "swin", "pretrained": True, "weights": str(tmp_path / "half")}),
            run("r18-dir", {"kind": "resnet18", "weights": str(tmp_path / "empty")})]
    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_bytes((saved / "config.json").read_bytes())  # the weights not copied
    with in_hub_cache("microsoft/swin-small-patch4-window7-224", saved):
        first, message = queue_blockers(runs)
        assert queue_blockers(runs[:4]) is None
    assert first == "tiny-a"
    assert ("hf download microsoft/swin-tiny-patch4-window7-224" in message
            and "Needed by tiny-a, tiny-b." in message)
    assert f"model.weights {tmp_path / 'gone.pt'}: no such file" in message and "Needed by r18-gone." in message
    assert f"'{tmp_path / 'no'}' are neither a directory here" in message and "Needed by base-dir." in message
    assert (f"model.weights {tmp_path / 'empty'}: no config.json and no model.safetensors in it" in message
            and "Needed by empty-dir." in message)
    assert f"model.weights {tmp_path / 'half'}: no model.safetensors in it" in message and "by half-dir." in message
    assert f"model.weights {tmp_path / 'empty'}: a directory, not a file (expected a ResNet-18 state dict" in message
    for fine in ("scratch", "cached", "saved-dir", "r18-file"):  # present (a bad file is the loader's to judge)
        assert fine not in message


def test_swin_weights_of_another_model_or_a_typo_are_named_before_anything_trains(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification, ViTConfig, ViTForImageClassification

    swin, vit = tmp_path / "swin", tmp_path / "vit"
    SwinForImageClassification(SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                          window_size=4)).save_pretrained(swin)
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32)).save_pretrained(vit)
    runs = [run("vit-as-swin", {"kind": "swin", "pretrained": True, "weights": str(vit)}),
            run("scratch-typo", {"kind": "swin", "weights": "swn224-typo"}),  # silently the variant's shapes
            run("scratch-shapes", {"kind": "swin", "weights": str(swin)}),
            run("scratch-empty", {"kind": "swin", "weights": str(tmp_path)}),
            run("scratch-torn", {"kind": "swin", "weights": str(tmp_path / "torn")})]
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "config.json").write_text((swin / "config.json").read_text()[:100])
    _, message = queue_blockers(runs)
    lines = message.splitlines()
    assert lines[0] == (f"model.weights {vit}: its config.json describes a 'vit' model, not a Swin. "
                        "Needed by vit-as-swin.")
    assert lines[1].startswith("Swin weights 'swn224-typo' are neither a directory here nor in the local Hugging "
                               "Face cache") and lines[1].endswith("Needed by scratch-typo.")
    assert lines[2] == (f"model.weights {tmp_path}: no config.json in it (a Swin from scratch takes its shapes from "
                        "it). Needed by scratch-empty.")
    assert lines[3].startswith(f"model.weights {tmp_path / 'torn'}: its config.json is not readable JSON (")
    assert len(lines) == 4  # a save_pretrained Swin's shapes are fine from scratch


def test_an_image_size_too_small_for_the_saved_swin_is_named_before_anything_trains(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    saved = tmp_path / "swin"  # window 7, two stages of patch 4: 56 px at least, so 64 (a multiple of 32)
    SwinForImageClassification(SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                          window_size=7)).save_pretrained(saved)
    vit = {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 1, "layers": 1}
    runs = [run("first", vit), *(run(name, {"kind": "swin", "pretrained": name != "scratch", "weights": str(saved)},
                                     image_size=size) for name, size in (("tuned", 32), ("scratch", 32), ("fits", 64)))]
    first, message = queue_blockers(runs)
    assert first == "tuned" and message == (
        "data.image_size 32 is too small for this Swin: its last stage would be 4x4 patches, under its 7x7 attention "
        "window, which transformers' Swin cannot run; use an image_size that is a multiple of 32 from 64 (the shapes "
        f"of {saved}). Needed by tuned, scratch.")
    with pytest.raises(CannotStart):
        run_experiment(ExperimentConfig(name="p", runs=runs), runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_torn_swin_weights_fail_their_run_naming_the_field(tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    from vitlab.engine.models import build_model
    from vitlab.errors import ModelError

    saved = tmp_path / "swin"
    SwinForImageClassification(SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                          window_size=4)).save_pretrained(saved)
    blob = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(blob[:100])  # a copy cut short: SafetensorError before
    cfg = run("torn", {"kind": "swin", "pretrained": True, "weights": str(saved)})
    with pytest.raises(ModelError, match=rf"^model.weights {saved}: its files do not load as Swin weights "
                                         r"\(SafetensorError: .*\); copy the directory again") as raised:
        build_model(cfg, 10)
    assert "neither a directory here" not in str(raised.value)  # it is one (the message said it was not)


def test_a_queue_needing_missing_weights_trains_nothing(tmp_path):
    vit = {"kind": "vit", "patch_size": 4, "embed_dim": 16, "heads": 1, "layers": 1}
    exp = ExperimentConfig(name="p", runs=[run("first", vit), run("pretrained", {"kind": "swin", "pretrained": True})])
    with pytest.raises(CannotStart, match=r"hf download .* Needed by pretrained\.$"):
        run_experiment(exp, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # the first run did not train and leave its directory


def test_a_run_asking_for_a_gpu_that_is_not_here_blocks_the_queue():
    runs = [run("cpu"), RunConfig.model_validate({"name": "gpu", "model": {"kind": "resnet18"},
                                                  "train": {"device": "cuda"}})]
    assert queue_blockers(runs) == ("gpu", "train.device: cuda was asked for but no CUDA GPU is visible; use "
                                           "device: auto or cpu. Needed by gpu.")


def test_check_accumulation_names_everything_missing_as_run_does(tmp_path, capsys):
    from vitlab.cli import main as cli_main

    preset = tmp_path / "p.yaml"
    preset.write_text(f"""
name: p
defaults: {{data: {{dataset: cifar100, root: {tmp_path}, image_size: 224}}}}
runs:
  - {{name: t, model: {{kind: swin, pretrained: true}}}}
  - {{name: s, model: {{kind: swin, variant: small, pretrained: true}}}}
""")
    assert cli_main(["check", "accumulation", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "CIFAR-100 not found" in err and "Needed by t, s." in err
    assert "Needed by t." in err and "Needed by s." in err  # each variant's weights
