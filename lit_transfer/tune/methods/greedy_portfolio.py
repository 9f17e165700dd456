"""A portfolio built to cover the recorded tasks, not to rank configs by their mean.

The mean-ranked portfolio puts near-duplicates of one good config first: they win on the same tasks and fail on the
same ones. The greedy portfolio (the set-cover construction of Wistuba et al. 2015, "Learning hyperparameter
optimization initializations", as in Syne Tune's ``ZeroShotTransfer``) picks configs one at a time, each the one
that most lowers the regret summed over the training tasks, given the configs picked before it, where a task's
regret is that of the best config picked so far. Its second config is the best one for the tasks the first left
behind. The configs are then trained to the last epoch in that order, as the portfolio is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from lit_transfer.metadataset.portfolio import shared_finals
from lit_transfer.tune.methods.baselines import Portfolio
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec


def greedy_order(regret: np.ndarray, keys: Sequence[str]) -> list[int]:
    """Rows of ``regret`` (configs × tasks, each task's regret in [0, 1]) in greedy set-cover order: each next row
    the one that most lowers the sum over tasks of the lowest regret among the rows chosen; ties go to the lower
    mean regret, then to the smaller key, so the order does not depend on the order of the rows."""
    chosen: list[int] = []
    covered = np.full(regret.shape[1], np.inf)  # each task's regret with what is chosen (nothing yet: unbounded)
    left = list(range(regret.shape[0]))
    mean = regret.mean(axis=1)
    while left:
        totals = [float(np.minimum(covered, regret[i]).sum()) for i in left]
        best = min(range(len(left)), key=lambda j: (totals[j], mean[left[j]], keys[left[j]]))
        row = left.pop(best)
        chosen.append(row)
        covered = np.minimum(covered, regret[row])
    return chosen


def greedy_portfolio(
    path: str, exclude: str | Sequence[str] = (), metric: str = "val/acc", size: int | None = None
) -> list[dict[str, Any]]:
    """The shared configs (``shared_finals``: those every task but the ``exclude`` ones ran) in greedy set-cover
    order over those tasks. A task's regret of a config is (its best final - the config's final) / (its best - its
    worst final), the normalized regret the evaluation reports, so every task counts alike."""
    scores, configs = shared_finals(path, exclude, metric)
    keys = sorted(scores)
    tasks = sorted(scores[keys[0]])
    finals = np.array([[scores[k][t] for t in tasks] for k in keys])
    spread = finals.max(axis=0) - finals.min(axis=0)
    regret = (finals.max(axis=0) - finals) / np.where(spread > 0, spread, 1.0)
    return [configs[keys[i]] for i in greedy_order(regret, keys)][:size]


class GreedyPortfolio(Portfolio):
    """The greedy portfolio's configs in order, each trained to the last epoch."""

    name = "greedy_portfolio"


class GreedyPortfolioSpec(MethodSpec):
    """The shared configs of the experience (without the tasks held out) in greedy set-cover order, each trained to
    the last epoch."""

    name: ClassVar[str] = "greedy_portfolio"
    randomness: ClassVar[str] = "none"

    def build(self, context: MethodContext) -> GreedyPortfolio:
        ranked = greedy_portfolio(context.metadataset, exclude=context.exclude_tasks)
        return GreedyPortfolio(context.space, ranked, seed=context.seed)
