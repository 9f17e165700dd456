"""Leave-one-task-out quality of the surrogates: each task in turn is new; the surrogates meta-train on the others.

Per held-out task: Kendall's tau between predicted and actual final metric over its configs before any of them ran
(zero-shot) and after 1 and 3 epochs of each had been observed; the share of its observations inside the predicted
95% interval; the cost model's mean absolute percentage error; and the zero-shot tau of two baselines.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.summary import final_score
from lit_transfer.surrogate.baselines import PlainGP, mean_config_scores
from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.data import MetaDataModule, prefix_channels, seconds_per_epoch
from lit_transfer.surrogate.perf import PerformanceSurrogate
from lit_transfer.surrogate.training import DEFAULT_RECIPES, SurrogateRecipe, train_surrogate

KEYS = (
    "tau_zero_shot", "tau_after_1", "tau_after_3", "coverage_95", "cost_mape",
    "baseline_tau_mean_config", "baseline_tau_plain_gp",
)  # fmt: skip
OBSERVED_EPOCHS = (0, 1, 3)


def tau(predicted: Any, actual: Any) -> float:
    """Kendall's tau-b; 0 when either side is constant (no ranking to compare)."""
    value = kendalltau(np.asarray(predicted), np.asarray(actual)).statistic
    return 0.0 if value is None or math.isnan(value) else float(value)


def _curve(run: RunRecord) -> list[dict[str, float]]:
    return [p["metrics"] for p in run.curve if p["fidelity"] > 0]


def evaluate_task(
    task: str, runs: list[RunRecord], features: Mapping[str, float], perf: PerformanceSurrogate,
    cost: CostSurrogate, plain_gp: PlainGP, finals: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:  # fmt: skip
    """The quality figures on one held-out task (``runs``: its finished runs)."""
    encoding, epochs = perf.encoding, perf.encoding.max_epochs
    configs = [r.config for r in runs]
    actual = [final_score(r, encoding.metric) for r in runs]
    result: dict[str, Any] = {"task": task}
    inside = total = 0
    for k in OBSERVED_EPOCHS:
        curves = [_curve(r)[:k] for r in runs]
        observed = [(r.config, c) for r, c in zip(runs, curves, strict=True)] if k else []
        mean, _ = perf.predict(configs, features, curves, epochs, observed=observed)
        result["tau_zero_shot" if k == 0 else f"tau_after_{k}"] = tau(mean, actual)
        # calibration: every epoch not yet observed, each config
        for t in range(k + 1, epochs + 1):
            mean, std = perf.predict(configs, features, curves, t, observed=observed)
            truth = np.array([prefix_channels(_curve(r)[t - 1], encoding.metric, 1.0)[0] for r in runs])
            inside += int((np.abs(truth - mean) <= 1.96 * std).sum())
            total += len(runs)
    result["coverage_95"] = inside / total
    seconds = np.array([seconds_per_epoch(r.curve) for r in runs])
    result["cost_mape"] = float(np.mean(np.abs(cost.predict_seconds(configs, features) - seconds) / seconds))
    keys = [r.config_key for r in runs]
    result["baseline_tau_mean_config"] = tau(mean_config_scores(finals, task, keys), actual)
    gp_mean, _ = plain_gp.predict(encoding.inputs(configs, features, None, epochs))
    result["baseline_tau_plain_gp"] = tau(gp_mean.numpy(), actual)
    return result


def leave_one_task_out(
    path: str,
    perf_recipe: str | SurrogateRecipe = DEFAULT_RECIPES["performance"],
    cost_recipe: str | SurrogateRecipe = DEFAULT_RECIPES["cost"],
    tasks: list[str] | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Hold out each task (or those in ``tasks``), meta-train on the rest with the recipes (``train_surrogate``),
    and score; means over held-out tasks."""
    with MetaDataset(path) as store:
        all_runs = [r for r in store.runs() if r.status == "ok"]
        task_features = store.tasks()
    unknown = [t for t in tasks or [] if t not in task_features]
    if unknown:
        raise ValueError(f"{path}: no task(s) {', '.join(unknown)}")
    finals: dict[str, dict[str, float]] = {}
    for r in all_runs:
        finals.setdefault(r.task, {})[r.config_key] = final_score(r)
    perf_recipe, cost_recipe = (r if isinstance(r, SurrogateRecipe) else SurrogateRecipe.from_yaml(r)
                                for r in (perf_recipe, cost_recipe))  # fmt: skip
    baseline_seed = perf_recipe.seed if seed is None else seed
    per_task = []
    for task in tasks or sorted(task_features):
        perf = train_surrogate(perf_recipe, path, holdout_tasks=[task], seed=seed)
        cost = train_surrogate(cost_recipe, path, holdout_tasks=[task], seed=seed)
        data = MetaDataModule(path, holdout_tasks=[task], seed=baseline_seed)
        data.setup()
        plain_gp = PlainGP(data.dataset(data.train_tasks), perf.normalized_task, seed=baseline_seed)
        runs = [r for r in all_runs if r.task == task]
        per_task.append(evaluate_task(task, runs, task_features[task], perf, cost, plain_gp, finals))
        progress(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else str(v) for k, v in per_task[-1].items()))
    summary: dict[str, Any] = {k: statistics.mean(r[k] for r in per_task) for k in KEYS}
    summary["per_task"] = per_task
    return summary


def format_table(summary: Mapping[str, Any]) -> str:
    """A Markdown table: one row per held-out task and the mean."""
    head = ["task", *KEYS]
    rows = [[r["task"], *(f"{r[k]:.3f}" for k in KEYS)] for r in summary["per_task"]]
    rows.append(["**mean**", *(f"**{summary[k]:.3f}**" for k in KEYS)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
