"""`tune --plot FILE.png`: per-layer latency before and after tuning, coloured by task kind."""

from __future__ import annotations

from pathlib import Path

from tvm_mobilenet.tuning.tasks import TASK_KINDS

#: One colour per task kind (matplotlib's default cycle), shared by bars and legend.
KIND_COLOURS = dict(zip(TASK_KINDS, ("tab:blue", "tab:orange", "tab:green", "tab:purple",
                                     "tab:gray")))


def plot_task_latencies(entries: list[dict], title: str, path: Path) -> None:
    """Bars of time per inference (µs × occurrences) for each task, untuned (pale) and tuned.

    `entries` are the rows `tune.task_report` returns (kind, shape, weight, untuned_us,
    tuned_us or None).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    figure, axes = plt.subplots(figsize=(max(8.0, 0.35 * len(entries)), 5))
    for index, entry in enumerate(entries):
        colour = KIND_COLOURS[entry["kind"]]
        axes.bar(index - 0.2, entry["untuned_us"] * entry["weight"], 0.4, color=colour,
                 alpha=0.35)
        if entry["tuned_us"] is not None:
            axes.bar(index + 0.2, entry["tuned_us"] * entry["weight"], 0.4, color=colour)
    axes.set_yscale("log")
    axes.set_ylabel("µs per inference (all occurrences)")
    axes.set_xticks(range(len(entries)), [entry["shape"] for entry in entries], rotation=90,
                    fontsize=7)
    kinds = sorted({entry["kind"] for entry in entries}, key=TASK_KINDS.index)
    axes.legend(handles=[Patch(color=KIND_COLOURS[kind], label=kind) for kind in kinds]
                + [Patch(color="black", alpha=0.35, label="untuned (pale)"),
                   Patch(color="black", label="tuned")], fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
