"""How sure a comparison of tuning methods is: bootstrap intervals of mean regret, Wilcoxon signed-rank tests of one
method against each other over paired (task, seed) results, a critical-difference diagram (``autorank``), and how
much sooner N parallel workers reach what one worker reaches.

Rows are what ``evaluate`` writes to ``results.csv``: one per (task, method, seed, fraction) with the
``normalized_regret``. Methods that do not depend on the seed (Transfer with its fold's surrogates, Portfolio,
Default, zero-shot) run once per task, and that result stands for every seed: the pairs stay complete. Those copies
are not independent draws, so what must not count them as such works on tasks: the bootstrap resamples tasks
(each its mean over seeds), and each Wilcoxon test is also run over tasks (``p_value_tasks``); between two
seed-free methods the test over (task, seed) pairs counts every task once per seed and overstates significance.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_transfer.tune.loop import Step

Row = dict[str, Any]


def _regrets(rows: Sequence[Row], method: str, fraction: float) -> dict[tuple[str, int], float]:
    return {
        (r["task"], r["seed"]): r["normalized_regret"]
        for r in rows
        if r["method"] == method and abs(r["fraction"] - fraction) < 1e-9
    }


def task_means(rows: Sequence[Row]) -> list[float]:
    """Each task's mean ``normalized_regret`` over its rows (its seeds), in task order."""
    by_task: dict[str, list[float]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r["normalized_regret"])
    return [float(np.mean(by_task[task])) for task in sorted(by_task)]


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean (seeded, so a rerun writes the same interval)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def wilcoxon_against(rows: Sequence[Row], reference: str, fractions: Sequence[float]) -> dict[str, Any]:
    """At each fraction, ``reference`` against every other method over their common (task, seed) pairs: the
    two-sided Wilcoxon signed-rank p-value (zero differences split between the signs, as ``zsplit`` does), and
    whether ``reference``'s mean regret over those pairs is lower; ``p_value_tasks``: the same test over tasks, each
    task's regret its mean over the common seeds (the one to read when either method does not depend on the seed)."""
    methods = sorted({r["method"] for r in rows} - {reference})
    out: dict[str, Any] = {}
    for fraction in fractions:
        mine = _regrets(rows, reference, fraction)
        entry = {}
        for method in methods:
            theirs = _regrets(rows, method, fraction)
            pairs = sorted(set(mine) & set(theirs))
            a = np.array([mine[p] for p in pairs])
            b = np.array([theirs[p] for p in pairs])
            tasks = sorted({task for task, _ in pairs})
            per_task = [[i for i, (task, _) in enumerate(pairs) if task == t] for t in tasks]
            better = bool(len(pairs) > 0 and a.mean() < b.mean())
            entry[method] = {
                "p_value": _signed_rank(a, b), f"{reference}_better": better, "pairs": len(pairs),
                "p_value_tasks": _signed_rank(np.array([a[i].mean() for i in per_task]),
                                              np.array([b[i].mean() for i in per_task])),
                "tasks": len(tasks),
            }  # fmt: skip
        out[str(fraction)] = entry
    return out


def _signed_rank(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``a`` and ``b`` (1 when they do not differ)."""
    from scipy.stats import wilcoxon

    if len(a) == 0 or np.allclose(a, b):
        return 1.0
    with warnings.catch_warnings():  # few pairs: scipy warns that its normal approximation is rough
        warnings.simplefilter("ignore", UserWarning)
        return float(wilcoxon(a, b, zero_method="zsplit").pvalue)


def critical_difference(rows: Sequence[Row], fraction: float, path: str | Path, alpha: float = 0.05) -> dict[str, Any]:
    """A critical-difference diagram of the methods' regret at ``fraction`` (``autorank``: blocks are tasks, each
    the mean over its seeds; lower is better), saved to ``path``; returns autorank's verdict in plain data. Two
    methods are compared by a paired test, which has no diagram: none is drawn (``diagram`` false)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from autorank import autorank, plot_stats

    at = [r for r in rows if abs(r["fraction"] - fraction) < 1e-9]
    table = pd.DataFrame(at).groupby(["task", "method"])["normalized_regret"].mean().unstack("method")
    # autorank prints its tables (the command prints its own) and warns on methods whose regrets are all equal
    # (an effect size of 0 / 0): the diagram and the verdict are still what they are
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = autorank(table, alpha=alpha, verbose=False, order="ascending", force_mode="nonparametric")
        diagram = result.omnibus != "wilcoxon"
        if diagram:
            fig, ax = plt.subplots(figsize=(7, 2.8))
            plot_stats(result, ax=ax, allow_insignificant=True)
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
    return {
        "diagram": diagram,
        "test": result.omnibus,
        "p_value": float(result.pvalue),
        "critical_difference": None if result.cd is None else float(result.cd),
        "mean_rank": {str(k): float(v) for k, v in result.rankdf["meanrank"].items()},
        "blocks": len(table),
    }


