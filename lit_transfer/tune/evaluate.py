"""Leave-one-task-out comparison of tuning methods on a meta-dataset, by replaying its recorded runs.

For each task in turn: the surrogates meta-train on the other tasks (cached per fold), then every method tunes
the held-out task under the same epoch budget, for several seeds. At each fraction of the budget the incumbent
(best validation metric seen) gives a normalized regret, (best recorded - incumbent) / (best recorded - worst
final), and a rank among the methods (ties share the mean rank). Every (task, method, seed) run keeps a tuning
state file, so an interrupted evaluation resumes where it stopped.

With ``workers`` beyond 1, every method also tunes with N trial steps in flight at once, on a simulated clock that
advances by each step's recorded seconds (``SimulatedExecutor``); ``parallel.json`` then says, per method and N,
how soon N workers reach the normalized regret one worker has at the end of its budget (``time_to_regret``).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lit_transfer.executors import SimulatedExecutor
from lit_transfer.io import FolderLock, inside, safe_name, write_atomic
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.resources import resolve
from lit_transfer.space import DEFAULT_SPACE, SearchSpace
from lit_transfer.surrogate import CostSurrogate, PerformanceSurrogate
from lit_transfer.surrogate.pretrained import load_surrogate, save_weights
from lit_transfer.surrogate.training import DEFAULT_RECIPES, train_surrogate
from lit_transfer.tune.loop import Budget, Step, incumbent_at, run_tuning
from lit_transfer.tune.methods import METHODS, build_method
from lit_transfer.tune.replay import ReplayEvaluator

FRACTIONS = (0.1, 0.25, 0.5, 1.0)


@dataclass
class EvaluationPlan:
    """What to compare; mirrors ``configs/evaluate/*.yaml``.

    Args:
        metadataset: the meta-dataset whose tasks are held out in turn.
        methods: tuning methods compared (of ``METHODS``).
        seeds: seeds per (task, method).
        budget_epochs: tuning budget per task, in epochs (trial steps).
        tasks: tasks held out (default: all).
        acquisition: acquisition of the surrogate methods (``ei``, ``cost_ei``, ``ucb``).
        horizon: the epoch the surrogate methods score a candidate at (``final`` or ``next``).
        quicktune_refit_steps: gradient steps of QuickTune's refit after each observation.
        dyhpo_refit_steps: gradient steps of DyHPO's from-scratch fit after each observation.
        perf_config: YAML the performance surrogate of each fold is meta-trained with.
        cost_config: YAML of the cost surrogate.
        space: the search space.
        workers: trial steps in flight at once, each replayed on a simulated clock (1 must be among them: the
            main comparison is sequential tuning).
        parallel_budget: budget of the runs with more than one worker, as a multiple of ``budget_epochs``: they
            are timed until they reach what one worker reached, which can take more epochs than one worker spent.
        out: folder for surrogates, tuning states, results and plots.
    """

    metadataset: str = SHIPPED_METADATASET
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget_epochs: int = 64
    tasks: list[str] | None = None
    acquisition: str = "ei"
    horizon: str = "final"
    quicktune_refit_steps: int = 20
    dyhpo_refit_steps: int = 30
    perf_config: str = DEFAULT_RECIPES["performance"]
    cost_config: str = DEFAULT_RECIPES["cost"]
    space: str = str(DEFAULT_SPACE)
    workers: list[int] = field(default_factory=lambda: [1])
    parallel_budget: float = 2.0
    out: str = "runs/evaluate/loto"

    def __post_init__(self) -> None:
        self.metadataset, self.space = resolve(self.metadataset), resolve(self.space)
        self.perf_config, self.cost_config = resolve(self.perf_config), resolve(self.cost_config)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        Budget(self.budget_epochs)  # validates > 0
        if 1 not in self.workers or min(self.workers) < 1:
            raise ValueError(f"workers must be >= 1 and include 1 (sequential tuning), got {self.workers}")


def fold_surrogates(plan: EvaluationPlan, task: str) -> tuple[PerformanceSurrogate, CostSurrogate]:
    """The surrogates meta-trained without ``task`` (trained once, then loaded from the fold's cache)."""
    folder = Path(plan.out) / "surrogates"
    folder.mkdir(parents=True, exist_ok=True)
    modules = []
    for cls, target, recipe in (
        (PerformanceSurrogate, "performance", plan.perf_config),
        (CostSurrogate, "cost", plan.cost_config),
    ):
        path = inside(folder, f"{safe_name(task, 'task name')}.{target}.ckpt")
        if path.exists():
            modules.append(load_surrogate(cls, path))
            continue
        module = train_surrogate(recipe, plan.metadataset, holdout_tasks=[task], space=plan.space)
        save_weights(module, path)
        modules.append(module)
    return modules[0], modules[1]


def evaluate(plan: EvaluationPlan, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the comparison; writes results and returns ``summary.json``'s content."""
    out = Path(plan.out)
    with FolderLock(out, "evaluate"):
        return _evaluate(plan, out, progress)


def _evaluate(plan: EvaluationPlan, out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    with MetaDataset(plan.metadataset) as store:
        task_features = store.tasks()
        finals = {t: [final_score(r) for r in store.runs(t)] for t in task_features}
    tasks = plan.tasks or sorted(task_features)
    grid = np.linspace(0, 1, 41)[1:]  # budget fractions for the plots
    rows = []
    histories: dict[tuple[str, str, int, int], list[Step]] = {}
    scales: dict[str, tuple[float, float, float]] = {}  # task -> (zero-shot start, best, worst final)
    for task in tasks:
        evaluator = ReplayEvaluator.from_store(plan.metadataset, task)
        best, worst = evaluator.best_value(), min(finals[task])
        start = task_features[task].get("zero_shot_acc", 0.0)
        cache: list[tuple[PerformanceSurrogate, CostSurrogate]] = []

        def surrogates(task: str = task, cache: list = cache) -> tuple[PerformanceSurrogate, CostSurrogate]:
            if not cache:
                cache.append(fold_surrogates(plan, task))
            return cache[0]

        for method in plan.methods:
            for seed in plan.seeds:
                for workers in sorted(set(plan.workers)):
                    name = f"{method}-{seed}.json" if workers == 1 else f"{method}-{seed}-w{workers}.json"
                    state = inside(out, "states", safe_name(task, "task name"), name)
                    state.parent.mkdir(parents=True, exist_ok=True)
                    tuner = build_method(
                        method, SearchSpace.from_yaml(plan.space), evaluator.configs(), task_features[task],
                        surrogates, plan.metadataset, exclude_task=task, seed=seed, acquisition=plan.acquisition,
                        horizon=plan.horizon, quicktune_refit_steps=plan.quicktune_refit_steps,
                        dyhpo_refit_steps=plan.dyhpo_refit_steps,
                        optuna_storage=str(state.with_suffix(".optuna.journal")),
                    )  # fmt: skip
                    executor = SimulatedExecutor(workers, cost=lambda result: result[1])
                    budget = Budget(plan.budget_epochs * (1.0 if workers == 1 else plan.parallel_budget))
                    history = run_tuning(tuner, evaluator, budget, state, executor=executor)
                    histories[(task, method, seed, workers)] = history
                    if workers > 1:
                        continue
                    for fraction in sorted({*FRACTIONS, *grid.round(3).tolist()}):
                        incumbent = incumbent_at(history, fraction * plan.budget_epochs, start)
                        regret = (best - incumbent) / (best - worst) if best > worst else 0.0
                        rows.append(
                            {"task": task, "method": method, "seed": seed, "fraction": fraction,
                             "incumbent": incumbent, "normalized_regret": max(regret, 0.0)}
                        )  # fmt: skip
            progress(f"{task} {method}: done ({len(plan.seeds)} seeds)")
        scales[task] = (start, best, worst)
    _add_ranks(rows)
    summary = {
        method: {
            str(f): {
                "normalized_regret": statistics.mean(r["normalized_regret"] for r in _at(rows, method, f)),
                "rank": statistics.mean(r["rank"] for r in _at(rows, method, f)),
            }
            for f in FRACTIONS
        }
        for method in plan.methods
    }
    _write(out, rows, summary, plan)
    if len(set(plan.workers)) > 1:
        write_atomic(out / "parallel.json", json.dumps(parallel_summary(histories, scales, plan), indent=2))
    return summary


def time_to_regret(history: list[Step], target: float, start: float, best: float, worst: float) -> float | None:
    """The clock at which the incumbent's normalized regret first reached ``target`` (0.0 if the untuned start
    already had it; None if it never did)."""

    def regret(value: float) -> float:
        return max((best - value) / (best - worst), 0.0) if best > worst else 0.0

    if regret(start) <= target + 1e-12:
        return 0.0
    return next((step.clock for step in history if regret(max(start, step.incumbent)) <= target + 1e-12), None)


def parallel_summary(
    histories: dict[tuple[str, str, int, int], list[Step]], scales: dict[str, tuple[float, float, float]],
    plan: EvaluationPlan,
) -> dict[str, Any]:  # fmt: skip
    """Per method and N workers: the simulated time at which N workers first reach the normalized regret that one
    worker has at the end of its budget, summed over (task, seed) pairs, as a speedup t1 / tN. Pairs where one
    worker reaches its final regret at once (time 0) say nothing about speed and are left out; pairs where N
    workers never reach it within ``parallel_budget`` count with their whole tuning time (so the speedup is then
    an upper bound) and are reported as ``not_reached``."""
    out: dict[str, Any] = {}
    for method in plan.methods:
        out[method] = {}
        for workers in sorted(set(plan.workers)):
            t1_sum = tn_sum = 0.0
            pairs = not_reached = 0
            for task, (start, best, worst) in scales.items():
                for seed in plan.seeds:
                    one, many = histories[(task, method, seed, 1)], histories[(task, method, seed, workers)]
                    final = max([start, *(s.incumbent for s in one)])
                    target = max((best - final) / (best - worst), 0.0) if best > worst else 0.0
                    t1 = time_to_regret(one, target, start, best, worst)
                    if not t1:
                        continue
                    tn = time_to_regret(many, target, start, best, worst)
                    if tn is None:
                        not_reached += 1
                        tn = many[-1].clock if many else 0.0
                    pairs, t1_sum, tn_sum = pairs + 1, t1_sum + t1, tn_sum + tn
            out[method][str(workers)] = {
                "speedup": t1_sum / tn_sum if tn_sum > 0 else None, "pairs": pairs, "not_reached": not_reached,
                "seconds_1": t1_sum, "seconds_n": tn_sum,
            }  # fmt: skip
    return out


def _at(rows: list[dict[str, Any]], method: str, fraction: float) -> list[dict[str, Any]]:
    return [r for r in rows if r["method"] == method and abs(r["fraction"] - fraction) < 1e-9]


def _add_ranks(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["seed"], r["fraction"]), []).append(r)
    for group in groups.values():
        for r, rank in zip(group, rankdata([-r["incumbent"] for r in group]), strict=True):
            r["rank"] = float(rank)


def format_table(summary: dict[str, Any]) -> str:
    head = ["method", *(f"regret @{f:g}" for f in FRACTIONS), *(f"rank @{f:g}" for f in FRACTIONS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, by_fraction in sorted(summary.items(), key=lambda kv: kv[1]["1.0"]["rank"]):
        cells = [f"{by_fraction[str(f)]['normalized_regret']:.3f}" for f in FRACTIONS]
        cells += [f"{by_fraction[str(f)]['rank']:.2f}" for f in FRACTIONS]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines)


def _write(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any], plan: EvaluationPlan) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "table.md", format_table(summary) + "\n")
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "results.csv", table.getvalue())
    fractions = sorted({r["fraction"] for r in rows})
    for key, ylabel, name in (
        ("normalized_regret", "normalized regret", "regret.png"),
        ("rank", "mean rank", "rank.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method in plan.methods:
            ax.plot(fractions, [statistics.mean(r[key] for r in _at(rows, method, f)) for f in fractions], label=method)
        ax.set_xlabel(f"fraction of the budget ({plan.budget_epochs} epochs)")
        ax.set_ylabel(ylabel)
        if key == "normalized_regret":
            ax.set_yscale("symlog", linthresh=0.01)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
