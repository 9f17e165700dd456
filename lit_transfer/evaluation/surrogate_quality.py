"""Quality of the surrogates on tasks they never saw: each task (``holdout: task``) or each family, all its tasks
together (``holdout: family``: a new kind of dataset), is held out in turn; the surrogates meta-train on the rest.

Per held-out task:
- ranking of the final metric before any run (zero-shot): Kendall's tau-b and Spearman over all its configs, and
  tau-b over its *shared* configs (those recorded on training tasks), next to two baselines: each config's mean
  over the training tasks (shared configs only: the others were never recorded) and the k nearest recorded
  configs (``NearestConfigs``, k chosen on the training tasks);
- after 1 and 3 observed epochs of every config: tau-b against taking each config's last observed value;
- calibration: the share of not-yet-observed results inside the predicted 95% interval, before any observation
  and after every config's first 1 and 3 epochs, for all configs, for the shared ones, and for its *own* configs,
  which no training task ran (configs off the experience); and before any observation alone
  (``coverage_95_before``);
- the cost model's mean absolute percentage error, and a plain GP's zero-shot tau;
- what ``suggest`` would have picked: the recorded final result of its top-1 zero-shot config against that of
  the portfolio's first config (the shared config with the best mean over the training tasks).
- whether what the task shows re-ranks what it has not run: after the portfolio's first ``n`` configs have run
  ``k`` epochs each, for (n, k) in ``SETTINGS``, Kendall's tau-b and Spearman of the predicted finals of the
  task's configs *not* run (``tau_unobserved``, ``spearman_unobserved``: mappings "n,k" -> value), beside the
  zero-shot predictions' tau over the same configs (``tau_unobserved_zero_shot``) and, over the shared ones among
  them, the per-config mean's (``tau_unobserved_mean_config``, next to ``tau_unobserved_shared``); and the
  coverage of the 95% intervals of every epoch not yet seen after those observations (``coverage_95_after``).
- whether a config recorded once is predicted as if it were known (the experience surrogate only): in each of
  ``ONCE_SPLITS`` draws, each shared config is kept in the memory on one training task only, or on all of them
  (``ExperienceMean.thinned``); the mean absolute error and 95% coverage of the zero-shot finals of the configs so
  recorded once, beside those of the same configs with every run (``once_recorded_error``, ``..._known``,
  ``once_recorded_coverage_95``, ``..._known``); how often the top prediction over the shared configs is one
  recorded once (``once_recorded_top_share``) and its normalized regret among them, beside that of the
  portfolio's first config among those kept on every task (``once_recorded_top_regret``,
  ``once_recorded_portfolio_regret``): most configs of a real candidate list were recorded once.
Means over held-out tasks, and per family (``coverage_95_per_family``: before any observation and after the portfolio's
first 3 configs ran 3 epochs each); ``top1_at_least_portfolio_share``: on how many held-out tasks the top-1
suggestion did at least as well as the portfolio's. Whether one width of interval could serve every family before
any observation: per family, the multiples of the stated 95% intervals that would cover 85% and 99% of what
followed (``coverage_95_before_width_per_family``), and the multiple that puts the most families within 0.85-0.99
(``coverage_95_before_one_width``): where the families' ranges do not overlap, no recalibration of a width shared
by every new kind of task meets that goal; only telling the families apart before their first epoch would.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch

from lit_transfer.evaluation.surrogate_baselines import NearestConfigs, PlainGP, mean_config_scores
from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.summary import final_score
from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.data import MetaDataModule, prefix_channels, seconds_per_epoch
from lit_transfer.surrogate.metrics import spearman, tau
from lit_transfer.surrogate.perf import PerformanceSurrogate
from lit_transfer.surrogate.recipes import DEFAULT_RECIPES
from lit_transfer.surrogate.training import SurrogateRecipe, train_surrogate

KEYS = (
    "tau_zero_shot", "spearman_zero_shot", "tau_zero_shot_shared", "baseline_tau_mean_config", "baseline_tau_knn",
    "baseline_spearman_knn", "tau_after_1", "baseline_tau_last_1", "tau_after_3", "baseline_tau_last_3",
    "coverage_95", "coverage_95_shared", "coverage_95_own", "coverage_95_before", "cost_mape", "baseline_tau_plain_gp",
    "top1_final", "portfolio_top1_final",
)  # fmt: skip
FAMILY_KEYS = ("tau_zero_shot", "baseline_tau_knn", "coverage_95", "coverage_95_shared", "coverage_95_own")
ONCE_KEYS = (
    "once_recorded_error", "once_recorded_error_known", "once_recorded_coverage_95",
    "once_recorded_coverage_95_known", "once_recorded_top_share", "once_recorded_top_regret",
    "once_recorded_portfolio_regret",
)  # fmt: skip
ONCE_SPLITS = 20  # draws of which shared configs are recorded once, and on which task
OBSERVED_EPOCHS = (0, 1, 3)
SETTINGS = ((1, 1), (1, 3), (2, 2), (3, 3))  # (configs run: the portfolio's first ones, epochs each)
UNOBSERVED_KEYS = (
    "tau_unobserved", "spearman_unobserved", "tau_unobserved_zero_shot", "tau_unobserved_shared",
    "tau_unobserved_mean_config", "coverage_95_after",
)  # fmt: skip


def _curve(run: RunRecord) -> list[dict[str, float]]:
    return [p["metrics"] for p in run.curve if p["fidelity"] > 0]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.mean(known) if known else None


def evaluate_task(
    task: str, family: str, runs: list[RunRecord], features: Mapping[str, float], perf: PerformanceSurrogate,
    cost: CostSurrogate, plain_gp: PlainGP, knn: NearestConfigs, train_finals: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:  # fmt: skip
    """The quality figures on one held-out task (``runs``: its finished runs; ``train_finals``: final results
    on the training tasks, per task and config key)."""
    encoding, epochs = perf.encoding, perf.encoding.max_epochs
    configs = [r.config for r in runs]
    actual = np.array([final_score(r, encoding.metric) for r in runs])
    recorded = {key for scores in train_finals.values() for key in scores}
    shared = np.array([r.config_key in recorded for r in runs])
    result: dict[str, Any] = {"task": task, "family": family, "configs": len(runs),
                              "shared_configs": int(shared.sum())}  # fmt: skip
    inside: dict[str, list[np.ndarray]] = {"all": [], "shared": [], "own": [], "before": []}
    multiples: list[np.ndarray] = []  # before any observation: |error| over the stated 95% half-width
    for k in OBSERVED_EPOCHS:
        curves = [_curve(r)[:k] for r in runs]
        observed = [(r.config, c) for r, c in zip(runs, curves, strict=True)] if k else []
        mean, _ = perf.predict(configs, features, curves, epochs, observed=observed)
        if k == 0:
            result["top1_final"] = float(actual[int(np.argmax(mean))])
            result["tau_zero_shot"] = tau(mean, actual)
            result["spearman_zero_shot"] = spearman(mean, actual)
            result["tau_zero_shot_shared"] = tau(mean[shared], actual[shared]) if shared.sum() > 1 else None
        else:
            result[f"tau_after_{k}"] = tau(mean, actual)
            result[f"baseline_tau_last_{k}"] = tau([c[-1][encoding.metric] if c else 0.0 for c in curves], actual)
        for t in range(k + 1, epochs + 1):  # calibration: every epoch not yet observed, each config
            mean, std = perf.predict(configs, features, curves, t, observed=observed)
            truth = np.array([prefix_channels(_curve(r)[t - 1], encoding.metric, 1.0)[0] for r in runs])
            hit = np.abs(truth - mean) <= 1.96 * std
            inside["all"].append(hit)
            inside["shared"].append(hit[shared])
            inside["own"].append(hit[~shared])
            if k == 0:
                inside["before"].append(hit)
                multiples.append(np.abs(truth - mean) / np.maximum(1.96 * std, 1e-12))
    for name, hits in inside.items():
        joined = np.concatenate(hits)
        result["coverage_95" if name == "all" else f"coverage_95_{name}"] = (
            float(joined.mean()) if len(joined) else None
        )
    result["interval_multiples_before"] = np.concatenate(multiples)  # pooled per family, then dropped
    seconds = np.array([seconds_per_epoch(r.curve) for r in runs])
    result["cost_mape"] = float(np.mean(np.abs(cost.predict_seconds(configs, features) - seconds) / seconds))
    if shared.sum() > 1:
        keys = [r.config_key for r, s in zip(runs, shared, strict=True) if s]
        portfolio = mean_config_scores(train_finals, task, keys)
        result["baseline_tau_mean_config"] = tau(portfolio, actual[shared])
        result["portfolio_top1_final"] = float(actual[shared][int(np.argmax(portfolio))])
    else:
        result["baseline_tau_mean_config"] = result["portfolio_top1_final"] = None
    if shared.sum() > 1:
        result.update(_unobserved(runs, features, perf, actual, shared, portfolio, keys))
        if hasattr(perf, "experience"):
            result.update(_once_recorded([r.config for r in runs if r.config_key in keys], features, perf,
                                         actual[shared], np.array(portfolio)))  # fmt: skip
    nearest = knn.predict([encoding.space.encode(c).tolist() for c in configs])
    result["baseline_tau_knn"], result["baseline_spearman_knn"] = tau(nearest, actual), spearman(nearest, actual)
    gp_mean, _ = plain_gp.predict(encoding.inputs(configs, features, None, epochs))
    result["baseline_tau_plain_gp"] = tau(gp_mean.numpy(), actual)
    result["knn_k"] = knn.k
    return result


def _unobserved(
    runs: list[RunRecord], features: Mapping[str, float], perf: PerformanceSurrogate, actual: np.ndarray,
    shared: np.ndarray, portfolio: list[float], shared_keys: list[str],
) -> dict[str, dict[str, float | None]]:  # fmt: skip
    """Per (n, k) of ``SETTINGS``: the task has run the portfolio's first ``n`` configs (the shared ones by their
    mean over the training tasks) for ``k`` epochs; how the predicted finals rank the configs it has not run."""
    encoding, epochs = perf.encoding, perf.encoding.max_epochs
    configs = [r.config for r in runs]
    index = {r.config_key: i for i, r in enumerate(runs)}
    order = [index[key] for _, key in sorted(zip(portfolio, shared_keys, strict=True), key=lambda p: (-p[0], p[1]))]
    mean_of = dict(zip(shared_keys, portfolio, strict=True))
    zero_shot, _ = perf.predict(configs, features, [[] for _ in runs], epochs)
    out: dict[str, dict[str, float | None]] = {key: {} for key in UNOBSERVED_KEYS}
    for n, k in SETTINGS:
        name, run = f"{n},{k}", order[:n]
        curves = [_curve(r)[:k] if i in run else [] for i, r in enumerate(runs)]
        observed = [(runs[i].config, curves[i]) for i in run]
        rest = np.array([i not in run for i in range(len(runs))])
        predicted, _ = perf.predict(configs, features, curves, epochs, observed=observed)
        out["tau_unobserved"][name] = tau(predicted[rest], actual[rest])
        out["spearman_unobserved"][name] = spearman(predicted[rest], actual[rest])
        out["tau_unobserved_zero_shot"][name] = tau(zero_shot[rest], actual[rest])
        rest_shared = rest & shared
        means = [mean_of[r.config_key] for r, keep in zip(runs, rest_shared, strict=True) if keep]
        out["tau_unobserved_shared"][name] = tau(predicted[rest_shared], actual[rest_shared])
        out["tau_unobserved_mean_config"][name] = tau(means, actual[rest_shared])
        hits = []
        for t in range(1, epochs + 1):  # every epoch not yet seen: all of a config not run, the rest of one run
            unseen = [i for i, c in enumerate(curves) if len(c) < t]
            mean, std = perf.predict(
                [configs[i] for i in unseen], features, [curves[i] for i in unseen], t, observed=observed
            )
            truth = np.array([prefix_channels(_curve(runs[i])[t - 1], encoding.metric, 1.0)[0] for i in unseen])
            hits.append(np.abs(truth - mean) <= 1.96 * std)
        out["coverage_95_after"][name] = float(np.concatenate(hits).mean())
    return out


def _once_recorded(
    configs: list[Mapping[str, Any]], features: Mapping[str, float], perf: PerformanceSurrogate, actual: np.ndarray,
    portfolio: np.ndarray,
) -> dict[str, float | None]:  # fmt: skip
    """The ``ONCE_KEYS`` of one held-out task: its shared ``configs`` (their recorded finals ``actual``, their means
    over the training tasks ``portfolio``) predicted with each kept on one training task, or on all of them."""
    memory = perf.experience
    encoded = perf.encoding.configs(configs).float().to(memory.configs.device)
    rows = torch.cdist(encoded, memory.configs).argmin(1)
    known_mean, known_std = perf.predict(configs, features)
    span = max(float(actual.max() - actual.min()), 1e-12)
    found: dict[str, list] = {key: [] for key in ONCE_KEYS}
    for split in range(ONCE_SPLITS):
        with memory.thinned((1, 0), seed=split) as kept:
            mean, std = perf.predict(configs, features)
        once = (kept[rows] == 1).cpu().numpy()
        if once.all() or not once.any():
            continue
        top, first = int(np.argmax(mean)), int(np.argmax(np.where(once, -np.inf, portfolio)))
        for key, value in (
            ("once_recorded_error", np.abs(mean - actual)[once]),
            ("once_recorded_error_known", np.abs(known_mean - actual)[once]),
            ("once_recorded_coverage_95", (np.abs(mean - actual) <= 1.96 * std)[once]),
            ("once_recorded_coverage_95_known", (np.abs(known_mean - actual) <= 1.96 * known_std)[once]),
            ("once_recorded_top_share", [once[top]]),
            ("once_recorded_top_regret", [(actual.max() - actual[top]) / span]),
            ("once_recorded_portfolio_regret", [(actual.max() - actual[first]) / span]),
        ):
            found[key].extend(np.asarray(value, dtype=float).tolist())
    return {key: float(np.mean(v)) if v else None for key, v in found.items()}


def _mean_by_setting(per_task: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    return {f"{n},{k}": _mean([r[key][f"{n},{k}"] for r in per_task if key in r]) for n, k in SETTINGS}


def leave_out(
    path: str,
    perf_recipe: str | SurrogateRecipe = DEFAULT_RECIPES["performance"],
    cost_recipe: str | SurrogateRecipe = DEFAULT_RECIPES["cost"],
    tasks: list[str] | None = None,
    holdout: Literal["task", "family"] = "task",
    seed: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Hold out each task, or each family (of the ``tasks`` given, default all), meta-train on the rest with the
    recipes (``train_surrogate``), and score every held-out task; means over them, overall and per family."""
    if holdout not in ("task", "family"):
        raise ValueError(f"holdout must be 'task' or 'family', got {holdout!r}")
    with MetaDataset(path) as store:
        all_runs = [r for r in store.runs() if r.status == "ok"]
        task_features, families = store.tasks(), store.families()
    unknown = [t for t in tasks or [] if t not in task_features]
    if unknown:
        raise ValueError(f"{path}: no task(s) {', '.join(unknown)}")
    perf_recipe, cost_recipe = (r if isinstance(r, SurrogateRecipe) else SurrogateRecipe.from_yaml(r)
                                for r in (perf_recipe, cost_recipe))  # fmt: skip
    baseline_seed = perf_recipe.seed if seed is None else seed
    chosen = tasks or sorted(task_features)
    unit = (lambda t: t) if holdout == "task" else families.__getitem__
    folds: dict[str, list[str]] = {}
    for task in chosen:
        folds.setdefault(unit(task), []).append(task)
    per_task = []
    for name, evaluated in folds.items():
        held_out = [t for t in task_features if unit(t) == name]
        training = [t for t in task_features if t not in held_out]
        perf = train_surrogate(perf_recipe, path, holdout_tasks=held_out, seed=seed)
        cost = train_surrogate(cost_recipe, path, holdout_tasks=held_out, seed=seed)
        data = MetaDataModule(path, holdout_tasks=held_out, seed=baseline_seed)
        data.setup()
        plain_gp = PlainGP(data.dataset(data.train_tasks), perf.normalized_task, seed=baseline_seed)
        finals: dict[str, dict[str, tuple[list[float], float]]] = {}
        for r in all_runs:
            if r.task in training:
                finals.setdefault(r.task, {})[r.config_key] = (perf.encoding.space.encode(r.config).tolist(),
                                                               final_score(r))  # fmt: skip
        knn = NearestConfigs(finals)
        train_finals = {t: {k: s for k, (_, s) in scores.items()} for t, scores in finals.items()}
        for task in evaluated:
            runs = [r for r in all_runs if r.task == task]
            per_task.append(
                evaluate_task(task, families[task], runs, task_features[task], perf, cost, plain_gp, knn, train_finals)
            )
            progress(
                " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in per_task[-1].items()
                    if not isinstance(v, dict | np.ndarray)
                )
            )
    multiples: dict[str, list[np.ndarray]] = {}
    for r in per_task:
        multiples.setdefault(r["family"], []).append(r.pop("interval_multiples_before"))
    summary: dict[str, Any] = {"holdout": holdout, **{k: _mean([r[k] for r in per_task]) for k in KEYS}}
    compared = [r for r in per_task if r["portfolio_top1_final"] is not None]
    summary["top1_at_least_portfolio_share"] = (
        sum(r["top1_final"] >= r["portfolio_top1_final"] for r in compared) / len(compared) if compared else None
    )
    for key in UNOBSERVED_KEYS:
        summary[key] = _mean_by_setting(per_task, key)
    for key in ONCE_KEYS:
        summary[key] = _mean([r.get(key) for r in per_task])
    summary["coverage_95_per_family"] = {
        family: {
            "before": _mean([r["coverage_95_before"] for r in per_task if r["family"] == family]),
            "after": _mean_by_setting([r for r in per_task if r["family"] == family], "coverage_95_after")["3,3"],
        }
        for family in sorted({r["family"] for r in per_task})
    }
    summary.update(one_width({family: np.concatenate(m) for family, m in multiples.items()}))
    summary["per_family"] = {
        family: {k: _mean([r[k] for r in per_task if r["family"] == family]) for k in FAMILY_KEYS}
        for family in sorted({r["family"] for r in per_task})
    }
    summary["per_task"] = per_task
    return summary


