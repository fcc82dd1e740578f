"""The comparison table: one column definition shared by `vitlab run`, `vitlab compare` and the TUI.

Cells are human-readable in the table and Markdown, raw numbers in CSV and JSON. Torch-free.
"""
from __future__ import annotations

import csv
import io
import json
import os
import statistics
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .config import WATCH_ONLY, flatten, trained_key, unseeded_name


def _num(x: float | int | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def runs_count(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def train_time(seconds: float | None) -> str:
    """A run's training time: tenths below 10 s (a digits run's 0.3 s is not '0s'), then as human_duration."""
    return f"{seconds:.1f}s" if seconds is not None and seconds < 9.95 else human_duration(seconds)


def started(s: dict) -> str:
    """'2026-11-27 01:07' from the ISO time the run started; '-' when unknown."""
    at = s.get("started_at")
    return at.replace("T", " ")[:16] if at else "-"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _final(s: dict) -> str:
    """A run that did not finish has no final accuracy: its last evaluated one, in brackets (a cancelled run's
    41% beside finished ones' 60% read as the worse setting)."""
    cell = _pct(s.get("accuracy"))
    return cell if s.get("status") in ("finished", None) or cell == "-" else f"({cell})"


def _memory(s: dict) -> str:
    mb = s.get("peak_memory_mb")
    if mb is None:
        return "-"
    kind = "RSS" if s.get("memory_kind") == "cpu" else "VRAM"
    return f"{mb:,.0f} MiB {kind}"  # one unit down the column: "1.04 GiB" above "781 MiB" read as the smaller


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    human: Callable[[dict], str]
    raw: Callable[[dict], Any]
    numeric: bool = False


def _field(name: str) -> Callable[[dict], Any]:
    return lambda s: s.get(name)


# Who and what first, then the answer (accuracy), then what it cost, then how and when it was trained: at 80
# columns the TUI shows the first six, and a narrow `vitlab run` / `compare` drops columns in NARROW_DROPS order.
COLUMNS: tuple[Column, ...] = (
    Column("experiment", "Experiment", lambda s: s.get("experiment") or "-", _field("experiment")),
    Column("run", "Run", lambda s: s.get("name") or "-", _field("name")),
    Column("model", "Model", lambda s: s.get("model") or "-", _field("model")),
    Column("accuracy", "Final acc", _final, _field("accuracy"), True),
    # the best epoch, picked on the evaluation split: on CIFAR's test split (no data.holdout) an optimistic figure
    Column("best_accuracy", "Best acc", lambda s: _pct(s.get("best_accuracy")), _field("best_accuracy"), True),
    Column("status", "Status", lambda s: s.get("status") or "-", _field("status")),
    Column("params", "Params", lambda s: human_count(s.get("params")), _field("params"), True),
    Column("gflops", "GFLOPs/img", lambda s: _num(s["flops"] / 1e9 if s.get("flops") else None, ".3g"),
           lambda s: s["flops"] / 1e9 if s.get("flops") else None, True),
    Column("time", "Train time", lambda s: train_time(s.get("train_time_s")), _field("train_time_s"), True),
    Column("throughput", "img/s", lambda s: _num(s.get("throughput_img_s"), ",.0f"), _field("throughput_img_s"), True),
    # `or None`: summaries before 2026-11-27 stored 0.0 for a run failed before its first throughput reading
    Column("mfu", "MFU", lambda s: _pct(s.get("mfu") or None), lambda s: s.get("mfu") or None, True),
    Column("memory", "Peak memory", _memory, _field("peak_memory_mb"), True),
    Column("precision", "Precision", lambda s: s.get("precision") or "-", _field("precision")),
    Column("batch", "Batch",
           lambda s: (f"{s['batch_size']}x{s['accumulation_steps']}" + (f"x{s['world_size']}" if (s.get("world_size") or 1) > 1 else ""))
           if s.get("batch_size") else "-",
           _field("effective_batch"), True),
    Column("epochs", "Epochs",
           lambda s: f"{s.get('epochs', 0)}/{s['epochs_planned']}" if s.get("epochs_planned") else _num(s.get("epochs"), "d"),
           _field("epochs"), True),
    Column("started", "Started", started, _field("started_at"), True),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)


def visible_columns(summaries: list[dict]) -> tuple[Column, ...]:
    """All columns, less MFU when no run has one (CPU runs)."""
    return tuple(c for c in COLUMNS if c.key != "mfu" or any(s.get("mfu") for s in summaries))


def format_row(summary: dict, columns: Iterable[Column] = COLUMNS) -> list[str]:
    return [c.human(summary) for c in columns]


def sort_summaries(summaries: list[dict], key: str | None, columns: tuple[Column, ...] = COLUMNS) -> list[dict]:
    """Sort by a column key (numbers descending, text ascending); runs without a value go last."""
    if not key:
        return list(summaries)
    column = next((c for c in columns if c.key == key), None)
    if column is None:
        raise ValueError(f"unknown column {key!r}; one of: {', '.join(c.key for c in columns)}")
    present = [s for s in summaries if column.raw(s) is not None]
    missing = [s for s in summaries if column.raw(s) is None]
    return sorted(present, key=column.raw, reverse=column.numeric) + missing


def cancelled_early(summary: dict) -> bool:
    """Cancelled before its first epoch ended (a ctrl+c in the first seconds): no accuracy to compare, and such
    directories pile up. `compare` and Results leave them out of the history (their directories stay)."""
    return summary.get("status") == "cancelled" and not summary.get("epochs")


STATUS_STYLE = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "interrupted": "magenta"}


# What a terminal too narrow for the whole table gives up, first to last; run, model, final accuracy and status
# stay, and so does the experiment where runs of several are compared (it tells their runs apart). The training
# time goes before the img/s it follows from; the best epoch's accuracy (picked on the evaluation split, the
# optimistic figure of the two) before what the runs cost, which a study weighs the final accuracy against.
NARROW_DROPS = ("started", "epochs", "precision", "batch", "mfu", "time", "memory", "params", "best_accuracy",
                "gflops", "throughput")


def fit_columns(columns: tuple[Column, ...], rows: list[list[str]], width: int, keep: str | None = None,
                drops: tuple[str, ...] = NARROW_DROPS) -> tuple[Column, ...]:
    """The columns whose cells fit `width` characters uncut (each takes its widest cell, 2 of padding and 1 of
    rule), dropping NARROW_DROPS in order, never `keep` (the column sorted by): cut cells ('qu…', '0.…') tell
    nothing. Those alike in every row go first: a patch-size study keeps its GFLOPs and drops the one precision."""
    need = {c.key: max([len(c.header)] + [len(r[i]) for r in rows]) + 3 for i, c in enumerate(columns)}
    alike = {c.key for i, c in enumerate(columns) if len({r[i] for r in rows}) <= 1}
    drops = tuple(sorted(drops, key=lambda key: key not in alike))  # stable: NARROW_DROPS' order within each
    kept = list(columns)
    # a kept sort column may leave too little room: the model, then the final accuracy make way for it
    for key in ("experiment",) * ("experiment" in alike) + drops + ("model", "accuracy") * bool(keep):
        if sum(need[c.key] for c in kept) + 1 <= width:
            break
        kept = [c for c in kept if c.key != key or key == keep]
    return tuple(kept)


def rich_table(summaries: list[dict], title: str | None = None, hide: tuple[str, ...] = (), width: int | None = None,
               sort: str | None = None):
    columns = tuple(c for c in visible_columns(summaries) if c.key not in hide)
    return _rich(columns, summaries, title, width, sort, styled="status")


def seed_table(groups: list[dict], hide: tuple[str, ...] = (), width: int | None = None):
    """The runs that differ only by seed, one row per condition: mean ± sample standard deviation."""
    columns = tuple(c for c in SEED_COLUMNS if c.key not in hide)
    return _rich(columns, groups, SEED_TITLE, width, None, styled=None, drops=SEED_DROPS)


def _rich(columns: tuple[Column, ...], rows: list[dict], title: str | None, width: int | None, sort: str | None,
          styled: str | None, drops: tuple[str, ...] = NARROW_DROPS):
    from rich.markup import escape
    from rich.table import Table

    if width:
        cells = [format_row(r, columns) for r in rows]
        fitted = fit_columns(columns, cells, width, keep=sort, drops=drops)
        alike = {c.key: column.pop() for i, c in enumerate(columns) if len(column := {r[i] for r in cells}) == 1}
        hidden = [c.header + (f" ({alike[c.key]} in all)" if c.key in alike and len(rows) > 1 else "")
                  for c in columns if c not in fitted]
        columns = fitted
    table = Table(title=title, header_style="bold", caption_justify="left",
                  caption=f"Hidden to fit {width} columns: {', '.join(hidden)} (a wider terminal shows them)"
                  if width and hidden else None)
    for c in columns:
        table.add_column(c.header, justify="right" if c.numeric else "left")
    keys = [c.key for c in columns]
    for r in rows:
        cells = [escape(cell) for cell in format_row(r, columns)]  # names and paths: brackets are not markup
        if styled in keys and (style := STATUS_STYLE.get(r.get(styled, ""), "")):
            cells[keys.index(styled)] = f"[{style}]{cells[keys.index(styled)]}[/]"
        table.add_row(*cells)
    return table


def to_markdown(summaries: list[dict]) -> str:
    """The table of runs, then (where some runs differ only by seed) the table across seeds."""
    text = _markdown(visible_columns(summaries), summaries)
    if groups := seed_groups(summaries):
        text += f"\n**{SEED_TITLE}**\n\n" + seeds_markdown(groups)
    return text


def seeds_markdown(groups: list[dict]) -> str:
    return _markdown(SEED_COLUMNS, groups)


def _markdown(columns: tuple[Column, ...], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in format_row(r, columns)) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summaries: list[dict]) -> str:
    """The JSON fields but the config, one row per run: names with their units (train_time_s, peak_memory_mb),
    the raw numbers behind the table's cells (batch_size, accumulation_steps, world_size, not '32x2')."""
    return _csv([f for f in JSON_FIELDS if f != "config"], json_runs(summaries))


