"""The portfolio: what did well across the recorded tasks, computed from their runs (no model of any task)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError
from lit_transfer.metadataset.summary import final_score


def shared_finals(
    path: str, exclude: str | Sequence[str] = (), metric: str = "val/acc"
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """The final ``metric`` of every shared config (one every task but the ``exclude`` ones ran) on each of those
    tasks, by config key, and the configs themselves. A config only one task ran (its own) is left out: on a new
    task it would be a guess."""
    excluded = {exclude} if isinstance(exclude, str) else set(exclude)
    scores: dict[str, dict[str, float]] = {}
    configs: dict[str, dict[str, Any]] = {}
    with MetaDataset(path) as store:
        for run in store.runs():
            if run.task not in excluded:
                scores.setdefault(run.config_key, {})[run.task] = final_score(run, metric)
                configs[run.config_key] = dict(run.config)
    tasks = {task for by_task in scores.values() for task in by_task}  # those with runs
    shared = {k: by_task for k, by_task in scores.items() if len(by_task) == len(tasks)}
    if not shared:
        raise MetaDatasetError(f"{path}: no config was run on every task, so there is no portfolio")
    return shared, {k: configs[k] for k in shared}


def portfolio(
    path: str, exclude: str | Sequence[str] = (), metric: str = "val/acc", size: int | None = None
) -> list[dict[str, Any]]:
    """The shared configs (``shared_finals``) ranked by their mean final metric over those tasks, best first: the
    portfolio knows what did well across tasks, nothing more."""
    scores, configs = shared_finals(path, exclude, metric)
    ranked = sorted(scores, key=lambda k: (statistics.mean(scores[k].values()), k), reverse=True)
    return [configs[k] for k in ranked[:size]]
