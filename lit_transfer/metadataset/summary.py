"""What a meta-dataset holds and whether it is useful for transfer: per-task spread of results, the default
pipeline's standing, how much tasks agree on which pipelines are good, and whether the task decides the best one.

The *shared core* is the set of configs every task ran; the rest of a task's configs are its own. Rankings are
compared on the shared core (the only configs every task has). A task's best shared config breaks ties on final
``val/acc`` by lower final ``val/loss``, as checkpoints do.
"""

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


def _final_loss(run: RunRecord) -> float:
    value = run.final("val/loss") if run.status == "ok" else None
    return math.inf if value is None or math.isnan(value) else value


def summarize(store: MetaDataset, default_key: str | None = None, metric: str = "val/acc") -> dict[str, Any]:
    """The numbers of ``metadata summary``; ``default_key`` is the default pipeline's ``PipelineConfig.key()``."""
    runs = list(store.runs())
    features, families = store.tasks(), store.families()
    scores: dict[str, dict[str, float]] = {}
    losses: dict[str, dict[str, float]] = {}
    per_task = []
    for task in features:
        task_runs = [r for r in runs if r.task == task]
        by_config: dict[str, list[float]] = {}
        loss_by_config: dict[str, list[float]] = {}
        for r in task_runs:
            by_config.setdefault(r.config_key, []).append(final_score(r, metric))
            loss_by_config.setdefault(r.config_key, []).append(_final_loss(r))
        scores[task] = {k: statistics.mean(v) for k, v in by_config.items()}
        losses[task] = {k: statistics.mean(v) for k, v in loss_by_config.items()}
        values = list(scores[task].values())
        size = features[task].get("log_train_size")
        validation = features[task].get("log_validation_size")
        per_task.append(
            {
                "task": task,
                "family": families[task],
                "train_examples": None if size is None else round(math.exp(size)),
                "val_examples": None if validation is None else round(math.exp(validation)),
                "runs": len(task_runs),
                "failures": sum(r.status != "ok" for r in task_runs),
                "best": max(values) if values else None,
                "median": statistics.median(values) if values else None,
                "default": scores[task].get(default_key) if default_key else None,
            }
        )
    with_runs = [t for t in scores if scores[t]]
    shared = sorted(set.intersection(*(set(scores[t]) for t in with_runs))) if with_runs else []
    correlations = []
    for a, b in itertools.combinations(with_runs, 2):
        if len(shared) >= 3:
            rho = spearmanr([scores[a][k] for k in shared], [scores[b][k] for k in shared]).statistic
            if not math.isnan(rho):
                correlations.append(float(rho))
    best_shared = {t: _best(shared, scores[t], losses[t]) for t in with_runs} if shared else {}
    portfolio_hits = 0
    for task in with_runs if shared and len(with_runs) > 1 else []:
        others = [t for t in with_runs if t != task]
        first = max(shared, key=lambda k: (statistics.mean(scores[t][k] for t in others), k))
        portfolio_hits += first == best_shared[task]
    validations = [t["val_examples"] for t in per_task if t["val_examples"] is not None]
    return {
        "tasks": len(scores),
        "runs": len(runs),
        "cpu_hours": sum(r.seconds for r in runs) / 3600,
        "seconds_per_run": statistics.mean(r.seconds for r in runs) if runs else None,
        "failures": sum(r.status != "ok" for r in runs),
        "mean_rank_correlation": statistics.mean(correlations) if correlations else None,
        "families": len({families[t] for t in scores}),
        "val_examples_min": min(validations) if validations else None,
        "shared_configs": len(shared),
        "own_configs_min": min((len(scores[t]) - len(shared) for t in with_runs), default=0),
        "portfolio_top1_share": portfolio_hits / len(with_runs) if shared and len(with_runs) > 1 else None,
        "distinct_best": len(set(best_shared.values())),
        "default_best_share": (
            sum(best_shared[t] == default_key for t in best_shared) / len(best_shared) if best_shared else None
        ),
        "per_task": per_task,
    }


def _best(shared: list[str], scores: dict[str, float], losses: dict[str, float]) -> str:
    """The shared config with the best final metric; ties go to the lower final validation loss."""
    return max(shared, key=lambda k: (scores[k], -losses[k], k))


def checks(summary: dict[str, Any]) -> dict[str, bool]:
    """The usefulness checks of an experience (issue of experience v2): each name -> passed."""
    per_task = summary["per_task"]
    rho = summary["mean_rank_correlation"]
    return {
        "best_minus_median_ge_0.10": all(t["best"] - t["median"] >= 0.10 for t in per_task if t["best"] is not None),
        "default_best_share_lt_0.25": summary["default_best_share"] is not None
        and summary["default_best_share"] < 0.25,
        "rank_correlation_in_0.2_0.7": rho is not None and 0.2 <= rho <= 0.7,
        "portfolio_top1_share_le_0.5": summary["portfolio_top1_share"] is not None
        and summary["portfolio_top1_share"] <= 0.5,
        "distinct_best_ge_6": summary["distinct_best"] >= 6,
    }


def format_table(summary: dict[str, Any]) -> str:
    """A Markdown table (the README's)."""

    def fmt(x):
        return "–" if x is None else f"{x:.3f}"

    lines = [
        "| task | family | train | validation | runs | failures | best | median | default |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in summary["per_task"]:
        cells = [
            t["task"], t["family"], str(t["train_examples"]), str(t["val_examples"]), str(t["runs"]),
            str(t["failures"]), fmt(t["best"]), fmt(t["median"]), fmt(t["default"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{summary['tasks']} tasks of {summary['families']} families, {summary['runs']} runs, {summary['failures']} "
        f"failures; {summary['shared_configs']} shared configs and at least {summary['own_configs_min']} of each "
        f"task's own; mean pairwise Spearman correlation of the shared configs' ranking between tasks: "
        f"{fmt(summary['mean_rank_correlation'])}; the portfolio's first config is the task's best shared config on "
        f"{fmt(summary['portfolio_top1_share'])} of tasks; {summary['distinct_best']} distinct best shared configs; "
        f"the default is best on {fmt(summary['default_best_share'])} of tasks"
    )
    return "\n".join(lines)
