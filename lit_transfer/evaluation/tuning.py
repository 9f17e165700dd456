"""Leave-one-task-out or leave-one-family-out comparison of tuning methods on a meta-dataset, by replaying its
recorded runs.

For each fold in turn (a task, or all tasks of a family): the surrogates meta-train on the other tasks (cached per
fold), the portfolio is ranked on them, then every method tunes each held-out task under the same epoch budget:
randomized methods for every seed, refitting ones for the first ``refit_seeds``, and methods that do not depend on
the seed once (their result stands for every seed). A run's seed is derived from (seed, task) (``task_seed``): every
task's configs come in the same order, and one seed everywhere would draw the same positions on every task. At each
fraction of the budget the incumbent (best validation metric seen) gives a normalized regret, (best recorded -
incumbent) / (best recorded - worst final), and a rank among the methods (ties share the mean rank).
``summary.json`` has, per method and fraction, the mean regret with its 95% bootstrap interval (tasks resampled),
the mean rank and, for a method run with several seeds, how far its mean regret moves with the seed
(``regret_seed_sd``); ``stats.json`` the Wilcoxon signed-rank tests of Transfer against every other method;
``cd.png`` the critical-difference diagram at the full budget (``lit_transfer.evaluation.stats``). Every (task,
method, seed) run keeps a tuning state file, so an interrupted evaluation resumes where it stopped; what made each
method's states (its spec and options, the surrogate recipes it predicts with) is recorded beside them
(``states/made_with.json``), and a method whose spec or recipes have changed since is refused, not resumed.

With ``workers`` beyond 1, every method also tunes with N trial steps in flight at once, on a simulated clock that
advances by each step's recorded seconds (``SimulatedExecutor``); ``parallel.json`` then says, per method and N,
how soon N workers reach the normalized regret one worker has at the end of its budget (``time_to_regret``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lit_transfer.evaluation.plan import EvaluationPlan
from lit_transfer.evaluation.references import REFERENCES, reference_orders
from lit_transfer.evaluation.stats import (
    bootstrap_ci,
    critical_difference,
    parallel_summary,
    task_means,
    wilcoxon_against,
)
from lit_transfer.executors import SimulatedExecutor
from lit_transfer.io import FolderLock, inside, safe_name, write_atomic
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate.pretrained import Surrogates, load_surrogate, save_weights
from lit_transfer.surrogate.training import train_surrogate
from lit_transfer.tune.loop import Budget, Step, incumbent_at, load_state, run_tuning
from lit_transfer.tune.methods.baselines import Portfolio
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec, task_seed
from lit_transfer.tune.replay import ReplayEvaluator

FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def recipe_digest(recipe: str) -> str:
    """The digest of a surrogate recipe's content: what names the surrogates and states made with it."""
    return hashlib.sha256(Path(recipe).read_bytes()).hexdigest()


def fold_surrogates(plan: EvaluationPlan, fold: str, held_out: list[str]) -> Surrogates:
    """The surrogates the plan's methods use, meta-trained without the ``held_out`` tasks (trained once, then
    loaded from the fold's cache)."""
    folder = Path(plan.out) / "surrogates"
    folder.mkdir(parents=True, exist_ok=True)
    needed = {"cost", *(m.surrogate for m in plan.methods if m.surrogate is not None)}
    modules = {}
    for target, recipe in plan.recipes.items():
        if target not in needed:
            continue
        # the recipe's content names the file: a changed recipe never loads a surrogate cached from the old one
        digest = recipe_digest(recipe)[:8]
        path = inside(folder, f"{safe_name(fold, 'task name')}.{target}.{digest}.ckpt")
        if path.exists():
            modules[target] = load_surrogate(path)
            continue
        modules[target] = train_surrogate(recipe, plan.metadataset, holdout_tasks=held_out, space=plan.space)
        save_weights(modules[target], path)
    return Surrogates(modules.get("performance"), modules.get("cost"), modules.get("refit"))


