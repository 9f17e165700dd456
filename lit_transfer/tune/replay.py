"""Tuning without training: recorded curves and costs of a meta-dataset task stand in for finetuning runs.

This is how methods are compared fairly and cheaply (every method sees the same outcomes for the same choices),
and what the leave-one-task-out evaluation runs on.
"""

from __future__ import annotations

from typing import Any

from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError, RunRecord
from lit_transfer.tune.methods.base import Trial


class ReplayEvaluator:
    """Serves a task's recorded runs: a trial's curve up to its epoch and the seconds that epoch took."""

    def __init__(self, runs: list[RunRecord]) -> None:
        if not runs:
            raise MetaDatasetError("no recorded runs to replay")
        self.runs = {r.config_key: r for r in runs}

    @classmethod
    def from_store(cls, path: str, task: str) -> ReplayEvaluator:
        with MetaDataset(path) as store:
            if task not in store.tasks():
                raise MetaDatasetError(f"{path}: no task {task!r} (tasks: {', '.join(store.tasks())})")
            return cls([r for r in store.runs(task) if r.status == "ok"])

    def configs(self) -> list[dict[str, Any]]:
        return [dict(r.config) for r in self.runs.values()]

    def run(self, trial: Trial) -> tuple[list[dict[str, float]], float]:
        run = self.runs.get(trial.key)
        if run is None:
            raise KeyError(f"no recorded run for config {trial.key}")
        points = [p for p in run.curve if p["fidelity"] > 0]
        if not 1 <= trial.fidelity <= len(points):
            raise ValueError(f"recorded run has epochs 1..{len(points)}, trial asks for {trial.fidelity}")
        before = next((p["seconds"] for p in run.curve if p["fidelity"] == trial.fidelity - 1), 0.0)
        seconds = points[trial.fidelity - 1]["seconds"] - before
        return [dict(p["metrics"]) for p in points[: trial.fidelity]], seconds

    def best_value(self, metric: str = "val/acc") -> float:
        """The best metric value any recorded run reaches at any epoch (for regret)."""
        return max((p["metrics"].get(metric) or 0.0) for r in self.runs.values() for p in r.curve)
