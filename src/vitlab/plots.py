"""Loss and accuracy curves of runs, from their metrics.jsonl, to a PNG or SVG (matplotlib, optional)."""
from __future__ import annotations

from pathlib import Path

from .errors import VitlabError


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise VitlabError(f"--plot {path}: use a .png or .svg file name")


def plot_curves(summaries: list[dict], path: Path) -> Path:
    from .engine.store import read_metrics
    from .report import started

    check_plot_path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VitlabError("--plot needs matplotlib: pip install 'vitlab[plot]'") from None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [f"{s.get('experiment', '')}/{s.get('name', '')}" for s in summaries]
    for s, name in zip(summaries, names):
        evals = [m for m in read_metrics(Path(s["run_dir"]) / "metrics.jsonl") if m.get("event") == "EpochEvaluated"]
        if not evals:
            continue
        repeated = names.count(name) > 1 and s.get("started_at")  # the same run trained again: say when
        label = f"{name} {started(s)}" if repeated else name
        epochs = [e["epoch"] for e in evals]
        line, = ax_loss.plot(epochs, [e["train_loss"] for e in evals], marker="o", ms=3, label=f"{label} train")
        ax_loss.plot(epochs, [e["eval_loss"] for e in evals], ls="--", color=line.get_color(), label=f"{label} eval")
        ax_acc.plot(epochs, [100 * e["accuracy"] for e in evals], marker="o", ms=3, label=label)
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Eval accuracy", xlabel="epoch", ylabel="top-1 (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
