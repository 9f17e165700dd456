"""The experience behind a suggestion: the recorded runs most like it, on the tasks most like the new one.

Tasks are compared on their meta-features (each standardized over the recorded tasks), configs in the search
space's encoding; a recorded run's distance to (new task, config) is the sum of the two. What a user sees next to
a predicted accuracy is then what was actually measured nearby, and how far away it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.space import SearchSpace


class Experience:
    """The recorded runs of one or more meta-datasets, ready for nearest-run questions."""

    def __init__(self, paths: Sequence[str], space: SearchSpace, features: Sequence[str] = TASK_FEATURES) -> None:
        self.space, self.features = space, list(features)
        tasks: dict[str, dict[str, float]] = {}
        rows: list[tuple[str, dict[str, Any], float]] = []
        for path in paths:
            with MetaDataset(path) as store:
                tasks.update(store.tasks())
                rows += [(r.task, dict(r.config), final_score(r)) for r in store.runs() if r.status != "failed"]
        self.tasks = sorted(tasks)
        matrix = np.array([[tasks[t].get(f, 0.0) for f in self.features] for t in self.tasks], dtype=float)
        self.mean, self.scale = matrix.mean(0), np.where(matrix.std(0) > 1e-9, matrix.std(0), 1.0)
        self.task_matrix = (matrix - self.mean) / self.scale
        self.run_task = np.array([self.tasks.index(t) for t, _, _ in rows])
        self.run_config = np.stack([space.encode(c) for _, c, _ in rows]) if rows else np.zeros((0, 1))
        self.runs = rows

    def similar_tasks(self, task_features: Mapping[str, float], k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` recorded tasks nearest to a task (name, distance)."""
        distance = self._task_distance(task_features)
        return [(self.tasks[i], float(distance[i])) for i in np.argsort(distance)[:k]]

    def behind(self, config: Mapping[str, Any], task_features: Mapping[str, float], k: int = 3) -> list[dict]:
        """The ``k`` recorded runs nearest to (this task, ``config``): task, final metric, distances."""
        task_distance = self._task_distance(task_features)[self.run_task]
        config_distance = np.sqrt(((self.run_config - self.space.encode(dict(config))) ** 2).sum(1))
        order = np.argsort(task_distance + config_distance)[:k]
        return [
            {"task": self.runs[i][0], "final": self.runs[i][2], "task_distance": float(task_distance[i]),
             "config_distance": float(config_distance[i])}
            for i in order
        ]  # fmt: skip

    def _task_distance(self, task_features: Mapping[str, float]) -> np.ndarray:
        z = (np.array([task_features.get(f, 0.0) for f in self.features]) - self.mean) / self.scale
        return np.sqrt(((self.task_matrix - z) ** 2).sum(1) / len(self.features))