def time_to_regret(history: Sequence[Step], target: float, start: float, best: float, worst: float) -> float | None:
    """The clock at which the incumbent's normalized regret first reached ``target`` (0.0 if the untuned start
    already had it; None if it never did)."""
    if _regret(start, best, worst) <= target + 1e-12:
        return 0.0
    step = step_to_regret(history, target, start, best, worst)
    return None if step is None else step.clock


def step_to_regret(history: Sequence[Step], target: float, start: float, best: float, worst: float) -> Step | None:
    """The first step after which the incumbent's normalized regret is at most ``target`` (None if none is)."""
    return next((s for s in history if _regret(max(start, s.incumbent), best, worst) <= target + 1e-12), None)


def _regret(value: float, best: float, worst: float) -> float:
    return max((best - value) / (best - worst), 0.0) if best > worst else 0.0


def winner_chain(history: Sequence[Step], reached: Step) -> float:
    """The seconds of the epochs of the config that ``reached`` a target in a one-worker ``history``, up to that
    epoch: what no number of workers can shorten, as a config's epochs run one after another."""
    return sum(
        s.seconds for s in history
        if s.status == "ok" and s.config_key == reached.config_key and s.fidelity <= reached.fidelity
    )  # fmt: skip


def parallel_summary(
    histories: dict[tuple[str, str, int, int], list[Step]], scales: dict[str, tuple[float, float, float]],
    methods: Sequence[str], seeds: dict[str, Sequence[int]], workers: Sequence[int],
) -> dict[str, Any]:  # fmt: skip
    """Per method and N workers: the simulated time at which N workers first reach the normalized regret that one
    worker has at the end of its budget, summed over (task, seed) pairs, as a speedup t1 / tN. Pairs where one
    worker reaches its final regret at once (time 0) say nothing about speed and are left out; pairs where N
    workers never reach it within their budget count with their whole tuning time (so the speedup is then an
    upper bound) and are reported as ``not_reached``.

    What limits it: a config's epochs run one after another however many workers there are. ``chain_bound`` is
    t1 / the seconds of the epochs of the config with which one worker got there (its *winner*), up to that epoch:
    the speedup of any number of workers that ran only the winner, from the start, never paused.
    ``speedup_unpaused`` is the speedup had no pair taken N workers longer than its winner's epochs: what keeping
    the winner running could still gain; beyond it, N workers must get there with another config sooner."""
    out: dict[str, Any] = {}
    for method in methods:
        out[method] = {}
        for n in sorted(set(workers)):
            t1_sum = tn_sum = chain_sum = unpaused_sum = 0.0
            pairs = not_reached = 0
            for task, (start, best, worst) in scales.items():
                for seed in seeds[method]:
                    one, many = histories[(task, method, seed, 1)], histories[(task, method, seed, n)]
                    final = max([start, *(s.incumbent for s in one)])
                    target = _regret(final, best, worst)
                    t1 = time_to_regret(one, target, start, best, worst)
                    if not t1:
                        continue
                    chain = winner_chain(one, step_to_regret(one, target, start, best, worst))
                    tn = time_to_regret(many, target, start, best, worst)
                    if tn is None:
                        not_reached += 1
                        tn = many[-1].clock if many else 0.0
                    pairs, t1_sum, tn_sum = pairs + 1, t1_sum + t1, tn_sum + tn
                    chain_sum, unpaused_sum = chain_sum + chain, unpaused_sum + min(tn, chain)
            out[method][str(n)] = {
                "speedup": t1_sum / tn_sum if tn_sum > 0 else None, "pairs": pairs, "not_reached": not_reached,
                "seconds_1": t1_sum, "seconds_n": tn_sum, "seconds_chain": chain_sum,
                "chain_bound": t1_sum / chain_sum if chain_sum > 0 else None,
                "speedup_unpaused": t1_sum / unpaused_sum if unpaused_sum > 0 else None,
            }  # fmt: skip
    return out
