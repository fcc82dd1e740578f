"""Seeds: a preset's runs trained once per seed, and the comparison across seeds (mean ± sample std)."""
import csv
import io
import json
import statistics

import pytest
import yaml
from rich.console import Console

from vitlab.errors import PresetError
from vitlab.files import PACKAGE_ROOT
from vitlab.presets import dump_preset, load_preset, parse_seeds, save_preset
from vitlab.report import (SEED_TITLE, seed_groups, seed_table, seeds_csv, seeds_markdown, to_csv, to_json,
                           to_markdown, versus_best)

PRESET = """name: patch
seeds: [0, 1, 2]
defaults:
  data: {dataset: digits}
  train: {epochs: 3}
runs:
  - name: p2
    model: {kind: vit, patch_size: 2}
  - name: p4
    model: {kind: vit, patch_size: 4}
"""


def load(text, tmp_path, **kwargs):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_preset(path, **kwargs)


def test_every_run_is_trained_once_per_seed(tmp_path):
    exp = load(PRESET, tmp_path)
    assert [(r.name, r.train.seed) for r in exp.runs] == [
        ("p2-s0", 0), ("p2-s1", 1), ("p2-s2", 2), ("p4-s0", 0), ("p4-s1", 1), ("p4-s2", 2)]
    p2 = [r.model_dump() for r in exp.runs[:3]]
    assert all({**r, "name": None, "train": {**r["train"], "seed": None}} ==
               {**p2[0], "name": None, "train": {**p2[0]["train"], "seed": None}} for r in p2)
    saved = save_preset(exp, tmp_path / "saved.yaml")
    assert load_preset(saved) == exp
    # saved as written: one block per setting and the seeds, so a setting is edited once, not once per seed
    assert "seeds: [0, 1, 2]\n" in saved.read_text() and [r["name"] for r in yaml.safe_load(saved.read_text())[
        "runs"]] == ["p2", "p4"]
    # a queue that is not every setting once per seed (one seed's run removed) is saved run by run
    uneven = exp.model_copy(update={"runs": exp.runs[:2] + exp.runs[3:]})
    assert "seeds" not in dump_preset(uneven) and load_preset(save_preset(uneven, tmp_path / "u.yaml")) == uneven


def test_cli_seeds_replace_the_presets(tmp_path):
    exp = load(PRESET, tmp_path, seeds=[5, 7])
    assert [r.name for r in exp.runs] == ["p2-s5", "p2-s7", "p4-s5", "p4-s7"]
    one = load(PRESET.replace("seeds: [0, 1, 2]\n", "").replace("train: {epochs: 3}", "train: {epochs: 3, seed: 4}"),
               tmp_path, seeds=[1, 2])  # the command line wins over a seed written in the file, as --set does
    assert [r.train.seed for r in one.runs] == [1, 2, 1, 2]
    with pytest.raises(PresetError, match="--seeds and --set train.seed both set the seed"):
        load(PRESET, tmp_path, seeds=[1], overrides=["train.seed=3"])
    with pytest.raises(PresetError, match="--set train.seed: this preset's seeds give every run its seed; choose "
                                          r"them with --seeds \(e.g. --seeds 1\)"):
        load(PRESET, tmp_path, overrides=["train.seed=1"])  # would be replaced silently by the preset's seeds


@pytest.mark.parametrize("text", ["0,,1", "0,1,", "1,a", "-1", "", "1,1", "4294967296"])
def test_the_command_lines_seeds_are_checked_whole(text):
    with pytest.raises(PresetError, match=f"--seeds: give distinct whole numbers .* \\(got '{text}'\\)"):
        parse_seeds(text)
    assert parse_seeds(" 2, 0 ,1") == [2, 0, 1]


