"""`vitlab compare` over run directories made by real short runs, a failed one, a torn one and a killed one."""
import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitlab.config import ExperimentConfig, RunConfig
from vitlab.engine.runner import run_experiment, train_run
from vitlab.engine.store import find_runs, read_metrics
from vitlab.report import COLUMN_KEYS, sort_summaries


def vitlab(*args):
    return subprocess.run([sys.executable, "-m", "vitlab", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    model = {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1}
    train = {"epochs": 2, "batch_size": 64, "log_every": 2}
    data = {"dataset": "synthetic", "image_size": 8, "limit_train": 256, "limit_val": 64}
    exp = ExperimentConfig.model_validate({"name": "study", "runs": [
        {"name": "good", "model": model, "train": train, "data": data},
        {"name": "torn", "model": model, "train": {**train, "accumulation_steps": 2, "batch_size": 32}, "data": data},
    ]})
    run_experiment(exp, runs_dir=root)
    os.environ["VITLAB_INJECT_FAULT"] = "nan:1"
    try:
        run_experiment(ExperimentConfig.model_validate({"name": "broken", "runs": [
            {"name": "nan", "model": model, "train": train, "data": data}]}), runs_dir=root)
    finally:
        del os.environ["VITLAB_INJECT_FAULT"]
    torn = next((root / "study").glob("*-torn"))
    with open(torn / "metrics.jsonl", "a") as f:
        f.write('{"event": "StepsLogged", "epo')  # a writer killed mid-line
    killed = next((root / "study").glob("*-good"))
    copy = killed.with_name(killed.name.replace("good", "killed"))
    copy.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        (copy / name).write_bytes((killed / name).read_bytes())
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text().replace("name: good", "name: killed"))
    return root


def test_find_runs_tolerates_torn_and_missing_summary(runs):
    summaries = {s["name"]: s for s in find_runs([runs])}
    assert set(summaries) == {"good", "torn", "nan", "killed"}
    assert summaries["good"]["status"] == "finished"
    assert summaries["nan"]["status"] == "failed"
    assert summaries["killed"]["status"] == "interrupted" and summaries["killed"]["epochs"] == 2
    assert summaries["killed"]["accuracy"] == summaries["good"]["accuracy"]
    killed = summaries["killed"]  # rounded as a summary's own figures are (the CSV had 6.848960039995291)
    assert killed["train_time_s"] == round(killed["train_time_s"], 3) > 0
    assert killed["throughput_img_s"] == round(killed["throughput_img_s"], 2) > 0
    stamp = next(runs.glob("study/*-killed")).name[:15]  # no summary: the start time its directory name records
    assert summaries["killed"]["started_at"] == dt.datetime.strptime(stamp, "%Y%m%d-%H%M%S").isoformat()
    assert all(s["started_at"] for s in summaries.values())
    torn = next(runs.glob("study/*-torn"))
    assert all("event" in r for r in read_metrics(torn / "metrics.jsonl"))


def test_runs_started_within_one_second_are_newest_first_too(tmp_path):
    """Short runs (the seeds of a 1-epoch run on digits) start within one second: their directories' stamps tie,
    and the order was their names' (s0, s1, s2 under "newest first")."""
    for i, name in enumerate(("v-s1", "v-s0", "v-s2")):  # started in this order
        d = tmp_path / "e" / f"20250101-120000-{name}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(f"name: {name}\n")
        (d / "summary.json").write_text(json.dumps({"name": name, "status": "finished"}))
        os.utime(d / "config.yaml", ns=(10**18 + i, 10**18 + i))
    later = tmp_path / "e" / "20250101-120001-a"  # the stamp comes first
    later.mkdir()
    (later / "config.yaml").write_text("name: a\n")
    os.utime(later / "config.yaml", ns=(0, 0))
    assert [s["name"] for s in find_runs([tmp_path])] == ["a", "v-s2", "v-s0", "v-s1"]


def test_best_accuracy_is_the_best_epoch_s_whether_the_run_finished_or_was_killed(tmp_path):
    cfg = RunConfig.model_validate({
        "name": "dip", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 256, "limit_val": 64},
        "train": {"epochs": 2, "batch_size": 64, "seed": 2, "checkpoint": False}})
    done = train_run(cfg, experiment="best", runs_dir=tmp_path)
    run_dir = Path(done["run_dir"])
    accuracies = [r["accuracy"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "EpochEvaluated"]
    assert len(accuracies) == 2 and accuracies[1] < accuracies[0]  # seed 2 falls in epoch 2: the best is not the last
    assert (done["best_accuracy"], done["accuracy"]) == (accuracies[0], accuracies[1])
    (run_dir / "summary.json").unlink()  # killed before it wrote one: rebuilt from its metrics
    [killed] = find_runs([tmp_path])
    assert killed["status"] == "interrupted"
    assert (killed["best_accuracy"], killed["accuracy"]) == (accuracies[0], accuracies[1])


def test_table_shows_every_status(runs):
    out = vitlab("compare", runs)
    assert out.returncode == 0, out.stderr
    for word in ("finished", "failed", "interrupted", "ViT p2 d32 h2 L1", "32x2", "Final acc"):
        assert word in out.stdout


def test_a_run_that_did_not_finish_has_its_last_accuracy_in_brackets():
    from vitlab.report import format_row

    def cell(status):
        return format_row({"status": status, "accuracy": 0.412})[COLUMN_KEYS.index("accuracy")]

    assert cell("finished") == "41.20%" and cell("cancelled") == cell("interrupted") == "(41.20%)"
    assert format_row({"status": "failed"})[COLUMN_KEYS.index("accuracy")] == "-"


@pytest.mark.parametrize("width, sort, shown, hidden", [
    (220, None, ("Experiment", "Epochs", "Precision", "Peak memory", "Started"), ()),
    (80, None, ("Experiment", "Run", "Model", "Final acc", "Status", "img/s"),
     ("Started", "Epochs", "Precision", "Best acc")),
    # the sort stays; the best epoch's accuracy, then the model, then the final accuracy make way for it
    (80, "started", ("Experiment", "Run", "Final acc", "Status", "Started"), ("Model", "Best acc", "Epochs")),
    (80, "batch", ("Run", "Model", "Final acc", "Status", "Batch"), ("Best acc", "Started", "Epochs")),
])
def test_a_narrow_terminal_drops_whole_columns_rather_than_cutting_cells(runs, width, sort, shown, hidden):
    from rich.console import Console

    from vitlab.report import rich_table

    console = Console(width=width, record=True, color_system=None)
    console.print(rich_table(sort_summaries(find_runs([runs]), sort), width=width, sort=sort))
    text = console.export_text()
    assert "…" not in text and max(map(len, text.splitlines())) <= width
    header = text.splitlines()[1]
    assert all(h in header for h in shown) and not any(h in header for h in hidden)
    assert ("Hidden to fit" in text) == bool(hidden)


def test_columns_alike_in_every_row_make_way_first_and_say_their_value(runs):
    """A patch-size study at 80 columns kept the one precision and dropped the GFLOPs it is about."""
    from rich.console import Console

    from vitlab.report import rich_table

    study = [s for s in find_runs([runs]) if s["status"] == "finished"]
    study = [{**s, "flops": flops, "name": f"p{p}"} for s, p, flops in zip(study * 3, (2, 4, 8), (8.4e8, 1.8e8, 4.7e7))]
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table(study, width=80))
    text = console.export_text()
    assert "GFLOPs/img" in text.splitlines()[1] and "Precision (fp32 in all)" in " ".join(text.split())


