"""Every validation rule of the config and preset loader, with the message a user sees."""
import textwrap
from pathlib import Path

import pytest

from vitlab.config import RunConfig, ExperimentConfig
from vitlab.errors import PresetError
from vitlab.presets import dump_preset, load_preset, parse_overrides, save_preset


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problem(tmp_path, text, overrides=()):
    with pytest.raises(PresetError) as e:
        load_preset(write(tmp_path, text), overrides)
    return str(e.value)


VALID = """
name: exp
description: a test
defaults:
  data: {dataset: digits}
  train: {epochs: 2, batch_size: 16}
runs:
  - name: a
    model: {kind: vit, patch_size: 2, embed_dim: 32, heads: 2, layers: 1}
  - name: b
    model: {kind: resnet18}
    train: {epochs: 1}
"""


def test_valid_preset_merges_defaults(tmp_path):
    exp = load_preset(write(tmp_path, VALID))
    assert [r.name for r in exp.runs] == ["a", "b"]
    assert exp.runs[0].train.epochs == 2 and exp.runs[1].train.epochs == 1
    assert exp.runs[1].train.batch_size == 16
    assert exp.runs[0].data.size == 8


def test_unknown_key_names_field_line_and_allowed(tmp_path):
    msg = problem(tmp_path, VALID.replace("heads: 2,", "heads: 2, colour: red,"))
    assert "p.yaml:9" in msg and "runs[0] (a) model.colour" in msg and "allowed:" in msg and "patch_size" in msg


def test_a_bad_value_in_defaults_is_named_at_its_own_line(tmp_path):
    msg = problem(tmp_path, VALID.replace("train: {epochs: 2, batch_size: 16}", "train: {epochs: 2, batch_size: 0}"))
    # both runs inherit it: said once, at its line (it was each run's line, then twice)
    assert msg.endswith("p.yaml:6: train.batch_size: Input should be greater than or equal to 1 (got 0); in runs a, b")
    assert "\n" not in msg
    # a problem with a key written nowhere (heads left at 3) is named at the section that holds it, the run's model
    msg = problem(tmp_path, VALID.replace("embed_dim: 32, heads: 2, layers: 1}", "embed_dim: 100, layers: 1}"))
    assert "p.yaml:9: runs[0] (a) model.heads: must divide embed_dim 100 (got 3)" in msg


def test_unknown_top_level_and_section(tmp_path):
    msg = problem(tmp_path, VALID + "extra: 1\n")
    assert "extra: unknown key; allowed: name, description, defaults, runs" in msg
    msg = problem(tmp_path, VALID.replace("data: {dataset: digits}", "optim: {lr: 1}"))
    assert "defaults.optim" in msg


def test_wrong_literal_lists_allowed_values(tmp_path):
    msg = problem(tmp_path, VALID.replace("epochs: 1}", "epochs: 1, precision: fp8}"))
    assert "train.precision" in msg and "'fp32', 'fp16' or 'bf16'" in msg and "fp8" in msg


def test_wrong_type(tmp_path):
    msg = problem(tmp_path, VALID.replace("epochs: 1}", "epochs: many}"))
    assert "train.epochs" in msg and "integer" in msg


def test_a_boolean_is_no_number_and_numbers_are_finite(tmp_path):
    # pydantic's lax mode read `epochs: true` as 1 (one epoch trained), and weight_decay .inf was taken
    assert "train.epochs: must be a number, not true" in problem(tmp_path, VALID.replace("epochs: 1}", "epochs: true}"))
    assert "model.patch_size: must be a number, not false" in problem(
        tmp_path, VALID.replace("patch_size: 2", "patch_size: false"))
    assert "data.limit_train: must be a number, not true" in problem(
        tmp_path, VALID.replace("dataset: digits}", "dataset: digits, limit_train: true}"))
    assert "train.weight_decay: must be a finite number >= 0" in problem(
        tmp_path, VALID.replace("epochs: 1}", "epochs: 1, weight_decay: .inf}"))
    assert "train.lr: must be a finite number > 0" in problem(  # nan said "greater than 0", inf "finite"
        tmp_path, VALID.replace("epochs: 1}", "epochs: 1, lr: .nan}"))
    ok = load_preset(write(tmp_path, VALID.replace("epochs: 1}", "epochs: 1, compile: true, tensorboard: true}")))
    assert ok.runs[1].train.compile is True  # true where a field takes it