@pytest.mark.parametrize("text, fragment", [
    (PRESET.replace("[0, 1, 2]", "[0, 0]"),
     "p.yaml:2: seeds: must be a list of distinct whole numbers 0..4294967295, e.g. [0, 1, 2] (got [0, 0])"),
    (PRESET.replace("[0, 1, 2]", "three"), "p.yaml:2: seeds: must be a list"),
    (PRESET.replace("[0, 1, 2]", "'0,1'"), "p.yaml:2: seeds: must be a list"),  # YAML has lists for that
    (PRESET.replace("[0, 1, 2]", "[1, -1]"), "p.yaml:2: seeds: must be a list of distinct whole numbers 0..4294967295, "
                                             "e.g. [0, 1, 2] (-1 is not one)"),
    (PRESET.replace("[0, 1, 2]", "[1, 4294967296]"), "(4294967296 is not one)"),
    (PRESET.replace("train: {epochs: 3}", "train: {epochs: 3, seed: 4}"),
     "p.yaml:5: defaults.train.seed: the preset's seeds give every run its seed; remove one of the two"),
    (PRESET.replace("{kind: vit, patch_size: 4}", "{kind: vit, patch_size: 4}\n    train: {seed: 1}"),
     "p.yaml:11: runs[1] (p4) train.seed: the preset's seeds"),
    (PRESET.replace("name: p4", "name: " + "x" * 62), "is not a safe name"),  # x...x-s0 is 65 characters
])
def test_bad_seeds_name_the_line_and_the_rule(tmp_path, text, fragment):
    with pytest.raises(PresetError) as e:
        load(text, tmp_path)
    assert fragment in str(e.value)


def summary(name, seed, acc, *, status="finished", experiment="study", patch=4, started="2026-11-27T01:00:00",
            lr=0.001):
    config = {"name": name, "model": {"kind": "vit", "patch_size": patch}, "data": {"dataset": "digits"},
              "train": {"epochs": 3, "seed": seed, "lr": lr}}
    return {"name": name, "experiment": experiment, "status": status, "model": f"ViT p{patch}", "accuracy": acc,
            "best_accuracy": acc and acc + 0.01, "train_time_s": 10.0 + seed, "throughput_img_s": 1000.0,
            "params": 1234, "flops": 5678, "started_at": started, "config": config}


def test_groups_are_runs_that_differ_by_seed_alone():
    runs = [summary("p4-s0", 0, 0.90), summary("p4-s1", 1, 0.94), summary("p4-s2", 2, 0.95),
            summary("p2-s0", 0, 0.80, patch=2),  # one seed of its condition: no group
            summary("p4-s0", 0, 0.50, experiment="other"), summary("other-name", 1, 0.52, experiment="other"),
            summary("p4-s3", 3, None, status="running")]
    groups = seed_groups(runs)
    assert [(g["experiment"], g["name"], g["seeds"], g["runs"], g["finished"]) for g in groups] == [
        ("study", "p4", [0, 1, 2, 3], 4, 3), ("other", "p4", [0, 1], 2, 2)]
    study = groups[0]
    assert study["accuracy_mean"] == pytest.approx(statistics.fmean([0.90, 0.94, 0.95]))
    assert study["accuracy_std"] == pytest.approx(statistics.stdev([0.90, 0.94, 0.95]))  # sample std, n - 1
    assert study["best_accuracy_mean"] == pytest.approx(study["accuracy_mean"] + 0.01)
    assert study["train_time_s_mean"] == pytest.approx(11.0) and study["params"] == 1234
    assert groups[1]["run_names"] == ["p4-s0", "other-name"]  # no common stem: the first run's


def test_a_seed_trained_again_counts_once_newest_finished_first():
    old = summary("p4-s0", 0, 0.80, started="2026-11-26T01:00:00")
    new = summary("p4-s0", 0, 0.90, started="2026-11-27T01:00:00")
    rerun = summary("p4-s0", 0, None, status="running", started="2026-11-28T01:00:00")
    (group,) = seed_groups([old, rerun, new, summary("p4-s1", 1, 0.92)])
    assert group["runs"] == 2 and group["finished"] == 2 and group["accuracy_mean"] == pytest.approx(0.91)
    assert group["run_names"] == ["p4-s0", "p4-s1"]


def test_one_finished_seed_has_no_spread_and_none_has_no_mean():
    (group,) = seed_groups([summary("p4-s0", 0, 0.9), summary("p4-s1", 1, None, status="failed")])
    assert group["accuracy_mean"] == pytest.approx(0.9) and group["accuracy_std"] is None
    console = Console(width=200, record=True, color_system=None)
    console.print(seed_table([group]))
    row = console.export_text().splitlines()[-2]
    assert "90.00%" in row and "±" not in row and "0,1 (finished: 0)" in row
    (none,) = seed_groups([summary("p4-s0", 0, None, status="failed"), summary("p4-s1", 1, None, status="failed")])
    assert none["accuracy_mean"] is None and "| - |" in seeds_markdown([none])


