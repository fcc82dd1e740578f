"""The comparison table: one column definition shared by `vitlab run`, `vitlab compare` and the TUI.

Cells are human-readable in the table and Markdown, raw numbers in CSV and JSON. Torch-free.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable


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


def started(s: dict) -> str:
    """'2026-11-27 01:07' from the ISO time the run started; '-' when unknown."""
    at = s.get("started_at")
    return at.replace("T", " ")[:16] if at else "-"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _memory(s: dict) -> str:
    mb = s.get("peak_memory_mb")
    if mb is None:
        return "-"
    kind = "RSS" if s.get("memory_kind") == "cpu" else "VRAM"
    return f"{mb / 1024:.2f} GiB {kind}" if mb >= 1024 else f"{mb:.0f} MiB {kind}"


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
    Column("best_accuracy", "Best acc", lambda s: _pct(s.get("best_accuracy")), _field("best_accuracy"), True),
    Column("accuracy", "Final acc", lambda s: _pct(s.get("accuracy")), _field("accuracy"), True),
    Column("status", "Status", lambda s: s.get("status") or "-", _field("status")),
    Column("params", "Params", lambda s: human_count(s.get("params")), _field("params"), True),
    Column("gflops", "GFLOPs/img", lambda s: _num(s["flops"] / 1e9 if s.get("flops") else None, ".3g"),
           lambda s: s["flops"] / 1e9 if s.get("flops") else None, True),
    Column("time", "Train time", lambda s: human_duration(s.get("train_time_s")), _field("train_time_s"), True),
    Column("throughput", "img/s", lambda s: _num(s.get("throughput_img_s"), ",.0f"), _field("throughput_img_s"), True),
    Column("mfu", "MFU", lambda s: _pct(s.get("mfu")), _field("mfu"), True),
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


def sort_summaries(summaries: list[dict], key: str | None) -> list[dict]:
    """Sort by a column key (numbers descending, text ascending); runs without a value go last."""
    if not key:
        return list(summaries)
    column = next((c for c in COLUMNS if c.key == key), None)
    if column is None:
        raise ValueError(f"unknown column {key!r}; one of: {', '.join(COLUMN_KEYS)}")
    present = [s for s in summaries if column.raw(s) is not None]
    missing = [s for s in summaries if column.raw(s) is None]
    return sorted(present, key=column.raw, reverse=column.numeric) + missing


STATUS_STYLE = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "interrupted": "magenta"}


# What a terminal too narrow for the whole table gives up, first to last; run, model, accuracy and status stay,
# and so does the experiment where runs of several are compared (it tells their runs apart).
NARROW_DROPS = ("started", "epochs", "precision", "batch", "mfu", "gflops", "memory", "params", "time", "throughput")


def fit_columns(columns: tuple[Column, ...], rows: list[list[str]], width: int,
                keep: str | None = None) -> tuple[Column, ...]:
    """The columns whose cells fit `width` characters uncut (each takes its widest cell, 2 of padding and 1 of
    rule), dropping NARROW_DROPS in order, never `keep` (the column sorted by): cut cells ('qu…', '0.…') tell
    nothing."""
    need = {c.key: max([len(c.header)] + [len(r[i]) for r in rows]) + 3 for i, c in enumerate(columns)}
    keys = [c.key for c in columns]
    one_experiment = "experiment" in keys and len({r[keys.index("experiment")] for r in rows}) <= 1
    kept = list(columns)
    # a kept sort column may leave too little room: the model, then the final accuracy make way for it
    for key in ("experiment",) * one_experiment + NARROW_DROPS + ("model", "accuracy") * bool(keep):
        if sum(need[c.key] for c in kept) + 1 <= width:
            break
        kept = [c for c in kept if c.key != key or key == keep]
    return tuple(kept)


def rich_table(summaries: list[dict], title: str | None = None, hide: tuple[str, ...] = (), width: int | None = None,
               sort: str | None = None):
    from rich.markup import escape
    from rich.table import Table

    columns = tuple(c for c in visible_columns(summaries) if c.key not in hide)
    if width:
        fitted = fit_columns(columns, [format_row(s, columns) for s in summaries], width, keep=sort)
        hidden = [c.header for c in columns if c not in fitted]
        columns = fitted
    table = Table(title=title, header_style="bold", caption_justify="left",
                  caption=f"Hidden to fit {width} columns: {', '.join(hidden)} (a wider terminal shows them)"
                  if width and hidden else None)
    for c in columns:
        table.add_column(c.header, justify="right" if c.numeric else "left")
    status = [c.key for c in columns].index("status")
    for s in summaries:
        cells = [escape(cell) for cell in format_row(s, columns)]  # names and paths: brackets are not markup
        if style := STATUS_STYLE.get(s.get("status", ""), ""):
            cells[status] = f"[{style}]{cells[status]}[/]"
        table.add_row(*cells)
    return table


def to_markdown(summaries: list[dict]) -> str:
    columns = visible_columns(summaries)
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|"]
    for s in summaries:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in format_row(s, columns)) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summaries: list[dict]) -> str:
    """The JSON fields but the config, one row per run: names with their units (train_time_s, peak_memory_mb),
    the raw numbers behind the table's cells (batch_size, accumulation_steps, world_size, not '32x2')."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    fields = [f for f in JSON_FIELDS if f != "config"]
    writer.writerow(fields)
    for s in summaries:
        writer.writerow(["" if s.get(f) is None else s[f] for f in fields])
    return buf.getvalue()


JSON_FIELDS = ("name", "experiment", "status", "model", "params", "trainable_params", "flops", "precision",
               "batch_size", "accumulation_steps", "world_size", "effective_batch", "epochs", "epochs_planned",
               "train_time_s", "throughput_img_s", "mfu", "peak_memory_mb", "memory_kind", "accuracy", "best_accuracy",
               "eval_loss", "train_loss", "skipped_steps", "allreduces_per_step", "cuda_graphs", "compiled", "device",
               "error", "failure", "started_at", "run_dir", "config")


def json_runs(summaries: list[dict]) -> list[dict]:
    return [{k: s.get(k) for k in JSON_FIELDS} for s in summaries]


def to_json(summaries: list[dict], experiment: str | None = None) -> str:
    doc: dict[str, Any] = {"runs": json_runs(summaries)}
    if experiment is not None:
        doc = {"experiment": experiment, **doc}
    return json.dumps(doc, indent=2)
