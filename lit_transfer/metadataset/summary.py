"""What a meta-dataset holds and whether it is useful for transfer: per-task spread of results, the default
pipeline's standing, and how much tasks agree on which pipelines are good."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

from scipy.stats import spearmanr

from lit_transfer.metadataset.store import MetaDataset, RunRecord


def final_score(run: RunRecord, metric: str = "val/acc") -> float:
    """The metric at the run's last fidelity; a run that failed before reaching any counts as 0."""
    value = run.final(metric) if run.status == "ok" else None
    return 0.0 if value is None or math.isnan(value) else value


def summarize(store: MetaDataset, default_key: str | None = None, metric: str = "val/acc") -> dict[str, Any]:
    """The numbers of ``metadata summary``; ``default_key`` is the default pipeline's ``PipelineConfig.key()``."""
    scores: dict[str, dict[str, float]] = {}
    per_task = []
    runs = list(store.runs())
    for task in store.tasks():
        task_runs = [r for r in runs if r.task == task]
        by_config: dict[str, list[float]] = {}
        for r in task_runs:
            by_config.setdefault(r.config_key, []).append(final_score(r, metric))
        scores[task] = {k: statistics.mean(v) for k, v in by_config.items()}
        values = list(scores[task].values())
        per_task.append(
            {
                "task": task,
                "runs": len(task_runs),
                "failures": sum(r.status != "ok" for r in task_runs),
                "best": max(values) if values else None,
                "median": statistics.median(values) if values else None,
                "default": scores[task].get(default_key) if default_key else None,
            }
        )
    correlations = []
    for a, b in itertools.combinations(scores, 2):
        shared = sorted(set(scores[a]) & set(scores[b]))
        if len(shared) >= 3:
            rho = spearmanr([scores[a][k] for k in shared], [scores[b][k] for k in shared]).statistic
            if not math.isnan(rho):
                correlations.append(float(rho))
    return {
        "tasks": len(scores),
        "runs": len(runs),
        "failures": sum(r.status != "ok" for r in runs),
        "mean_rank_correlation": statistics.mean(correlations) if correlations else None,
        "per_task": per_task,
    }


def format_table(summary: dict[str, Any]) -> str:
    """A Markdown table (the README's)."""

    def fmt(x):
        return "–" if x is None else f"{x:.3f}"

    lines = ["| task | runs | failures | best | median | default |", "|---|---|---|---|---|---|"]
    for t in summary["per_task"]:
        cells = [t["task"], str(t["runs"]), str(t["failures"]), fmt(t["best"]), fmt(t["median"]), fmt(t["default"])]
        lines.append("| " + " | ".join(cells) + " |")
    rho = summary["mean_rank_correlation"]
    lines.append("")
    lines.append(
        f"{summary['tasks']} tasks, {summary['runs']} runs, {summary['failures']} failures; mean pairwise Spearman "
        f"correlation of config rankings between tasks: {fmt(rho)}"
    )
    return "\n".join(lines)
