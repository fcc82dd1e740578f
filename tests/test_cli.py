"""The CLI as a user runs it: real training on digits/synthetic, the JSON contract, exit codes, messages."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from vitlab.cli import build_parser
from vitlab.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
description: tiny test preset
defaults:
  data: {dataset: digits}
  train: {epochs: 2, batch_size: 64, lr: 3.0e-3, log_every: 2}
runs:
  - name: vit
    model: {kind: vit, patch_size: 2, embed_dim: 32, heads: 2, layers: 1}
  - name: vit-acc
    model: {kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1}
    train: {batch_size: 16, accumulation_steps: 2, precision: bf16}
"""


def vitlab(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "vitlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY))
    return path


def test_run_json_contract_and_run_store(tmp_path, tiny):
    out = vitlab("run", tiny, "--runs-dir", tmp_path / "runs", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["experiment"] == "tiny" and [r["name"] for r in doc["runs"]] == ["vit", "vit-acc"]
    for r in doc["runs"]:
        for key in ("name", "status", "params", "flops", "epochs", "train_time_s", "throughput_img_s",
                    "peak_memory_mb", "accuracy", "eval_loss", "run_dir", "config"):
            assert key in r
        assert r["status"] == "finished" and r["epochs"] == 2 and 0 <= r["accuracy"] <= 1
        assert r["params"] > 0 and r["flops"] > 0 and r["throughput_img_s"] > 0
        run_dir = Path(r["run_dir"])
        assert run_dir.parent == tmp_path / "runs" / "tiny"
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config == r["config"] and config["train"]["epochs"] == 2
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["accuracy"] == r["accuracy"]
        lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [l["epoch"] for l in lines if l["event"] == "EpochEvaluated"] == [1, 2]
        assert any(l["event"] == "StepsLogged" for l in lines)
        assert (run_dir / "checkpoint.pt").exists()
    assert doc["runs"][1]["config"]["train"]["accumulation_steps"] == 2
    assert "vit-acc" in out.stderr  # progress goes to stderr


def test_run_prints_table_and_the_spread_across_seeds(tmp_path, tiny):
    out = vitlab("run", tiny, "--runs-dir", tmp_path / "runs", "--set", "train.epochs=1", "--seeds", "3,4")
    assert out.returncode == 0, out.stderr
    for header in ("Params", "GFLOPs/img", "Train time", "img/s", "Peak memory", "Final acc", "Across seeds"):
        assert header in out.stdout  # the result on stdout (`> results.txt` keeps it), progress on stderr
    assert "16x2" in out.stdout and "RSS" in out.stdout and "Final acc" not in out.stderr
    assert all(f"{name}-s{seed}" in out.stdout for name in ("vit", "vit-acc") for seed in (3, 4))
    again = vitlab("run", tiny, "--runs-dir", tmp_path / "runs", "--set", "train.epochs=1", "--seeds", "3,4",
                   "--continue")  # nothing left to train: the four are kept and the tables shown again
    assert again.returncode == 0 and again.stderr.count("finished earlier") == 4 and "epoch 1/1" not in again.stderr
    assert "Across seeds" in again.stdout
    out = vitlab("compare", tmp_path / "runs", "--by-seed", "--format", "json")
    groups = json.loads(out.stdout)["seed_groups"]
    assert [(g["name"], g["seeds"], g["finished"]) for g in groups] == [("vit-acc", [3, 4], 2), ("vit", [3, 4], 2)]
    for g in groups:  # two seeds of one tiny model in one epoch do not land on one accuracy
        assert 0 < g["accuracy_std"] < 0.5 and 0 < g["accuracy_mean"] < 1
    import matplotlib

    from vitlab.engine.store import find_runs
    from vitlab.plots import plot_curves

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # legend text as text, not glyph paths
        svg = plot_curves(find_runs([tmp_path / "runs"]), tmp_path / "seeds.svg", by_seed=True).read_text()
    assert "tiny/vit (2 seeds)" in svg and "mean ± std across seeds" in svg and "vit-s3" not in svg


def test_profile_json_needs_no_data(tmp_path):
    preset = tmp_path / "c.yaml"
    preset.write_text("name: c\nruns:\n  - name: v\n    model: {kind: vit, patch_size: 4, embed_dim: 64, heads: 2, layers: 2}\n"
                      "    data: {dataset: cifar100, root: /nonexistent}\n")
    out = vitlab("profile", preset, "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)["runs"][0]
    assert run["name"] == "v" and run["params"] == run["trainable_params"] > 0 and run["flops"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["run", "missing.yaml"], "no such preset file"),
    (["run", "{tiny}", "--set", "train.nope=1"], "train has no key 'nope'"),
    (["run", "{tiny}", "--set", "train.precision=fp8"], "train.precision"),
    (["frobnicate"], "no such preset file"),
    (["rn", "{tiny}"], "rn: no such command; did you mean `vitlab run`?"),  # was "unrecognized arguments"
    (["run", "{tiny}", "--seeds", "1,1"], "--seeds: give distinct whole numbers 0..4294967295 separated by commas, "
                                          "e.g. 0,1,2 (got '1,1')"),
    (["run", "{tiny}", "--seeds", "1,2", "--set", "train.seed=3"], "--seeds and --set train.seed"),
    (["run", "{tiny}", "--continue", "--nproc", "2", "--set", "data.dataset=cifar100"], "CIFAR-100 not found under"),
    (["{tiny}"], "the TUI needs a terminal"),  # no terminal (a script, CI): it waited for keys for good
    (["run", "/dev/zero"], "/dev/zero: larger than 1 MiB; not a preset"),  # read until the memory ran out
    (["run", ""], "no preset given"),  # was ".: cannot read it (Is a directory)"
    (["profile", "."], ".: a directory, not a preset file"),
    (["compare", "{tiny}"], "tiny.yaml: a file; give run directories or a directory above them"),
    (["resume", "{tiny}"], "tiny.yaml: a file; give the run's directory"),  # was "no such run directory"
])
def test_bad_input_is_one_clean_message_exit_2(tmp_path, tiny, args, fragment):
    out = vitlab(*[a.replace("{tiny}", str(tiny)) for a in args], cwd=tmp_path)
    assert out.returncode == 2
    assert fragment in out.stderr and "Traceback" not in out.stderr


def test_version(capsys):
    from vitlab import __version__
    from vitlab.cli import main as cli_main

    for flag in ("--version", "-V"):
        with pytest.raises(SystemExit) as done:
            cli_main([flag])
        assert done.value.code == 0 and capsys.readouterr().out == f"vitlab {__version__}\n"


def test_missing_dataset_stops_the_queue_before_it_starts(tmp_path, tiny):
    out = vitlab("run", tiny, "--set", "data.dataset=cifar100", "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()  # once for the queue, not once per run
    assert line.startswith("vitlab: CIFAR-100 not found under data/") and "cifar-100-python.tar.gz" in line
    assert line.endswith("Needed by vit, vit-acc.")
    assert not (tmp_path / "runs").exists()  # no run was started, so none is left failed on disk


def test_failed_run_exits_1_and_keeps_summary(tmp_path, tiny):
    out = vitlab("run", tiny, "--runs-dir", tmp_path / "runs", "--json", env={"VITLAB_INJECT_FAULT": "nan:2"})
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert {r["status"] for r in doc["runs"]} == {"failed"}
    assert "train.lr" in doc["runs"][0]["error"] and "Traceback" not in out.stderr


def test_presets_lists_shipped(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "mine.yaml").write_text(
        "name: tiny\ndescription: Does it learn? Details follow.\nruns:\n  - name: r\n    model: {kind: resnet18}\n")
    (tmp_path / "presets" / "quickstart.yaml").write_text("name: q\nruns:\n  - name: r\n    model: {kind: resnet18}\n")
    out = vitlab("presets", cwd=tmp_path)
    assert out.returncode == 0 and "quickstart" in out.stdout
    [mine] = [line for line in out.stdout.splitlines() if "mine.yaml" in line]  # piped: one line, never cut
    assert mine.split()[1] == "mine" and "Does it learn?" in mine and "Details" not in mine  # the name to type
    # two named quickstart: the shipped one says which file the name reads
    [shipped] = [line for line in out.stdout.splitlines() if "quickstart" in line and "offline default" in line]
    assert f"`vitlab run quickstart` reads {tmp_path / 'presets' / 'quickstart.yaml'}" in shipped


@pytest.mark.slow
def test_quickstart_vit_reaches_90_percent(tmp_path):
    """The offline default keeps its promise: > 90 % validation accuracy on digits, on a CPU, quickly."""
    from vitlab.engine.runner import train_run
    from vitlab.presets import load_preset

    exp = load_preset(ROOT / "presets" / "quickstart.yaml")
    vit = next(r for r in exp.runs if r.model.kind == "vit")
    summary = train_run(vit, experiment=exp.name, runs_dir=tmp_path)
    assert summary["status"] == "finished" and summary["accuracy"] >= 0.90


def test_brackets_in_names_paths_and_errors_are_printed_as_written(tmp_path):
    """Rich reads `[...]` as markup: text from outside must be escaped, or `[/x]` crashes and `[draft]` vanishes."""
    (tmp_path / "presets").mkdir()
    preset = tmp_path / "presets" / "br.yaml"
    preset.write_text(textwrap.dedent("""\
        name: br
        description: "[draft] brackets [/x] in a description"
        runs:
          - name: r
            model: {kind: resnet18, weights: "w[/x].pt"}
        """))
    (tmp_path / "w[/x].pt").parent.mkdir()
    (tmp_path / "w[/x].pt").write_bytes(b"not a checkpoint")
    out = vitlab("run", preset, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "model.weights w[/x].pt: not a loadable state dict" in " ".join(out.stderr.split())
    out = vitlab("presets", cwd=tmp_path)
    assert out.returncode == 0 and "[draft] brackets [/x]" in out.stdout


def test_usage_errors_name_the_command_once_and_paths_expand_home(monkeypatch, tmp_path, capsys):
    assert cli_main(["compare", "--sort", "nope", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vitlab: compare: argument --sort: invalid choice") and "vitlab: vitlab" not in err
    assert err.rstrip().endswith("(see vitlab compare --help)")
    assert cli_main(["profile", "p.yaml", "--seeds=1"]) == 2  # the command's help, not vitlab's
    assert capsys.readouterr().err == "vitlab: profile: unrecognized arguments: --seeds=1 (see vitlab profile --help)\n"
    monkeypatch.setenv("HOME", str(tmp_path))  # bash leaves the '~' of '--runs-dir=~/r' to the program
    assert build_parser().parse_args(["run", "p.yaml", "--runs-dir=~/r"]).runs_dir == tmp_path / "r"
    assert build_parser().parse_args(["compare", "~/runs", "--plot", "~/c.png"]).plot == tmp_path / "c.png"


def test_one_exit_code_rule_on_one_process_and_on_several():
    """`vitlab run` and the `--nproc` launcher decided apart: a failed run, then a Ctrl-C, gave 130 and 1."""
    from vitlab.commands import exit_code

    assert exit_code([{"status": "failed"}, {"status": "cancelled"}]) == 130  # the Ctrl-C stopped the queue
    assert exit_code([{"status": "finished"}, {"status": "failed"}]) == 1
    assert exit_code([{"status": "finished"}] * 2) == 0


def test_more_processes_than_gpus_are_refused_before_torchrun(tmp_path, tiny, monkeypatch, capsys):
    from vitlab.engine import hardware

    monkeypatch.setattr(hardware, "visible_gpus", lambda: 2)
    for command in (["run", str(tiny), "--runs-dir", str(tmp_path / "runs")], ["resume", str(tmp_path)]):
        assert cli_main([*command, "--nproc", "3"]) == 2
        assert capsys.readouterr().err == \
            "vitlab: --nproc 3: 2 CUDA devices visible, one a process; use --nproc 1 to 2\n"
    monkeypatch.setattr(hardware, "visible_gpus", lambda: 0)
    hardware.check_nproc(64)  # CPU ranks (gloo) may outnumber the cores


def test_a_warning_every_run_of_a_queue_gets_is_printed_in_full_once():
    from rich.console import Console

    from vitlab.commands.progress import ProgressPrinter
    from vitlab.engine.events import WarningRaised

    console = Console(record=True, width=200, color_system=None)
    printer = ProgressPrinter(console)
    for run in ("p2-s0", "p2-s1"):  # CIFAR files that fail their checksums: said for each of 9 runs
        printer(WarningRaised(run, "e", "data", "CIFAR-100 files train do not match the official checksums"))
    assert console.export_text().splitlines() == [
        "p2-s0 warning (data): CIFAR-100 files train do not match the official checksums",
        "p2-s1 warning (data): as for p2-s0 above"]