def test_every_format_carries_the_groups():
    runs = [summary("p4-s0", 0, 0.90), summary("p4-s1", 1, 0.94)]
    md = to_markdown(runs)
    assert SEED_TITLE in md and "92.00 ± 2.83%" in md
    assert json.loads(to_json(runs))["seed_groups"][0]["seeds"] == [0, 1]
    (row,) = csv.DictReader(io.StringIO(seeds_csv(seed_groups(runs))))
    assert row["seeds"] == "0 1" and float(row["accuracy_std"]) == pytest.approx(statistics.stdev([0.9, 0.94]))
    header, first = list(csv.reader(io.StringIO(to_csv(runs))))[:2]
    assert first[header.index("seed")] == "0" and "accuracy_mean" not in header  # the runs' CSV stays one table
    assert "Across seeds" not in to_markdown(runs[:1]) and json.loads(to_json(runs[:1]))["seed_groups"] == []


def test_each_setting_is_compared_with_the_best_by_welchs_t_test():
    # R: t.test(c(1, 2, 3), c(4, 5, 6)) -> t = -3.6742, df = 4, p-value = 0.02131
    runs = [summary(f"p4-s{i}", i, acc) for i, acc in enumerate([0.04, 0.05, 0.06])]
    runs += [summary(f"p2-s{i}", i, acc, patch=2) for i, acc in enumerate([0.01, 0.02, 0.03])]
    runs += [summary(f"p8-s{i}", i, 0.045, patch=8) for i in range(2)]  # no spread of its own
    runs += [summary("p16-s0", 0, 0.9, patch=16), summary("p16-s1", 1, None, patch=16, status="failed")]
    runs += [summary(f"lone-s{i}", i, 0.5, experiment="other") for i in range(2)]  # alone in its experiment
    p4, p2, p8, p16, lone = seed_groups(runs)
    assert (p4["accuracy_vs_best"], p4["p_vs_best"]) == (0, None)
    assert p2["accuracy_vs_best"] == pytest.approx(-0.03) and p2["p_vs_best"] == pytest.approx(0.02131, abs=5e-6)
    # one sample without spread: t = 0.005 / sqrt(0.0001 / 3), df = 2, where the two-sided p is 1 - t / sqrt(t² + 2)
    t = 0.005 / (0.0001 / 3) ** 0.5
    assert p8["accuracy_vs_best"] == pytest.approx(-0.005)
    assert p8["p_vs_best"] == pytest.approx(1 - t / (t * t + 2) ** 0.5)
    assert p16["accuracy_vs_best"] is None and lone["accuracy_vs_best"] is None  # one finished seed; nothing to beat
    cells = {g["name"]: row for g, row in zip([p4, p2, p8, p16, lone],
                                              seeds_markdown([p4, p2, p8, p16, lone]).splitlines()[2:])}
    assert "| best |" in cells["p4"] and "| -3.00, p=0.021 |" in cells["p2"] and "| - |" in cells["lone"]
    assert versus_best(p2) == " · -3.00 pts vs the best setting (p=0.021)" and versus_best(lone) == ""
    assert json.loads(to_json(runs))["seed_groups"][1]["p_vs_best"] == pytest.approx(0.02131, abs=5e-6)


def test_settings_evaluated_on_other_images_are_not_compared():
    """A TUI queue may mix datasets in one experiment: a p-value of CIFAR against digits says nothing."""
    def on(data, name, accs, patch=4):
        return [{**(s := summary(f"{name}-s{i}", i, acc, patch=patch)), "config": {**s["config"], "data": data}}
                for i, acc in enumerate(accs)]

    digits, cifar, held = seed_groups(on({"dataset": "digits"}, "d", [0.90, 0.92]) +
                                      on({"dataset": "cifar100"}, "c", [0.40, 0.42]) +
                                      on({"dataset": "cifar100", "holdout": 5000}, "h", [0.30, 0.31]))
    assert [g["accuracy_vs_best"] for g in (digits, cifar, held)] == [None] * 3  # each alone: nothing to beat
    more = seed_groups(on({"dataset": "cifar100"}, "c", [0.40, 0.42]) +
                       on({"dataset": "cifar100"}, "c2", [0.3, 0.32], patch=2))
    assert more[1]["accuracy_vs_best"] == pytest.approx(-0.10)