def test_heads_must_divide_embed_dim(tmp_path):
    msg = problem(tmp_path, VALID.replace("heads: 2", "heads: 3"))
    assert "model.heads: must divide embed_dim 32 (got 3)" in msg


def test_patch_must_divide_image_size(tmp_path):
    msg = problem(tmp_path, VALID.replace("patch_size: 2", "patch_size: 3"))
    assert "model.patch_size: must divide data.image_size 8 (got 3)" in msg


def test_conv_stem_needs_power_of_two_patch(tmp_path):
    text = VALID.replace("patch_size: 2,", "patch_size: 6, stem: conv,").replace("dataset: digits", "dataset: synthetic, image_size: 48")
    assert "power of 2" in problem(tmp_path, text)


def test_swin_image_size(tmp_path):
    text = VALID.replace("{kind: resnet18}", "{kind: swin, variant: tiny}")
    assert "data.image_size" in problem(tmp_path, text) and "at least 224" in problem(tmp_path, text)
    text = text.replace("dataset: digits}", "dataset: digits, image_size: 240}")
    assert "multiple of 32" in problem(tmp_path, text)


def test_accumulation_and_lr_bounds(tmp_path):
    assert "train.accumulation_steps" in problem(tmp_path, VALID.replace("epochs: 1}", "epochs: 1, accumulation_steps: 0}"))
    assert "train.lr" in problem(tmp_path, VALID.replace("epochs: 1}", "epochs: 1, lr: 0}"))


def test_run_names_unique_and_safe(tmp_path):
    # the line of the second run's name, not the experiment's
    assert problem(tmp_path, VALID.replace("name: b", "name: A")).startswith(
        f"{tmp_path / 'p.yaml'}:10: runs[1] (A) name: run name 'A' is used twice")  # as the runs' own errors say it
    # with seeds each run of the file is several of the experiment: still the file's run and line
    assert problem(tmp_path, "seeds: [0, 1]\n" + VALID.replace("name: b", "name: A")).startswith(
        f"{tmp_path / 'p.yaml'}:11: runs[1] (A) name: run name 'A-s0' is used twice")
    for bad in ("../escape", "/abs", "a/b", ".."):
        msg = problem(tmp_path, VALID.replace("name: b", f"name: '{bad}'"))
        assert "not a safe name" in msg and "Value error" not in msg


def test_model_kind_unknown(tmp_path):
    msg = problem(tmp_path, VALID.replace("{kind: resnet18}", "{kind: vgg}"))
    assert "model.kind" in msg and "vit, swin, resnet18" in msg


def test_a_run_without_a_model_is_told_what_to_write(tmp_path):
    msg = problem(tmp_path, VALID.replace("    model: {kind: resnet18}\n", ""))
    assert "runs[1] (b) model: missing: say which model, e.g. model: {kind: vit} (kind: vit, swin, resnet18" in msg
    assert "Field required" not in msg


def test_yaml_syntax_error_has_line(tmp_path):
    msg = problem(tmp_path, "name: x\nruns: [\n  - {a: 1\n")
    assert "YAML syntax error" in msg and "p.yaml:" in msg


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path):
    twice = "name: x\nruns:\n  - name: a\n    train:\n      epochs: 1\n    model: {kind: vit}\n    train: {lr: 0.01}\n"
    assert problem(tmp_path, twice) == f"{tmp_path / 'p.yaml'}:7: YAML syntax error: 'train' is given twice (lines 4 " \
                                       "and 7): keep one"
    assert "'name' is given twice (lines 1 and 2)" in problem(tmp_path, "name: x\nname: y\nruns: []\n")
    # YAML's merge key shares a block; a key beside it overrides the merged one (it was "could not determine a
    # constructor for the tag 'tag:yaml.org,2002:merge'")
    merged = load_preset(write(tmp_path, "name: x\nruns:\n  - name: a\n    model: &m {kind: vit, layers: 1}\n"
                                         "  - name: b\n    model: {<<: *m, layers: 2}\n"))
    assert [(r.model.kind, r.model.layers) for r in merged.runs] == [("vit", 1), ("vit", 2)]
    # a mapping merged into another after its own merge: its override is no key written twice
    again = load_preset(write(tmp_path, "name: x\nruns:\n  - name: a\n    model: &m {<<: {kind: vit, layers: 2}, "
                                        "layers: 6}\ndefaults:\n  model: {<<: *m, heads: 4}\n"))
    assert [(r.model.layers, r.model.heads) for r in again.runs] == [(6, 4)]


