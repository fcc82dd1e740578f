"""The presets shipped in presets/ load, profile without any dataset or weights on the machine, and say
what they claim: the seed report's parameter counts, Swin probes that train only the head, a GA study at
one effective batch, a stem study at matched FLOPs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vitlab.config import ExperimentConfig, RunConfig, profile_key
from vitlab.engine.models import build_model, classifier_head, count_params
from vitlab.engine.profile import classes_for, profile_run, vit_flops_analytic
from vitlab.presets import list_presets, load_preset

PRESETS = Path(__file__).resolve().parents[1] / "presets"
SHIPPED = sorted(PRESETS.glob("*.yaml"))
EXPECTED = {"quickstart", "ga-study", "seed-problem1", "seed-problem2", "stem-study", "patch-study"}

REPORT_PARAMS = {"ViT-A": 17_374_820, "ViT-B": 18_505_316, "ViT-C": 3_435_364, "ViT-D": 7_159_652,
                 "ResNet-18": 11_227_812}  # the seed report's Problem 1 table


@pytest.fixture(autouse=True)
def no_data_here(tmp_path, monkeypatch):
    """Relative data roots (`data`) resolve to an empty directory: nothing may need a dataset."""
    monkeypatch.chdir(tmp_path)


# fvcore traces of these take 1.5-5.5 s each on 2 cores (seed-problem1's 224-px ViTs, up to 3,137 tokens; Swin-S):
# the default run counts their params only and profiles ViT-C and Swin-T as representatives of the same
# code paths; test_heavy_runs_profile (marked slow) profiles them in full.
HEAVY = {("seed-problem1", "ViT-A"), ("seed-problem1", "ViT-B"), ("seed-problem1", "ViT-D"),
         ("seed-problem2", "swin-s-probe"), ("seed-problem2", "swin-s-finetune")}


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    """(params, trainable params, FLOPs or None) of every run of every shipped preset, built once."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("no-data"))
        for path in SHIPPED:
            out[path.stem] = profile_preset(path)
    return out


def profile_preset(path):
    out, done = {}, {}
    for run in load_preset(path).runs:
        if (path.stem, run.name) in HEAVY:
            model = build_model(run, classes_for(run), load_weights=False)
            out[run.name] = (*count_params(model), None)
        else:
            if (key := profile_key(run)) not in done:  # a seed's copy of a run is the same model
                p = profile_run(run)
                done[key] = (p.params, p.trainable_params, p.flops)
            out[run.name] = done[key]
    return out


def test_all_expected_presets_are_shipped():
    assert {p.stem for p in SHIPPED} >= EXPECTED
    assert all(load_preset(p).name == p.stem for p in SHIPPED)  # `vitlab run NAME` finds what it lists


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_preset_validates_and_profiles_without_data_or_weights(path, profiles):
    exp = load_preset(path)
    assert exp.description.strip(), "a shipped preset says what it answers"
    assert "Cost" in exp.description or exp.name == "quickstart", "and what it costs"
    assert not (Path("data").exists() or Path(exp.runs[0].data.root).exists())
    for run in exp.runs:
        params, trainable, flops = profiles[path.stem][run.name]
        assert params > 0 and 0 < trainable <= params
        assert flops is None if (path.stem, run.name) in HEAVY else flops > 0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_preset_survives_the_hand_over_to_the_worker_and_config_yaml(path):
    exp = load_preset(path)
    assert ExperimentConfig.model_validate_json(exp.model_dump_json()) == exp  # TUI -> `vitlab worker`
    for run in exp.runs:  # config.yaml -> `vitlab resume`
        assert RunConfig.model_validate(yaml.safe_load(yaml.safe_dump(run.resolved()))) == run


@pytest.mark.slow
def test_heavy_runs_profile():
    for preset, name in sorted(HEAVY):
        [run] = [r for r in load_preset(PRESETS / f"{preset}.yaml").runs if r.name == name]
        p = profile_run(run)
        if run.model.kind == "vit":  # fvcore with the SDPA handle agrees with the closed form
            assert p.flops == pytest.approx(vit_flops_analytic(run.model, run.data.size, 100), rel=0.01), name
        else:
            assert p.flops == pytest.approx(8.7e9, rel=0.03), name  # Swin-S: 8.7 GFLOPs (Liu et al. 2021)