def test_the_best_setting_is_the_best_by_final_accuracy_not_by_its_best_epoch():
    runs = [summary(f"p4-s{i}", i, acc) for i, acc in enumerate([0.50, 0.52])]
    runs += [{**summary(f"p2-s{i}", i, acc, patch=2), "best_accuracy": 0.9} for i, acc in enumerate([0.40, 0.42])]
    p4, p2 = seed_groups(runs)  # p2 peaked higher at some epoch (picked on the test split), but ends lower
    assert p4["accuracy_vs_best"] == 0 and p2["accuracy_vs_best"] == pytest.approx(-0.10)


def test_the_seeds_table_fits_a_narrow_terminal():
    runs = [summary("p4-s0", 0, 0.90), summary("p4-s1", 1, 0.94)]
    console = Console(width=80, record=True, color_system=None)
    console.print(seed_table(seed_groups(runs), width=80))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    assert "92.00 ± 2.83%" in text and "Seeds" in text


def test_the_shipped_patch_study_trains_three_seeds_of_each_patch_size():
    exp = load_preset(PACKAGE_ROOT / "presets" / "patch-study.yaml")
    assert [r.name for r in exp.runs[:3]] == ["p2-s0", "p2-s1", "p2-s2"]
    assert {r.model.patch_size for r in exp.runs} == {2, 4, 8} and len(exp.runs) == 9


def test_nproc_hands_the_seeds_to_every_torchrun_rank():
    from vitlab.cli import build_parser
    from vitlab.commands.launch import torchrun_command

    args = build_parser().parse_args(["run", "p.yaml", "--nproc", "2", "--seeds", "0,1", "--set", "train.epochs=1"])
    cmd = torchrun_command(args)
    assert cmd[cmd.index("--seeds") + 1] == "0,1" and cmd[cmd.index("--set") + 1] == "train.epochs=1"


def test_run_picks_runs_by_name_with_every_seed_and_passes_them_on(tmp_path, monkeypatch):
    from vitlab.cli import build_parser
    from vitlab.commands import pick_runs
    from vitlab.commands.launch import torchrun_command
    from vitlab.commands.run import continue_command
    from vitlab.errors import VitlabError

    path = tmp_path / "p.yaml"
    path.write_text(PRESET)
    exp = load_preset(path)
    assert [r.name for r in pick_runs(exp, ["p4"]).runs] == ["p4-s0", "p4-s1", "p4-s2"]
    assert [r.name for r in pick_runs(exp, ["p2-s1", "p4-s0"]).runs] == ["p2-s1", "p4-s0"]
    with pytest.raises(VitlabError, match="--run p3: no such run in patch; runs: p2, p4$"):  # what --run takes
        pick_runs(exp, ["p3"])
    assert [r.name for r in pick_runs(exp, ["P4-S1"]).runs] == ["p4-s1"]  # names are told apart without case
    args = build_parser().parse_args(["run", str(path), "--run", "p4", "--nproc", "2"])
    cmd = torchrun_command(args)
    assert cmd[cmd.index("--run") + 1] == "p4" and "--run p4" in continue_command(args)
    import torch.distributed.run

    from vitlab.commands.launch import torchrun

    got = []  # what torchrun makes of it: `--run` was refused as an abbreviated `--run-path`
    monkeypatch.setattr(torch.distributed.run, "run", got.append)
    assert cmd[1:3] == ["-m", "vitlab.commands.launch"] and torchrun(cmd[3:]) == 0
    assert got[0].training_script_args == cmd[cmd.index("vitlab") + 1:] and got[0].nproc_per_node == "2"
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 of it, after a Ctrl-C: the way on takes as many processes
    assert continue_command(args).endswith("--run p4 --nproc 2 --continue")