def test_formats_parse_back(runs):
    md = vitlab("compare", runs / "study", runs / "broken", "--format", "md").stdout
    assert md.splitlines()[0].startswith("| Experiment | Run |") and len(md.splitlines()) == 2 + 4
    rows = list(csv.DictReader(io.StringIO(vitlab("compare", runs, "--format", "csv", "--sort", "accuracy").stdout)))
    assert len(rows) == 4 and rows[0]["name"] in ("good", "torn", "killed")
    torn = next(r for r in rows if r["name"] == "torn")  # raw figures under names that say their unit
    assert (torn["batch_size"], torn["accumulation_steps"], torn["effective_batch"]) == ("32", "2", "64")
    assert float(torn["train_time_s"]) > 0 and float(torn["peak_memory_mb"]) > 0 and torn["memory_kind"] == "cpu"
    assert torn["eval_split"] == "val"  # what the accuracy was measured on
    accs = [float(r["accuracy"]) for r in rows if r["accuracy"]]
    assert accs == sorted(accs, reverse=True)
    doc = json.loads(vitlab("compare", runs, "--format", "json").stdout)
    assert {r["name"] for r in doc["runs"]} == {"good", "torn", "nan", "killed"}
    assert all(k in doc["runs"][0] for k in ("status", "params", "accuracy", "run_dir", "config"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_on_stdout_is_one_line_never_a_traceback(runs):
    for fmt in ("csv", "table"):
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", "vitlab", "compare", str(runs), "--format", fmt],
                                  stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
        assert (done.returncode, done.stderr) == (1, "vitlab: standard output: No space left on device\n")


def test_plot_written(runs, tmp_path):
    out = vitlab("compare", runs / "study", "--plot", tmp_path / "curves.png")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "curves.png").stat().st_size > 5000
    assert vitlab("compare", runs, "--plot", tmp_path / "c.svg").returncode == 0
    assert (tmp_path / "c.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    out = vitlab("compare", runs, "--plot", tmp_path / "c.jpg")
    assert out.returncode == 2 and "use a .png or .svg file name" in out.stderr
    assert not out.stdout  # refused before the table was printed
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "afile").write_text("")
    for where, why in ((tmp_path / "dir.png", "a directory; name a file in it"),
                       (tmp_path / "afile" / "deeper" / "c.png", f"{tmp_path / 'afile'} is a file, not a directory")):
        out = vitlab("compare", runs, "--plot", where)  # a traceback after the table, before
        assert (out.returncode, out.stdout, out.stderr) == (2, "", f"vitlab: --plot {where}: {why}" + (
            f", e.g. {where / 'curves.png'}\n" if where.is_dir() else "\n"))


def test_plot_legend_tells_repeats_of_a_run_apart(runs, tmp_path):
    import matplotlib

    from vitlab.plots import plot_curves

    good = next(s for s in find_runs([runs]) if s["name"] == "good")
    again = {**good, "started_at": "2026-01-02T03:04:05"}
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # legend text as text, not glyph paths
        svg = plot_curves([good, again], tmp_path / "r.svg").read_text()
    assert "study/good 2026-01-02 03:04" in svg and f"study/good {good['started_at'][:10]}" in svg


def test_bad_paths_and_columns(tmp_path):
    assert "no such path" in vitlab("compare", tmp_path / "nope").stderr
    assert "no run directories" in vitlab("compare", tmp_path).stderr
    assert vitlab("compare", tmp_path, "--sort", "colour").returncode == 2
    slash = vitlab("compare", tmp_path, "--plot", "out.png/")  # Path dropped the slash: out.png was written
    assert slash.returncode == 2 and "out.png/ names a directory; name a file in it" in slash.stderr


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = ExperimentConfig.model_validate({"name": "tb", "runs": [{
        "name": "v", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 256, "limit_val": 64},
        "train": {"epochs": 2, "batch_size": 64, "log_every": 2, "tensorboard": True}}]})
    [summary] = run_experiment(exp, runs_dir=tmp_path)
    acc = EventAccumulator(summary["run_dir"])
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "eval/accuracy", "eval/loss", "perf/images_per_s", "memory/peak_mb"} <= tags
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [1, 2]
    assert acc.Scalars("eval/accuracy")[-1].value == pytest.approx(summary["accuracy"])