def test_set_gives_the_mlp_width_either_way_and_image_size_is_bounded(tmp_path):
    path = write(tmp_path, "name: x\nruns:\n  - name: a\n    model: {kind: vit, mlp_ratio: 2}\n")
    [run] = load_preset(path, ["model.mlp_dim=128"]).runs  # replaces the preset's ratio, not "give one of them"
    assert run.model.mlp_dim == 128 and "mlp_ratio" not in run.model.model_fields_set
    assert load_preset(path, ["model.mlp_ratio=3"]).runs[0].model.hidden_dim == 3 * run.model.embed_dim
    assert "--set data.image_size: Input should be less than or equal to 1024 (got 100000)" in problem(
        tmp_path, "name: x\nruns:\n  - name: a\n", ["data.image_size=100000"])


def test_a_shipped_preset_is_found_by_its_name_with_or_without_yaml(tmp_path, monkeypatch):
    from vitlab.files import PACKAGE_ROOT
    from vitlab.presets import resolve_preset_path

    monkeypatch.chdir(tmp_path)  # no ./quickstart.yaml here
    (tmp_path / "quickstart").mkdir()  # the experiment's runs of `vitlab run quickstart --runs-dir .`
    shipped = PACKAGE_ROOT / "presets" / "quickstart.yaml"
    assert resolve_preset_path("quickstart") == resolve_preset_path("quickstart.yaml") == shipped
    # the README's path, typed outside a checkout
    with pytest.raises(PresetError, match=r"^presets/quickstart.yaml: no such preset file here; .*: quickstart$"):
        load_preset("presets/quickstart.yaml")


def test_installed_from_a_wheel_the_shipped_files_come_from_the_package(tmp_path, monkeypatch):
    """A wheel (`pip install .`, from git) has no checkout around it: setup.py copies presets/ and themes/ into
    the package, as vitlab/shipped/ (a wheel built from this tree was checked to carry them)."""
    import vitlab
    from vitlab import files

    assert files.shipped_dir("presets") == files.PACKAGE_ROOT / "presets"  # an editable install: the checkout
    monkeypatch.setattr(files, "PACKAGE_ROOT", tmp_path)  # site-packages' parents: no presets/ there
    assert files.shipped_dir("themes") == Path(vitlab.__file__).resolve().parent / "shipped" / "themes"


def test_a_set_that_fails_runs_differently_names_them_and_file_errors_say_what_was_set(tmp_path):
    text = "name: x\nruns:\n  - {name: a, model: {kind: vit}, train: {epochs: 20}}\n" \
           "  - {name: b, model: {kind: vit}, train: {epochs: 5}}\n"
    assert problem(tmp_path, text, ["train.warmup_epochs=10"]) == \
        "--set train.warmup_epochs: runs[1] (b): must be less than epochs (5); 0 turns warmup off"
    assert problem(tmp_path, text, ["train.warmup_epochs=100"]).splitlines() == [
        "--set train.warmup_epochs: runs[0] (a): must be less than epochs (20); 0 turns warmup off",
        "--set train.warmup_epochs: runs[1] (b): must be less than epochs (5); 0 turns warmup off"]
    swin = problem(tmp_path, "name: x\nruns:\n  - name: a\n    model: {kind: vit, heads: 2}\n", ["model.kind=swin"])
    # another kind starts the model section afresh, as in a preset (it was an error for each ViT key written), and
    # what is left to say of the file says what was set
    assert "heads" not in swin and swin.startswith(f"{tmp_path / 'p.yaml'}:3: runs[0] (a) data.image_size: Swin needs")
    assert swin.endswith("(with --set model.kind=swin)")
    [run] = load_preset(write(tmp_path, "name: x\nruns:\n  - {name: a, model: {kind: vit, layers: 3}}\n"),
                        ["model.stem=cifar", "model.kind=resnet18"]).runs  # the kind first, whatever the order
    assert run.model.kind == "resnet18" and run.model.stem == "cifar"