def test_settings_of_one_name_trained_apart_are_told_apart():
    runs = [summary("p4-s0", 0, 0.90), summary("p4-s1", 1, 0.94),  # then `--set train.lr=0.003` into the same dir
            summary("p4-s0", 0, 0.80, lr=0.003), summary("p4-s1", 1, 0.82, lr=0.003)]
    groups = seed_groups(runs)
    assert [g["name"] for g in groups] == ["p4 (lr=0.001)", "p4 (lr=0.003)"]
    assert groups[1]["accuracy_mean"] == pytest.approx(0.81)


def test_a_seed_past_the_generators_range_is_a_config_error():
    from pydantic import ValidationError

    from vitlab.config import TrainConfig

    for bad in (-1, 2**32):
        with pytest.raises(ValidationError):
            TrainConfig(seed=bad)
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_profile_shows_a_run_and_its_seeds_once(tmp_path, capsys):
    from vitlab.cli import main as cli_main

    path = tmp_path / "p.yaml"
    path.write_text(PRESET.replace("{kind: vit, patch_size: 2}", "{kind: vit, patch_size: 2, embed_dim: 16, heads: 2, "
                                   "layers: 1}").replace("{kind: vit, patch_size: 4}", "{kind: vit, patch_size: 4, "
                                   "embed_dim: 16, heads: 2, layers: 1}"))
    assert cli_main(["profile", str(path)]) == 0
    table = capsys.readouterr().out
    assert "p2 (seeds 0,1,2)" in table and "p4 (seeds 0,1,2)" in table and "p2-s1" not in table
    assert cli_main(["profile", str(path), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["runs"]][:2] == ["p2-s0", "p2-s1"]
    apart = tmp_path / "apart.yaml"  # two runs the preset names itself, seeds apart: two rows, each by its name
    apart.write_text("name: apart\ndefaults: {model: {kind: vit, embed_dim: 16, heads: 2, layers: 1}}\nruns:\n"
                     "  - {name: first, train: {seed: 0}}\n  - {name: second, train: {seed: 1}}\n")
    assert cli_main(["profile", str(apart)]) == 0
    table = capsys.readouterr().out
    assert "first " in table and "second " in table and "seeds" not in table


def test_compare_by_seed_sorts_the_conditions_and_scripts_get_an_empty_list(tmp_path, capsys):
    from vitlab.cli import main as cli_main

    assert cli_main(["compare", str(tmp_path), "--by-seed", "--sort", "status"]) == 2
    assert "the table across seeds has no such column" in capsys.readouterr().err
    (tmp_path / "e" / "r").mkdir(parents=True)
    (tmp_path / "e" / "r" / "config.yaml").write_text("name: r\n")
    (tmp_path / "e" / "r" / "summary.json").write_text(json.dumps(summary("r", 0, 0.5)))
    assert cli_main(["compare", str(tmp_path), "--by-seed", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"seed_groups": []}
    assert cli_main(["compare", str(tmp_path), "--by-seed"]) == 2  # a person gets told why the table is empty
    assert cli_main(["compare", str(tmp_path), "--sort", "vs_best"]) == 2  # not the runs sorted by nothing
    assert capsys.readouterr().err.count("no runs under these paths differ by their seed alone") == 2
    assert cli_main(["compare", str(tmp_path), "--sort", "seeds", "--format", "csv"]) == 2  # runs have no seeds
    assert "a column of the table across seeds only; add --by-seed" in capsys.readouterr().err
    for patch, accs in ((2, (0.5, 0.6)), (8, (0.9, 0.95))):  # vs_best: listed by the error above, and taken
        for seed, acc in enumerate(accs):
            d = tmp_path / "e" / f"p{patch}-s{seed}"
            d.mkdir()
            (d / "config.yaml").write_text(f"name: p{patch}-s{seed}\n")
            (d / "summary.json").write_text(json.dumps(summary(f"p{patch}-s{seed}", seed, acc, patch=patch)))
    assert cli_main(["compare", str(tmp_path), "--by-seed", "--sort", "vs_best", "--format", "json"]) == 0
    assert [g["name"] for g in json.loads(capsys.readouterr().out)["seed_groups"]] == ["p8", "p2"]  # best first