def test_damaged_run_files_are_read_as_missing_figures_never_a_traceback(runs, tmp_path, capsys):
    """summary.json or metrics.jsonl edited by hand or another tool: compare, its plot and formats still work."""
    import shutil

    from vitlab.cli import main as cli_main

    good = next((runs / "study").glob("*-good"))
    for i, (summary, metrics_line) in enumerate([
            ([1, 2], None), ({"name": 7, "status": "finished", "accuracy": "high", "config": "x"}, None),
            (None, '{"event": "EpochEvaluated", "epoch": "x", "accuracy": 0.5}\n'
                   '{"event": "EpochEvaluated", "epoch": 2, "accuracy": 0.5}\n')]):  # a line without its losses
        run = tmp_path / "damaged" / f"20260101-00000{i}-d{i}"
        shutil.copytree(good, run)
        if summary is not None:
            (run / "summary.json").write_text(json.dumps(summary))
        else:
            (run / "summary.json").unlink()
        if metrics_line:
            with open(run / "metrics.jsonl", "a") as f:
                f.write(metrics_line)
    empty = tmp_path / "damaged" / "20260101-000003-d3"  # `{}`: a row of dashes, no name or status
    shutil.copytree(good, empty)
    (empty / "summary.json").write_text("{}")
    unconfigured = tmp_path / "damaged" / "20260101-000004-d4"  # no config.yaml: it went unlisted
    shutil.copytree(good, unconfigured)
    (unconfigured / "config.yaml").unlink()
    summaries = {s["run_dir"][-2:]: s for s in find_runs([tmp_path / "damaged"])}
    assert summaries["d0"]["status"] == "interrupted" and summaries["d1"]["name"] == "7"
    assert (summaries["d3"]["name"], summaries["d3"]["status"], summaries["d3"]["epochs"]) == ("good", "interrupted", 2)
    assert summaries["d4"]["name"] == "good" and summaries["d4"]["status"] == "finished"
    assert summaries["d1"]["accuracy"] is None and summaries["d1"]["config"] == {}
    assert summaries["d2"]["epochs"] == 2  # the damaged line is skipped, the run's own epochs are read
    for fmt in ("table", "md", "csv", "json"):
        assert cli_main(["compare", str(tmp_path / "damaged"), "--format", fmt]) == 0
    assert cli_main(["compare", str(tmp_path / "damaged"), "--plot", str(tmp_path / "d.png")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    failed = tmp_path / "early" / "20260101-000000-f"  # failed before its first evaluation: no curve at all
    failed.mkdir(parents=True)
    (failed / "config.yaml").write_text("name: f\n")
    (failed / "summary.json").write_text(json.dumps({"name": "f", "status": "failed", "config": {}}))
    assert cli_main(["compare", str(tmp_path / "early"), "--plot", str(tmp_path / "e.png")]) == 2
    assert "nothing to draw (not written)" in capsys.readouterr().err and not (tmp_path / "e.png").exists()


def test_runs_cancelled_in_their_first_epoch_are_left_out_unless_all(runs, tmp_path):
    model = {"kind": "vit", "patch_size": 2, "embed_dim": 8, "heads": 1, "layers": 1}
    data = {"dataset": "synthetic", "image_size": 4, "limit_train": 32, "limit_val": 16}
    exp = ExperimentConfig.model_validate({"name": "study", "runs": [{"name": "ctrl-c", "model": model, "data": data}]})
    summary = train_run(exp.runs[0], experiment="study", runs_dir=tmp_path, should_stop=lambda: True)  # ctrl+c at once
    assert summary["status"] == "cancelled" and summary["epochs"] == 0
    good = next(runs.glob("study/*-good"))
    (tmp_path / "study" / good.name).mkdir()
    for f in good.iterdir():
        (tmp_path / "study" / good.name / f.name).write_bytes(f.read_bytes())
    out = vitlab("compare", tmp_path, "--format", "csv")
    assert out.returncode == 0 and "ctrl-c" not in out.stdout and "good" in out.stdout
    assert "1 run cancelled in the first epoch left out: --all lists them" in out.stderr
    out = vitlab("compare", tmp_path, "--format", "csv", "--all")
    assert "ctrl-c" in out.stdout and "left out" not in out.stderr
    out = vitlab("compare", summary["run_dir"], "--format", "csv")  # named itself: shown
    assert out.returncode == 0 and "ctrl-c" in out.stdout


def test_mfu_of_a_run_without_throughput_is_a_dash_not_zero():
    from vitlab.report import COLUMNS

    mfu = next(c for c in COLUMNS if c.key == "mfu")
    # vitlab before 2026-11-27 stored 0.0 for a GPU run that failed before its first throughput reading
    assert [mfu.human(s) for s in ({"mfu": 0.0, "throughput_img_s": None}, {"mfu": None}, {"mfu": 0.2})] == \
        ["-", "-", "20.00%"]