def test_missing_file():
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset("/nonexistent/preset.yaml")


def test_yaml_is_safe_loaded(tmp_path):
    msg = problem(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\nruns: []\n")
    assert "YAML syntax error" in msg or "could not determine a constructor" in msg


def test_overrides_typed_and_checked(tmp_path):
    exp = load_preset(write(tmp_path, VALID), ["train.batch_size=8", "model.patch_size=4", "train.precision=bf16"])
    assert all(r.train.batch_size == 8 and r.train.precision == "bf16" for r in exp.runs)
    assert exp.runs[0].model.patch_size == 4  # and silently not applied to the ResNet run
    with pytest.raises(PresetError, match="train has no key 'batchsize'"):
        parse_overrides(["train.batchsize=8"])
    with pytest.raises(PresetError, match="SECTION.KEY=VALUE"):
        parse_overrides(["epochs=3"])
    assert "train.batch_size" in problem(tmp_path, VALID, ["train.batch_size=zero"])
    # paths are paths: a directory named 2024 or yes was read as a number or a boolean and refused
    assert parse_overrides(["data.root=2024", "model.weights=yes"]) == [(("data", "root"), "2024"),
                                                                       (("model", "weights"), "yes")]
    assert parse_overrides(["model.weights=null"]) == [(("model", "weights"), None)]
    with pytest.raises(PresetError, match=r"^--set train.lr given twice \(0.1, then 0.2\): say one$"):
        parse_overrides(["train.lr=0.1", "train.epochs=3", "train.lr=0.2"])  # the last one silently won
    assert all(r.data.root == "2024" for r in load_preset(write(tmp_path, VALID), ["data.root=2024"]).runs)


def test_save_round_trip(tmp_path):
    exp = load_preset(write(tmp_path, VALID))
    path = save_preset(exp, tmp_path / "saved.yaml")
    assert load_preset(path) == exp
    assert "kind: resnet18" in dump_preset(exp)


def test_effective_batch_and_mlp_rules():
    cfg = RunConfig.model_validate({"name": "x", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2},
                                    "train": {"batch_size": 16, "accumulation_steps": 4}})
    assert cfg.train.effective_batch == 64
    with pytest.raises(Exception, match="either mlp_ratio or mlp_dim"):
        RunConfig.model_validate({"name": "x", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2,
                                                         "mlp_ratio": 2, "mlp_dim": 64}})


def test_experiment_requires_runs():
    with pytest.raises(Exception):
        ExperimentConfig(name="x", runs=[])