def one_width(multiples: Mapping[str, np.ndarray], low: float = 0.85, high: float = 0.99) -> dict[str, Any]:
    """Per family, the multiples of the stated intervals that cover ``low`` and ``high`` of its results
    (``multiples``: |error| over the stated half-width, per family), and the one multiple, tried at every value
    observed, that puts the most families within ``low``-``high``."""
    width = {
        family: {f"for_{low:g}": float(np.quantile(m, low)), f"for_{high:g}": float(np.quantile(m, high))}
        for family, m in sorted(multiples.items())
    }

    def inside(multiple: float) -> int:
        return sum(low <= float(np.mean(m <= multiple)) <= high for m in multiples.values())

    candidates = sorted({1.0, *np.concatenate(list(multiples.values())).tolist()})
    best = max(candidates, key=lambda q: (inside(q), -abs(np.log(max(q, 1e-12)))))  # ties: nearest the stated
    return {
        "coverage_95_before_width_per_family": width,
        "coverage_95_before_one_width": {
            "multiple": best,
            "families_inside": inside(best),
            "families_inside_as_stated": inside(1.0),
            "families": len(multiples),
        },
    }


def _cell(value: float | None, bold: bool = False) -> str:
    text = "-" if value is None else f"{value:.3f}"
    return f"**{text}**" if bold else text


def format_table(summary: Mapping[str, Any]) -> str:
    """A Markdown table: one row per held-out task and the mean."""
    head = ["task", *KEYS]
    rows = [[r["task"], *(_cell(r[k]) for k in KEYS)] for r in summary["per_task"]]
    rows.append(["**mean**", *(_cell(summary[k], bold=True) for k in KEYS)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