def seeds_csv(groups: list[dict]) -> str:
    """One row per condition trained with several seeds; the seeds and run names separated by spaces."""
    flat = [{k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in g.items()} for g in groups]
    return _csv(list(GROUP_FIELDS), flat)


def _csv(fields: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(fields)
    for r in rows:
        writer.writerow(["" if r.get(f) is None else r[f] for f in fields])
    return buf.getvalue()


JSON_FIELDS = ("name", "experiment", "status", "seed", "model", "params", "trainable_params", "flops", "precision",
               "batch_size", "accumulation_steps", "world_size", "effective_batch", "epochs", "epochs_planned",
               "train_time_s", "throughput_img_s", "mfu", "peak_memory_mb", "memory_kind", "accuracy", "best_accuracy",
               "eval_split", "eval_loss", "train_loss", "skipped_steps", "allreduces_per_step", "cuda_graphs",
               "compiled", "device", "error", "failure", "started_at", "run_dir", "config")


def json_runs(summaries: list[dict]) -> list[dict]:
    return [{k: run_seed(s) if k == "seed" else s.get(k) for k in JSON_FIELDS} for s in summaries]


def to_json(summaries: list[dict], experiment: str | None = None, not_started: list[str] | None = None) -> str:
    """`not_started`: `vitlab run`'s runs that a Ctrl-C left untrained (always there, [] when none)."""
    doc: dict[str, Any] = {"runs": json_runs(summaries), "seed_groups": seed_groups(summaries)}
    if experiment is not None:
        doc = {"experiment": experiment, **doc, "not_started": not_started or []}
    return json.dumps(doc, indent=2)


def seeds_json(groups: list[dict]) -> str:
    return json.dumps({"seed_groups": groups}, indent=2)


# The export formats by name: compare --format, and the extension of the file the Results view writes
EXPORTS = {"md": to_markdown, "csv": to_csv, "json": to_json}
SEED_EXPORTS = {"md": seeds_markdown, "csv": seeds_csv, "json": seeds_json}


# -- across seeds -------------------------------------------------------------------------------
# One seed's accuracy on a small dataset can move by more than the effect a study looks for; runs that differ
# only by seed are summarised as mean ± sample standard deviation, so a difference can be read against the noise.

SEED_TITLE = "Across seeds (mean ± standard deviation of the finished runs)"
GROUP_FIELDS = ("experiment", "name", "model", "seeds", "runs", "finished", "finished_seeds", "best_accuracy_mean",
                "best_accuracy_std", "accuracy_mean", "accuracy_std", "accuracy_vs_best", "p_vs_best",
                "train_time_s_mean", "throughput_img_s_mean", "params", "flops", "run_names", "run_dirs")


def run_seed(summary: dict) -> int | None:
    return ((summary.get("config") or {}).get("train") or {}).get("seed")


def _condition(summary: dict) -> str | None:
    """The experiment and what was trained, less the run's name and seed."""
    config = summary.get("config")
    if not isinstance(config, dict) or run_seed(summary) is None:
        return None
    return json.dumps([summary.get("experiment"), trained_key(config)])


def _group_name(runs: list[dict]) -> str:
    """`vit` for vit-s0, vit-s1 (the names seeds give); otherwise the names' common start, or the first's."""
    names = [r.get("name") or "" for r in runs]
    bases = [unseeded_name(name, run_seed(r)) for name, r in zip(names, runs)]
    if len(set(bases)) == 1:
        return bases[0]
    return os.path.commonprefix(names).rstrip("-_.+") or bases[0]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_groups(summaries: list[dict]) -> list[dict]:
    """The conditions trained with at least two seeds, in the order the summaries first name them. Of one seed
    trained more than once, the newest finished run counts (the newest of any status if none finished)."""
    by_condition: dict[str, dict[int, dict]] = {}
    for s in summaries:
        if (key := _condition(s)) is None:
            continue
        seeds = by_condition.setdefault(key, {})
        rank = (s.get("status") == "finished", s.get("started_at") or "")
        held = seeds.get(run_seed(s))
        if held is None or rank > (held.get("status") == "finished", held.get("started_at") or ""):
            seeds[run_seed(s)] = s
    groups, configs, accuracies = [], [], []
    for seeds in by_condition.values():
        if len(seeds) < 2:
            continue
        runs = [seeds[k] for k in sorted(seeds)]
        configs.append(runs[0].get("config") or {})
        done = [r for r in runs if r.get("status") == "finished"]
        group: dict[str, Any] = {"experiment": runs[0].get("experiment"), "name": _group_name(runs),
                                 "model": runs[0].get("model"), "seeds": sorted(seeds), "runs": len(runs),
                                 "finished": len(done), "finished_seeds": [run_seed(r) for r in done]}
        for field in ("best_accuracy", "accuracy", "train_time_s", "throughput_img_s"):
            mean, std = _mean_std([r[field] for r in done if r.get(field) is not None])
            group[f"{field}_mean"] = mean
            if field.endswith("accuracy"):
                group[f"{field}_std"] = std
        group.update(params=runs[0].get("params"), flops=runs[0].get("flops"), run_names=[r.get("name") for r in runs],
                     run_dirs=[r.get("run_dir") for r in runs])
        groups.append(group)
        accuracies.append([r["accuracy"] for r in done if r.get("accuracy") is not None])
    _tell_apart(groups, configs)
    _versus_best(groups, accuracies, [(g["experiment"], _evaluated_on(c)) for g, c in zip(groups, configs)])
    return groups


def _evaluated_on(config: dict) -> tuple:
    """What an accuracy was measured on: settings evaluated on other images (another dataset, a held-out split,
    fewer of them) are not compared with each other."""
    data = config.get("data") or {}
    return (data.get("dataset"), data.get("holdout"), data.get("limit_val"),
            data.get("root") if data.get("dataset") == "imagefolder" else None)


def _versus_best(groups: list[dict], accuracies: list[list[float]], against: list[tuple]) -> None:
    """Each setting's mean final accuracy against the best setting of its experiment evaluated on the same images
    (`against`: a key for each group): the difference and the two-sided p-value of Welch's t-test (unequal
    variances), so a gap can be read against the seed noise. Needs two finished seeds on both sides; None where
    it cannot be said (and the best's own p)."""
    for g in groups:
        g["accuracy_vs_best"] = g["p_vs_best"] = None
    for key in dict.fromkeys(against):
        able = [i for i, k in enumerate(against) if k == key and len(accuracies[i]) >= 2]
        if len(able) < 2:
            continue
        best = max(able, key=lambda i: groups[i]["accuracy_mean"])
        for i in able:
            if i != best:
                groups[i]["accuracy_vs_best"] = groups[i]["accuracy_mean"] - groups[best]["accuracy_mean"]
                groups[i]["p_vs_best"] = welch_p(accuracies[i], accuracies[best])
        groups[best]["accuracy_vs_best"] = 0.0


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None when both samples have no spread (the test is undefined)."""
    from scipy.stats import ttest_ind

    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return None
    with warnings.catch_warnings():  # scipy warns of precision loss when a sample's values are (nearly) equal
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def _tell_apart(groups: list[dict], configs: list[dict]) -> None:
    """Groups of one experiment and name trained with other settings (`--set train.lr=...` into the same runs
    directory) get the settings that differ in their name: `vit (lr=0.001)`, `vit (lr=0.003)`."""
    flat = [flatten({k: v for k, v in c.items() if k != "name"}) for c in configs]
    for g in groups:
        same = [i for i, o in enumerate(groups) if (o["experiment"], o["name"]) == (g["experiment"], g["name"])]
        if len(same) < 2 or "differs" in g:
            continue
        keys = sorted({k for i in same for k in flat[i]} - {"train.seed", *WATCH_ONLY})
        keys = [k for k in keys if len({repr(flat[i].get(k)) for i in same}) > 1]
        for i in same:
            shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={flat[i].get(k)}" for k in keys[:2]) + ", …" * (len(keys) > 2)
            groups[i]["differs"] = shown
    for g in groups:
        if differs := g.pop("differs", None):
            g["name"] = f"{g['name']} ({differs})"


def _pct_spread(group: dict, field: str) -> str:
    mean, std = group.get(f"{field}_mean"), group.get(f"{field}_std")
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}%" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}%"


def _vs_best_cell(group: dict) -> str:
    """`best`; `-2.10, p=0.04` (percentage points of mean final accuracy, Welch's p); `-` without two finished
    seeds on both sides."""
    diff, p = group.get("accuracy_vs_best"), group.get("p_vs_best")
    if diff is None:
        return "-"
    if p is None and diff == 0:
        return "best"
    return f"{100 * diff:+.2f}" + ("" if p is None else f", {p_text(p)}")


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def versus_best(group: dict) -> str:
    """` · -3.17 pts vs the best setting (p=0.052)`, ` · the best setting` or nothing: a run's detail line."""
    diff, p = group.get("accuracy_vs_best"), group.get("p_vs_best")
    if diff is None:
        return ""
    if diff == 0 and p is None:
        return " · the best setting"
    return f" · {100 * diff:+.2f} pts vs the best setting" + ("" if p is None else f" ({p_text(p)})")


def _seeds_cell(group: dict) -> str:
    """`0,1,2`; `0,1,2 (finished: 0,2)` while some have not finished (running, cancelled, failed)."""
    seeds = ",".join(map(str, group["seeds"]))
    if group["finished"] == group["runs"]:
        return seeds
    return f"{seeds} (finished: {','.join(map(str, group['finished_seeds'])) or 'none'})"


SEED_COLUMNS: tuple[Column, ...] = (
    Column("experiment", "Experiment", lambda g: g.get("experiment") or "-", _field("experiment")),
    Column("run", "Run", lambda g: g.get("name") or "-", _field("name")),
    Column("model", "Model", lambda g: g.get("model") or "-", _field("model")),
    Column("seeds", "Seeds", _seeds_cell, _field("finished"), True),  # sorted: the most finished seeds first
    Column("accuracy", "Final acc", lambda g: _pct_spread(g, "accuracy"), _field("accuracy_mean"), True),
    Column("vs_best", "vs best (pts)", _vs_best_cell, _field("accuracy_vs_best"), True),
    Column("best_accuracy", "Best acc", lambda g: _pct_spread(g, "best_accuracy"), _field("best_accuracy_mean"), True),
    Column("params", "Params", lambda g: human_count(g.get("params")), _field("params"), True),
    Column("time", "Train time", lambda g: train_time(g.get("train_time_s_mean")), _field("train_time_s_mean"), True),
    Column("throughput", "img/s", lambda g: _num(g.get("throughput_img_s_mean"), ",.0f"),
           _field("throughput_img_s_mean"), True),
)
# the answer across seeds is the final accuracy and its gap to the best setting; the best accuracy (of any epoch)
# comes after them and makes way first
SEED_DROPS = ("params", "time", "throughput", "best_accuracy")
