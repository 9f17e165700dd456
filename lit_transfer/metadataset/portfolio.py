"""The portfolio: what did well across the recorded tasks, computed from their runs (no model of any task)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError
from lit_transfer.metadataset.summary import final_score


def portfolio(
    path: str, exclude: str | Sequence[str] = (), metric: str = "val/acc", size: int | None = None
) -> list[dict[str, Any]]:
    """The shared configs (those every task but the ``exclude`` ones ran) ranked by their mean final metric over
    those tasks, best first. A config only one task ran (its own) has one result, not an average, and on a new
    task it would be a guess: the portfolio knows what did well across tasks, nothing more."""
    excluded = {exclude} if isinstance(exclude, str) else set(exclude)
    scores: dict[str, dict[str, float]] = {}
    configs: dict[str, dict[str, Any]] = {}
    with MetaDataset(path) as store:
        for run in store.runs():
            if run.task not in excluded:
                scores.setdefault(run.config_key, {})[run.task] = final_score(run, metric)
                configs[run.config_key] = dict(run.config)
    tasks = {task for by_task in scores.values() for task in by_task}  # those with runs
    shared = [k for k in scores if len(scores[k]) == len(tasks)]
    if not shared:
        raise MetaDatasetError(f"{path}: no config was run on every task, so there is no portfolio to rank")
    ranked = sorted(shared, key=lambda k: (statistics.mean(scores[k].values()), k), reverse=True)
    return [configs[k] for k in ranked[:size]]