def evaluate(plan: EvaluationPlan, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the comparison; writes results and returns ``summary.json``'s content."""
    out = Path(plan.out)
    with FolderLock(out, "evaluate"):
        return _evaluate(plan, out, progress)


def made_with(spec: MethodSpec, plan: EvaluationPlan) -> str:
    """A digest of what a method's tuning states depend on: its spec (class and options) and the content of the
    surrogate recipes it predicts with."""
    used = [plan.recipes[spec.surrogate], plan.recipes["cost"]] if spec.surrogate is not None else []
    what = {
        "spec": f"{type(spec).__module__}.{type(spec).__qualname__}",
        "options": dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else {},
        "recipes": [recipe_digest(recipe) for recipe in used],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_made_with(plan: EvaluationPlan, out: Path) -> None:
    """Resume only states made by the methods as the plan gives them: a method whose spec, options or surrogate
    recipes changed since its states were written is refused, naming it, and so are states of which nothing says
    what made them; then what makes them now is recorded."""
    record = out / "states" / "made_with.json"
    try:
        recorded = json.loads(record.read_text()) if record.exists() else {}
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{record}: cannot read what made the states ({err})") from None
    now = {spec.name: made_with(spec, plan) for spec in plan.methods}
    for method, digest in now.items():
        known = recorded.get(method)
        if known == digest or not any((out / "states").glob(f"*/{method}-*.json")):
            continue  # made as now, or nothing to resume
        what = "were made with other options or surrogate recipes" if known else "have no record of what made them"
        raise ValueError(
            f"{record}: the states of {method} {what}; remove them (states/*/{method}-*.json) to run it again, "
            "or choose another out"
        )
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, json.dumps({**recorded, **now}, indent=1, sort_keys=True))


def _evaluate(plan: EvaluationPlan, out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    _check_made_with(plan, out)
    with MetaDataset(plan.metadataset) as store:
        task_features, families = store.tasks(), store.families()
        finals = {t: [final_score(r) for r in store.runs(t)] for t in task_features}
        config_finals = {t: {r.config_key: final_score(r) for r in store.runs(t) if r.status == "ok"} for t in finals}
    tasks = plan.tasks or sorted(task_features)
    grid = np.linspace(0, 1, 41)[1:]  # budget fractions for the plots
    rows = []
    reference_rows: list[dict[str, Any]] = []
    neighbours: dict[str, list[str]] = {}
    histories: dict[tuple[str, str, int, int], list[Step]] = {}
    scales: dict[str, tuple[float, float, float]] = {}  # task -> (zero-shot start, best, worst final)
    seeds = {method.name: plan.method_seeds(method) for method in plan.methods}
    space = SearchSpace.from_yaml(plan.space)
    for fold, held_out in plan.folds(tasks, families).items():
        cache: list[Surrogates] = []

        def surrogates(fold: str = fold, held_out: list = held_out, cache: list = cache) -> Surrogates:
            if not cache:
                cache.append(fold_surrogates(plan, fold, held_out))
            return cache[0]

        for task in held_out:
            evaluator = ReplayEvaluator.from_store(plan.metadataset, task)
            best, worst = evaluator.best_value(), min(finals[task])
            start = task_features[task].get("zero_shot_acc", 0.0)
            scales[task] = (start, best, worst)
            orders = reference_orders(task, config_finals, families)
            neighbours[task] = orders["neighbours"]
            for reference in REFERENCES:
                if orders[reference]:  # no neighbours where every task is of one family
                    ranked = [evaluator.runs[key].config for key in orders[reference]]
                    history = run_tuning(Portfolio(space, ranked), evaluator, Budget(plan.budget_epochs))
                    reference_rows += _regret_rows(history, task, reference, 0, grid, plan.budget_epochs, scales[task])
            for spec in plan.methods:
                method = spec.name
                for seed in seeds[method]:
                    for workers in sorted(set(plan.workers)):
                        name = f"{method}-{seed}.json" if workers == 1 else f"{method}-{seed}-w{workers}.json"
                        state = inside(out, "states", safe_name(task, "task name"), name)
                        state.parent.mkdir(parents=True, exist_ok=True)
                        run_seed = seed if spec.randomness == "none" else task_seed(seed, task)
                        _check_seeded(state, spec)
                        context = MethodContext(
                            space, evaluator.configs(), task_features[task], surrogates, plan.metadataset,
                            exclude_tasks=held_out, seed=run_seed, state_file=state,
                        )  # fmt: skip
                        tuner = spec.build(context)
                        executor = SimulatedExecutor(workers, cost=lambda result: result[1])
                        budget = Budget(plan.budget_epochs * (1.0 if workers == 1 else plan.parallel_budget))
                        histories[(task, method, seed, workers)] = run_tuning(
                            tuner, evaluator, budget, state, executor=executor
                        )
                    history = histories[(task, method, seed, 1)]
                    for other in plan.seeds if len(seeds[method]) == 1 else [seed]:  # seed-free: one for all
                        rows += _regret_rows(history, task, method, other, grid, plan.budget_epochs, scales[task])
                progress(f"{task} {method}: done ({len(seeds[method])} seeds)")
    _add_ranks(rows)
    names = [m.name for m in plan.methods]
    summary = {
        method: {
            str(f): {
                **_regret(_at(rows, method, f)),
                "rank": statistics.mean(r["rank"] for r in _at(rows, method, f)),
                "regret_seed_sd": seed_spread(rows, method, f) if len(seeds[method]) > 1 else None,
            }
            for f in FRACTIONS
        }
        for method in names
    }
    references = {
        reference: {str(f): _regret(_at(reference_rows, reference, f), count_tasks=True) for f in FRACTIONS}
        for reference in REFERENCES
        if _at(reference_rows, reference, 1.0)
    }
    write_atomic(out / "references.json", json.dumps({**references, "neighbours": neighbours}, indent=2))
    _write(out, rows, summary, plan, references, reference_rows)
    if "transfer" in names and len(names) > 1:
        write_atomic(out / "stats.json", json.dumps(wilcoxon_against(rows, "transfer", FRACTIONS), indent=2))
    if len(plan.methods) > 1 and len(scales) >= 5:  # autorank needs five blocks (tasks) or more
        verdict = critical_difference(rows, 1.0, out / "cd.png")
        write_atomic(out / "cd.json", json.dumps(verdict, indent=2))
    if len(set(plan.workers)) > 1:
        parallel = parallel_summary(histories, scales, names, seeds, plan.workers)
        write_atomic(out / "parallel.json", json.dumps(parallel, indent=2))
    return summary


def _regret(rows: list[dict[str, Any]], count_tasks: bool = False) -> dict[str, Any]:
    """The mean normalized regret of ``rows`` and its 95% bootstrap interval over tasks (not over seed copies);
    with ``count_tasks``, how many rows (a reference has one per task) it is over."""
    entry = {
        "normalized_regret": statistics.mean(r["normalized_regret"] for r in rows),
        "regret_ci95": bootstrap_ci(task_means(rows)),
    }
    return {**entry, "tasks": len(rows)} if count_tasks else entry


def _check_seeded(state: Path, spec: MethodSpec) -> None:
    """A randomized method's state from before each run's seed was derived from (seed, task) ran with the plan's
    seed itself: resumed, it would mix the two. Refused, naming the file."""
    if spec.randomness == "none" or not state.exists():
        return
    if "seed" not in load_state(state).method:
        raise ValueError(
            f"{state}: made before each run's seed was derived from (seed, task); remove the evaluation's states "
            "folder (or this file) to rerun it"
        )


def seed_spread(rows: list[dict[str, Any]], method: str, fraction: float) -> float | None:
    """How far the method's mean regret moves with its seed: the standard deviation over seeds of the mean over
    tasks (``None`` for a method run with one seed)."""
    by_seed: dict[int, list[float]] = {}
    for r in _at(rows, method, fraction):
        by_seed.setdefault(r["seed"], []).append(r["normalized_regret"])
    means = [statistics.mean(values) for values in by_seed.values()]
    return statistics.stdev(means) if len(means) > 1 else None


def _regret_rows(
    history: list[Step], task: str, method: str, seed: int, grid: np.ndarray, budget_epochs: int,
    scale: tuple[float, float, float],
) -> list[dict[str, Any]]:  # fmt: skip
    """The incumbent and its normalized regret at every fraction of the budget (``scale``: the task's zero-shot
    start, best recorded value and worst final)."""
    start, best, worst = scale
    rows = []
    for fraction in sorted({*FRACTIONS, *grid.round(3).tolist()}):
        incumbent = incumbent_at(history, fraction * budget_epochs, start)
        regret = (best - incumbent) / (best - worst) if best > worst else 0.0
        rows.append(
            {"task": task, "method": method, "seed": seed, "fraction": fraction, "incumbent": incumbent,
             "normalized_regret": max(regret, 0.0)}
        )  # fmt: skip
    return rows


def _add_ranks(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["seed"], r["fraction"]), []).append(r)
    for group in groups.values():
        for r, rank in zip(group, rankdata([-r["incumbent"] for r in group]), strict=True):
            r["rank"] = float(rank)


def _at(rows: list[dict[str, Any]], method: str, fraction: float) -> list[dict[str, Any]]:
    return [r for r in rows if r["method"] == method and abs(r["fraction"] - fraction) < 1e-9]


def format_table(summary: dict[str, Any], references: dict[str, Any] | None = None) -> str:
    """The methods by their mean rank at the full budget, then the references (which use the held-out task's
    recorded results: not ranked, not methods)."""
    head = ["method", *(f"regret @{f:g}" for f in FRACTIONS), *(f"rank @{f:g}" for f in FRACTIONS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, by_fraction in sorted(summary.items(), key=lambda kv: kv[1]["1.0"]["rank"]):
        cells = [f"{by_fraction[str(f)]['normalized_regret']:.3f}" for f in FRACTIONS]
        cells += [f"{by_fraction[str(f)]['rank']:.2f}" for f in FRACTIONS]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    for reference, by_fraction in (references or {}).items():
        cells = [f"{by_fraction[str(f)]['normalized_regret']:.3f}" for f in FRACTIONS] + ["–"] * len(FRACTIONS)
        lines.append("| " + " | ".join([f"{reference} (reference)", *cells]) + " |")
    return "\n".join(lines)


def _write(
    out: Path, rows: list[dict[str, Any]], summary: dict[str, Any], plan: EvaluationPlan,
    references: dict[str, Any], reference_rows: list[dict[str, Any]],
) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "table.md", format_table(summary, references) + "\n")
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
        for method in (m.name for m in plan.methods):
            ax.plot(fractions, [statistics.mean(r[key] for r in _at(rows, method, f)) for f in fractions], label=method)
        if key == "normalized_regret":
            for reference in references:
                values = [statistics.mean(r[key] for r in _at(reference_rows, reference, f)) for f in fractions]
                ax.plot(fractions, values, linestyle="--", color="grey", alpha=0.7, label=f"{reference} (reference)")
        ax.set_xlabel(f"fraction of the budget ({plan.budget_epochs} epochs)")
        ax.set_ylabel(ylabel)
        if key == "normalized_regret":
            ax.set_yscale("symlog", linthresh=0.01)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
