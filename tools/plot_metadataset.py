"""Plot the learning curves of a meta-dataset: one panel per task, every run's val/acc over epochs, with the
default pipeline and the best pipeline highlighted.

    python tools/plot_metadataset.py --metadataset assets/metadata/micro.sqlite --out assets/metadata/curves.png
"""

from __future__ import annotations

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.space import DEFAULT_SPACE, SearchSpace


def plot(path: str, out: str, metric: str = "val/acc", space: str = str(DEFAULT_SPACE)) -> None:
    default_key = SearchSpace.from_yaml(space).default().key()
    with MetaDataset(path) as store:
        tasks = list(store.tasks())
        runs = list(store.runs())
    cols = 4
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), sharey=True, squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        task_runs = [r for r in runs if r.task == task]
        best = max(task_runs, key=final_score, default=None)
        for run in task_runs:
            points = [(p["fidelity"], p["metrics"].get(metric)) for p in run.curve]
            points = [(f, v) for f, v in points if v is not None]
            if not points:
                continue
            x, y = zip(*points, strict=True)
            if run is best:
                ax.plot(x, y, color="tab:green", lw=2, label="best", zorder=3)
            elif run.config_key == default_key:
                ax.plot(x, y, color="tab:red", lw=2, label="default", zorder=2)
            else:
                ax.plot(x, y, color="0.6", lw=0.6, alpha=0.5)
        failed = sum(r.status != "ok" for r in task_runs)
        ax.set_title(f"{task} ({len(task_runs)} runs, {failed} failed)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadataset", default="assets/metadata/micro.sqlite")
    parser.add_argument("--out", default="assets/metadata/curves.png")
    parser.add_argument("--metric", default="val/acc")
    args = parser.parse_args()
    plot(args.metadataset, args.out, args.metric)