def test_home_in_paths_is_expanded_as_in_a_shell(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = RunConfig.model_validate({"name": "x", "model": {"kind": "swin", "pretrained": True, "weights": "~/swin"},
                                    "data": {"dataset": "cifar100", "root": "~/data", "image_size": 224}})
    assert (cfg.data.root, cfg.model.weights) == (str(tmp_path / "data"), str(tmp_path / "swin"))
    hub = RunConfig.model_validate({"name": "x", "model": {"kind": "swin", "weights": "microsoft/swin-base"},
                                    "data": {"image_size": 224}})
    assert hub.model.weights == "microsoft/swin-base" and hub.data.root == "data"  # ids and relative paths as given
    assert RunConfig.model_validate({"name": "x", "model": {"kind": "resnet18", "weights": "~/r.pt"}}).model.weights \
        == str(tmp_path / "r.pt")


def test_an_override_no_run_can_take_is_an_error(tmp_path):
    msg = problem(tmp_path, VALID, ["model.variant=huge"])  # VALID has a ViT and a ResNet, no Swin
    assert msg.endswith("--set model.variant: no run of this preset has it (its models: resnet18, vit)")
    exp = load_preset(write(tmp_path, VALID), ["model.patch_size=4"])  # the ViT takes it, the ResNet ignores it
    assert exp.runs[0].model.patch_size == 4
    # ViT and ResNet-18 both have a stem, with other choices: each value goes to the kind that has it
    stems = load_preset(write(tmp_path, VALID), ["model.stem=cifar"])
    assert [r.model.stem for r in stems.runs] == ["patchify", "cifar"]
    assert [r.model.stem for r in load_preset(write(tmp_path, VALID), ["model.stem=conv"]).runs] == ["conv", "imagenet"]
    assert "(got 'bogus')" in problem(tmp_path, VALID, ["model.stem=bogus"])


def test_a_bad_override_is_blamed_on_the_command_line_once(tmp_path):
    msg = problem(tmp_path, VALID, ["train.epochs=abc"])  # both runs get it: one message, no line of the file
    assert msg.startswith("--set train.epochs: ") and "(got 'abc')" in msg and "\n" not in msg


def test_model_labels_tell_the_runs_of_a_study_apart():
    from vitlab.config import model_label, run_label

    vit = {"kind": "vit", "patch_size": 4, "embed_dim": 192, "heads": 3}
    labels = [model_label(RunConfig.model_validate({"name": "m", "model": m, "data": {"image_size": 224}}).model)
              for m in ({**vit, "layers": 12}, {**vit, "layers": 11, "stem": "conv"}, {"kind": "swin"})]
    assert labels == ["ViT p4 d192 h3 L12", "ViT p4 d192 h3 L11 conv-stem", "Swin-T scratch"]
    # a checkpoint of its own has its own shapes, whatever the variant says (a tiny test Swin read "Swin-S")
    swin = [model_label(RunConfig.model_validate({"name": "m", "model": {"kind": "swin", "variant": "small", **m},
                                                  "data": {"image_size": 224}}).model)
            for m in ({"pretrained": True, "weights": "~/w/swin-mine/"},
                      {"pretrained": True, "weights": "microsoft/swin-small-patch4-window7-224"})]
    assert swin == ["Swin swin-mine pretrained", "Swin-S pretrained"]
    # a linear probe and a fine-tune of the same weights: the question of a pretraining study
    probe = RunConfig.model_validate({"name": "m", "model": {"kind": "swin", "pretrained": True},
                                      "data": {"image_size": 224}, "train": {"freeze": "backbone"}})
    assert run_label(probe) == "Swin-T pretrained probe" and model_label(probe.model) == "Swin-T pretrained"


def test_an_empty_xdg_config_home_counts_as_unset_for_presets_and_settings(monkeypatch, tmp_path):
    from vitlab.presets import user_preset_dir
    from vitlab.tui.settings import settings_path

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", "")  # read as a path, presets went to a relative vitlab/presets
    assert user_preset_dir() == tmp_path / ".config" / "vitlab" / "presets"
    assert settings_path().parent == user_preset_dir().parent


def test_run_names_only_the_problems_of_the_runs_asked_for(tmp_path):
    """`--run b --set train.epochs=1` named a's warmup too: a run the user had not asked for."""
    text = ("name: x\nseeds: [0, 1]\ndefaults: {train: {epochs: 5, warmup_epochs: 2}}\nruns:\n"
            "  - {name: a, model: {kind: vit}}\n  - {name: b, model: {kind: resnet18}}\n")
    path = write(tmp_path, text)
    with pytest.raises(PresetError) as e:
        load_preset(path, ["train.epochs=1"], only=["B-s1"])  # as pick_runs takes names: any case, one seed
    assert str(e.value) == (f"{path}:3: runs[1] (b) train.warmup_epochs: must be less than epochs (1); 0 turns "
                            "warmup off (with --set train.epochs=1)")
    assert [r.name for r in load_preset(path, only=["b"]).runs] == ["b-s0", "b-s1"]
    with pytest.raises(PresetError, match=r"^--set model.patch_size: no run asked for \(--run\) has it \(its models: "
                                          r"resnet18\)$"):
        load_preset(path, ["model.patch_size=4"], only=["b"])
    with pytest.raises(PresetError, match=r"warmup_epochs: .*; in runs a, b$"):  # a name of none: every run's said
        load_preset(path, ["train.epochs=1"], only=["c"])
