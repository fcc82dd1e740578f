"""Loss and accuracy curves of runs, from their metrics.jsonl, to a PNG or SVG (matplotlib, optional)."""
from __future__ import annotations

import os
import statistics
from pathlib import Path

from .errors import VitlabError


def check_plot_path(path: Path) -> None:
    """What can be told before the table is printed: the kind of file, and a place it can be written."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise VitlabError(f"--plot {path}: use a .png or .svg file name")
    if path.is_dir():
        raise VitlabError(f"--plot {path}: a directory; name a file in it, e.g. {path / 'curves.png'}")
    there = next(p for p in path.absolute().parents if p.exists())  # missing directories are made
    if not there.is_dir():
        raise VitlabError(f"--plot {path}: {there} is a file, not a directory")
    if not os.access(there, os.W_OK | os.X_OK):
        raise VitlabError(f"--plot {path}: {there} is not writable")


def plot_curves(summaries: list[dict], path: Path, by_seed: bool = False) -> Path:
    """One line per run; `by_seed`: one per setting trained with several seeds, the mean over its finished runs
    in a band of ± one standard deviation."""
    check_plot_path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise VitlabError("--plot needs matplotlib: pip install 'vitlab[plot]'") from None
    series = [(label, curves, epochs) for label, curves in (_seed_series(summaries) if by_seed else
                                                             _run_series(summaries))
              if (epochs := sorted(set.intersection(*(set(c) for c in curves))))]  # epochs every run of it reached
    if not series:  # an empty figure, written without a word, looked like a plotting bug
        raise VitlabError(f"--plot {path}: no run here has an evaluated epoch yet, so there is nothing to draw "
                          "(not written)")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, curves, epochs in series:
        line = None
        for ax, key, style, scale in ((ax_loss, "train_loss", "-", 1), (ax_loss, "eval_loss", "--", 1),
                                      (ax_acc, "accuracy", "-", 100)):
            values = [[scale * c[e][key] for c in curves] for e in epochs]
            mean = [statistics.fmean(v) for v in values]
            suffix = {"train_loss": " train", "eval_loss": " eval"}.get(key, "")
            drawn, = ax.plot(epochs, mean, ls=style, marker="o" if style == "-" else None, ms=3,
                             color=line.get_color() if line else None, label=label + suffix)
            line = line or drawn
            if len(curves) > 1:
                spread = [statistics.stdev(v) for v in values]
                ax.fill_between(epochs, [m - d for m, d in zip(mean, spread)], [m + d for m, d in zip(mean, spread)],
                                color=line.get_color(), alpha=0.15, lw=0)
    # the train loss is the one optimised (smoothed targets), the eval loss plain cross-entropy: not the same curve
    smoothed = any(((s.get("config") or {}).get("train") or {}).get("label_smoothing") for s in summaries)
    ax_loss.set(title="Loss" + (" (train with label smoothing, eval without)" if smoothed else ""), xlabel="epoch",
                ylabel="cross-entropy")
    ax_acc.set(title="Eval accuracy" + (" (mean ± std across seeds)" if by_seed else ""), xlabel="epoch",
               ylabel="top-1 (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: 1, 2, 3, not 1.2
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as e:  # what check_plot_path cannot see (/proc, a full disk)
        raise VitlabError(f"--plot {path}: cannot write it ({e.strerror or e})") from None
    finally:
        plt.close(fig)
    return path


def _evals(run_dir: str) -> dict[int, dict]:
    """epoch -> its EpochEvaluated record."""
    from .engine.store import read_metrics

    return {m["epoch"]: m for m in read_metrics(Path(run_dir) / "metrics.jsonl") if m.get("event") == "EpochEvaluated"
            and all(k in m for k in ("epoch", "train_loss", "eval_loss", "accuracy"))}  # a partial line: not drawn


def _run_series(summaries: list[dict]) -> list[tuple[str, list[dict]]]:
    from .report import started

    names = [f"{s.get('experiment', '')}/{s.get('name', '')}" for s in summaries]
    series = []
    for s, name in zip(summaries, names):
        repeated = names.count(name) > 1 and s.get("started_at")  # the same run trained again: say when
        series.append((f"{name} {started(s)}" if repeated else name, [_evals(s["run_dir"])]))
    return series


def _seed_series(summaries: list[dict]) -> list[tuple[str, list[dict]]]:
    from .report import seed_groups

    finished = {s.get("run_dir") for s in summaries if s.get("status") == "finished"}
    series = []
    for g in seed_groups(summaries):
        dirs = [d for d in g["run_dirs"] if d in finished]
        if dirs:
            series.append((f"{g['experiment']}/{g['name']} ({len(dirs)} seeds)", [_evals(d) for d in dirs]))
    return series