def test_seed_problem1_matches_report_params(profiles):
    got = {name: p[0] for name, p in profiles["seed-problem1"].items()}
    assert got.keys() == REPORT_PARAMS.keys()
    for name, want in REPORT_PARAMS.items():
        assert got[name] == pytest.approx(want, rel=1e-4), name  # within 0.01 %


def test_seed_problem2_swin_counts_and_probes_train_only_the_head(profiles):
    exp = load_preset(PRESETS / "seed-problem2.yaml")
    prof = profiles["seed-problem2"]
    variants = {"tiny": 27_596_254, "small": 48_914_158}  # Hugging Face Swin-T/S with a 100-class head
    pretrained = [r for r in exp.runs if r.model.pretrained]
    assert {r.name for r in pretrained} == {"swin-t-probe", "swin-s-probe", "swin-t-finetune", "swin-s-finetune"}
    for run in pretrained:
        assert prof[run.name][0] == variants[run.model.variant], run.name
    for run in exp.runs:
        if run.train.freeze != "backbone":
            assert prof[run.name][1] == prof[run.name][0], run.name
            continue
        model = build_model(run, 100, load_weights=False)
        head = {id(p) for p in classifier_head(model).parameters()}
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert {id(p) for p in trainable} == head, run.name
        assert prof[run.name][1] == 768 * 100 + 100, run.name  # Linear(768, 100)


def test_ga_study_runs_differ_only_in_the_split_of_one_effective_batch():
    exp = load_preset(PRESETS / "ga-study.yaml")
    assert {r.train.effective_batch for r in exp.runs} == {64}
    assert len({(r.train.batch_size, r.train.accumulation_steps) for r in exp.runs}) == len(exp.runs) >= 3
    rest = [{**r.resolved(), "name": None,
             "train": {**r.resolved()["train"], "batch_size": None, "accumulation_steps": None}}
            for r in exp.runs]
    assert all(r == rest[0] for r in rest)  # same model, data, seed, optimizer, schedule, precision
    assert exp.runs[0].train.precision == "fp32"  # exact accumulation is only comparable without fp16 noise


def test_stem_study_matches_flops_and_differs_only_in_stem_and_one_block(profiles):
    exp = load_preset(PRESETS / "stem-study.yaml")
    [patchify] = [r for r in exp.runs if r.model.stem == "patchify"]
    [conv] = [r for r in exp.runs if r.model.stem == "conv"]
    assert conv.model.layers == patchify.model.layers - 1  # as in the paper, the stem replaces one block
    same = lambda r: {**r.resolved(), "name": None, "model": {**r.resolved()["model"], "stem": None, "layers": None}}
    assert same(conv) == same(patchify)
    a, b = profiles["stem-study"][patchify.name][2], profiles["stem-study"][conv.name][2]
    assert abs(a - b) / max(a, b) <= 0.05
    for flops in (a, b):  # the description quotes the measured GFLOPs: it must be re-measured if they move
        assert f"{flops / 1e9:.3f}" in exp.description


def test_vitlab_presets_lists_them_all_valid(tmp_path):
    assert [p.error for p in list_presets() if p.path.parent == PRESETS] == [None] * len(SHIPPED)
    env = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-m", "vitlab", "presets"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "invalid" not in done.stdout
    for name in EXPECTED:
        assert name in done.stdout
    # the tests' Hugging Face cache is empty: the pretrained Swins' weights are not here (the TUI's picker said so)
    [problem2] = [line for line in done.stdout.splitlines() if "seed-problem2" in line]
    assert "the weights of swin-t-probe, swin-s-probe, swin-t-finetune, swin-s-finetune" in problem2
    assert "Needs" not in next(line for line in done.stdout.splitlines() if "quickstart" in line)


def test_the_preset_list_says_which_need_data_that_is_not_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data.root "data" is looked up from here
    needs = {p.path.stem: p.missing for p in list_presets() if p.path.parent == PRESETS}
    assert needs["quickstart"] == () and needs["patch-study"] == ("CIFAR-100 (not in data/)",)
    (tmp_path / "data" / "cifar-100-python").mkdir(parents=True)
    assert {p.path.stem: p.missing for p in list_presets() if p.path.parent == PRESETS}["patch-study"] == ()
