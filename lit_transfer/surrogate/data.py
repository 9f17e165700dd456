"""Surrogate training examples drawn from a ``MetaDataset``, and the one encoding shared by training and prediction.

A performance example is (config, task features, curve prefix of ``l`` epochs, target fidelity ``t > l``) -> the
metric at epoch ``t``; every ``0 <= l < t`` is used, so one surrogate answers "how good will this config be at
epoch t" both before a run starts (``l = 0``) and while it trains. A cost example is (config, task features) ->
seconds per epoch. Batches of performance examples come from one task at a time, as the exact GP likelihood of a
batch only makes sense among runs of the same task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset, MetaDatasetError
from lit_transfer.space import DEFAULT_SPACE, SearchSpace

PREFIX_CHANNELS = 2  # the metric itself, and validation loss relative to the base model's zero-shot loss
MAX_RELATIVE_LOSS = 2.0  # diverged or NaN losses are clipped here


def prefix_channels(point: Mapping[str, float], metric: str, zero_shot_loss: float) -> list[float]:
    """One epoch of a curve as surrogate input: the metric (NaN -> 0) and val loss / zero-shot loss in [0, 2]."""
    value = point.get(metric)
    value = 0.0 if value is None or not math.isfinite(value) else float(value)
    loss = point.get("val/loss")
    relative = MAX_RELATIVE_LOSS if loss is None or not math.isfinite(loss) else loss / max(zero_shot_loss, 1e-6)
    return [value, min(max(relative, 0.0), MAX_RELATIVE_LOSS)]


class Encoding:
    """Turns configs, task features and observed curves into surrogate input tensors.

    The same instance (rebuilt from a checkpoint's hyperparameters) encodes training data and prediction requests,
    so a surrogate never sees inputs laid out differently from what it was trained on.
    """

    def __init__(
        self,
        space: str | Mapping[str, Any] | SearchSpace = DEFAULT_SPACE,
        task_features: Sequence[str] = TASK_FEATURES,
        metric: str = "val/acc",
    ) -> None:
        self.space = SearchSpace.resolve(space)
        self.task_features = list(task_features)
        self.metric = metric
        self.max_epochs = self.space.max_epochs
        self.config_dim = len(self.space.feature_names())

    def configs(self, configs: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        if not configs:
            raise ValueError("no configs to encode")
        return torch.from_numpy(np.stack([self.space.encode(c) for c in configs]))

    def task(self, features: Mapping[str, float]) -> torch.Tensor:
        missing = [f for f in self.task_features if f not in features]
        if missing:
            raise ValueError(f"task features missing: {', '.join(missing)} (need {', '.join(self.task_features)})")
        return torch.tensor([float(features[f]) for f in self.task_features])

    def prefix(self, curve: Sequence[Mapping[str, float]], zero_shot_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
        """An observed curve (metrics of epochs 1..l) -> values [max_epochs, channels] and mask [max_epochs]."""
        if len(curve) > self.max_epochs:
            raise ValueError(f"a curve has {len(curve)} epochs; this space has at most {self.max_epochs}")
        values = torch.zeros(self.max_epochs, PREFIX_CHANNELS)
        mask = torch.zeros(self.max_epochs)
        for epoch, point in enumerate(curve):
            values[epoch] = torch.tensor(prefix_channels(point, self.metric, zero_shot_loss))
            mask[epoch] = 1.0
        return values, mask

    def inputs(
        self,
        configs: Sequence[Mapping[str, Any]],
        task_features: Mapping[str, float],
        curves: Sequence[Sequence[Mapping[str, float]]] | None = None,
        fidelity: int | Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """A batch for ``configs`` on one task: each with its observed curve (default: none) and the epoch to
        predict (default: the last)."""
        n = len(configs)
        curves = [[] for _ in range(n)] if curves is None else list(curves)
        fidelity = self.max_epochs if fidelity is None else fidelity
        fidelities = [fidelity] * n if isinstance(fidelity, int) else list(fidelity)
        if len(curves) != n or len(fidelities) != n:
            raise ValueError(f"{n} configs but {len(curves)} curves and {len(fidelities)} fidelities")
        for i, (curve, t) in enumerate(zip(curves, fidelities, strict=True)):
            if not 1 <= t <= self.max_epochs:
                raise ValueError(f"fidelity {t} of config {i} is outside 1..{self.max_epochs}")
            if len(curve) >= t:
                raise ValueError(f"config {i} has {len(curve)} observed epochs; a prefix for epoch {t} has < {t}")
        task = self.task(task_features)
        zero_shot_loss = float(task_features.get("zero_shot_loss", 1.0))
        prefixes = [self.prefix(c, zero_shot_loss) for c in curves]
        return {
            "config": self.configs(configs),
            "task": task.expand(n, -1).clone(),
            "prefix": torch.stack([p for p, _ in prefixes]),
            "mask": torch.stack([m for _, m in prefixes]),
            "fidelity": torch.tensor(fidelities, dtype=torch.float32),
        }

    def observations(
        self,
        observed: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]],
        task_features: Mapping[str, float],
    ) -> dict[str, torch.Tensor] | None:
        """Observed (config, curve) pairs on a task -> conditioning examples: epoch t given epochs 1..t-1."""
        configs, curves, fidelities, targets = [], [], [], []
        for config, curve in observed:
            for t in range(1, len(curve) + 1):
                configs.append(config)
                curves.append(curve[: t - 1])
                fidelities.append(t)
                targets.append(prefix_channels(curve[t - 1], self.metric, 1.0)[0])
        if not configs:
            return None
        batch = self.inputs(configs, task_features, curves, fidelities)
        batch["target"] = torch.tensor(targets)
        return batch


@dataclass
class RunTable:
    """The runs of a meta-dataset as arrays: one row per run, curves as per-epoch input channels."""

    tasks: list[str]
    task_features: dict[str, torch.Tensor]
    config: torch.Tensor  # [runs, config features]
    target: torch.Tensor  # [runs, epochs] metric, NaN where not measured
    channels: torch.Tensor  # [runs, epochs, PREFIX_CHANNELS]
    seconds_per_epoch: torch.Tensor  # [runs], NaN for runs that did not finish
    families: dict[str, str]  # task -> its family

    @classmethod
    def from_store(cls, store: MetaDataset, encoding: Encoding) -> RunTable:
        raw = store.tasks()
        task_features = {name: encoding.task(f) for name, f in raw.items()}
        zero_shot_loss = {name: float(f.get("zero_shot_loss", 1.0)) for name, f in raw.items()}
        tasks, configs, targets, channels, seconds = [], [], [], [], []
        epochs = encoding.max_epochs
        for run in store.runs():
            if run.task not in task_features:
                raise MetaDatasetError(f"{store.path}: run {run.run_id} is on unknown task {run.task!r}")
            try:
                configs.append(encoding.space.encode(run.config))
            except ValueError as err:
                raise MetaDatasetError(f"{store.path}: run {run.run_id} does not fit the search space: {err}") from None
            points = [p["metrics"] for p in run.curve if p["fidelity"] > 0][:epochs]
            target = torch.full((epochs,), math.nan)
            chans = torch.zeros(epochs, PREFIX_CHANNELS)
            for epoch, point in enumerate(points):
                chans[epoch] = torch.tensor(prefix_channels(point, encoding.metric, zero_shot_loss[run.task]))
                target[epoch] = chans[epoch, 0]
            if run.status == "diverged":  # a diverged run stops; what it would score afterwards is nothing
                target[len(points) :] = 0.0
                chans[len(points) :, 0] = 0.0
                chans[len(points) :, 1] = MAX_RELATIVE_LOSS
            tasks.append(run.task)
            targets.append(target)
            channels.append(chans)
            seconds.append(seconds_per_epoch(run.curve) if run.status == "ok" else math.nan)
        if not tasks:
            raise MetaDatasetError(f"{store.path}: the meta-dataset has no runs to learn from")
        return cls(
            tasks, task_features, torch.from_numpy(np.stack(configs)), torch.stack(targets), torch.stack(channels),
            torch.tensor(seconds, dtype=torch.float32), store.families(),
        )  # fmt: skip

    def select(self, tasks: Sequence[str]) -> list[int]:
        return [i for i, t in enumerate(self.tasks) if t in set(tasks)]

    @classmethod
    def concat(cls, tables: Sequence[RunTable], names: Sequence[str]) -> RunTable:
        """One table of several meta-datasets' runs (``names``: their files, for errors); a task name may be in
        only one of them."""
        seen: dict[str, str] = {}
        for table, name in zip(tables, names, strict=True):
            for task in table.task_features:
                if task in seen:
                    raise MetaDatasetError(f"task {task!r} is in both {seen[task]} and {name}: rename one")
                seen[task] = name
        return cls(
            [t for table in tables for t in table.tasks],
            {t: f for table in tables for t, f in table.task_features.items()},
            torch.cat([t.config for t in tables]), torch.cat([t.target for t in tables]),
            torch.cat([t.channels for t in tables]), torch.cat([t.seconds_per_epoch for t in tables]),
            {t: f for table in tables for t, f in table.families.items()},
        )  # fmt: skip


def seconds_per_epoch(curve: Sequence[Mapping[str, Any]]) -> float:
    """Training plus validation seconds per epoch (what one fidelity step costs), without the zero-shot point."""
    start = next((p["seconds"] for p in curve if p["fidelity"] == 0), 0.0)
    trained = [p for p in curve if p["fidelity"] > 0]
    return (trained[-1]["seconds"] - start) / trained[-1]["fidelity"] if trained else math.nan


class CurveExamples(Dataset):
    """Every (run, prefix length l, target epoch t) with l < t and the metric measured at t."""

    def __init__(self, table: RunTable, runs: Sequence[int]) -> None:
        self.table = table
        self.index = [
            (r, observed, t)
            for r in runs
            for t in range(1, table.target.shape[1] + 1)
            if not math.isnan(table.target[r, t - 1])
            for observed in range(t)
        ]
        self.task_of = [table.tasks[r] for r, _, _ in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, observed, t = self.index[i]
        epochs = self.table.target.shape[1]
        mask = (torch.arange(epochs) < observed).float()
        return {
            "config": self.table.config[r],
            "task": self.table.task_features[self.table.tasks[r]],
            "prefix": self.table.channels[r] * mask[:, None],
            "mask": mask,
            "fidelity": torch.tensor(float(t)),
            "target": self.table.target[r, t - 1],
        }


class CostExamples(Dataset):
    """One example per finished run: (config, task features) -> seconds per epoch."""

    def __init__(self, table: RunTable, runs: Sequence[int]) -> None:
        self.table = table
        self.index = [r for r in runs if math.isfinite(table.seconds_per_epoch[r])]
        self.task_of = [table.tasks[r] for r in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = self.index[i]
        return {
            "config": self.table.config[r],
            "task": self.table.task_features[self.table.tasks[r]],
            "target": self.table.seconds_per_epoch[r],
        }


class TaskBatchSampler(Sampler[list[int]]):
    """Batches that each hold examples of a single task, in a seeded random order that changes every epoch."""

    def __init__(self, task_of: Sequence[str], batch_size: int, seed: int = 0, shuffle: bool = True) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (a GP batch needs pairs), got {batch_size}")
        self.by_task: dict[str, list[int]] = {}
        for i, task in enumerate(task_of):
            self.by_task.setdefault(task, []).append(i)
        self.batch_size, self.seed, self.shuffle, self.epoch = batch_size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = []
        for indices in self.by_task.values():
            order = torch.randperm(len(indices), generator=generator).tolist() if self.shuffle else range(len(indices))
            ordered = [indices[i] for i in order]
            batches += [b for b in _chunks(ordered, self.batch_size) if len(b) >= 2]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return sum(len([b for b in _chunks(v, self.batch_size) if len(b) >= 2]) for v in self.by_task.values())


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class MetaDataModule(LightningDataModule):
    """Surrogate training data from a meta-dataset, with tasks held out for evaluation.

    Args:
        path: the meta-dataset (default: the shipped one).
        target: ``performance`` (metric at a fidelity, per-task batches) or ``cost`` (seconds per epoch).
        space: the search space the runs were sampled from (YAML path).
        metric: the curve metric to predict.
        task_features: the task meta-features served, in order (as the surrogate reads them).
        holdout_tasks: tasks left out entirely (leave-one-task-out evaluation).
        own: more meta-datasets to learn from besides ``path``: a user's own experience (``tune --record_into``).
        val_tasks: tasks used for validation only.
        batch_size: examples per batch (one task per batch for ``performance``).
        seed: seed of the batch order.
    """

    def __init__(
        self,
        path: str = SHIPPED_METADATASET,
        target: Literal["performance", "cost"] = "performance",
        space: str = str(DEFAULT_SPACE),
        metric: str = "val/acc",
        task_features: list[str] = list(TASK_FEATURES),  # noqa: B006  (a default LightningCLI can show)
        holdout_tasks: list[str] | None = None,
        val_tasks: list[str] | None = None,
        batch_size: int = 128,
        seed: int = 0,
        own: list[str] | None = None,
    ) -> None:
        super().__init__()
        if target not in ("performance", "cost"):
            raise ValueError(f"target must be 'performance' or 'cost', got {target!r}")
        from lit_transfer.resources import resolve

        # ``assets/...`` finds the packaged meta-dataset from any folder
        self.path, self.target, self.batch_size, self.seed = resolve(path), target, batch_size, seed
        self.holdout_tasks, self.val_tasks = list(holdout_tasks or []), list(val_tasks or [])
        self.own = [resolve(p) for p in own or []]
        self.encoding = Encoding(space, task_features, metric)
        self.table: RunTable | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        tables = []
        for path in [self.path, *self.own]:
            if not Path(path).exists():
                raise FileNotFoundError(f"meta-dataset {path} does not exist")
            with MetaDataset(path) as store:
                tables.append(RunTable.from_store(store, self.encoding))
        self.table = tables[0] if len(tables) == 1 else RunTable.concat(tables, [self.path, *self.own])
        known = sorted(self.table.task_features)
        unknown = [t for t in self.holdout_tasks + self.val_tasks if t not in known]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; the meta-dataset has {', '.join(known)}")
        self.train_tasks = [t for t in known if t not in self.holdout_tasks + self.val_tasks]
        if not self.train_tasks:
            raise ValueError("every task is held out: nothing left to train on")

    def task_feature_stats(self) -> dict[str, torch.Tensor]:
        """Normalization of the task features over the training tasks: ``mean`` and ``scale`` (a feature that does
        not vary among them keeps scale 1), and the range ``low``..``high`` they span."""
        features = torch.stack([self.table.task_features[t] for t in self.train_tasks])
        std = features.std(0, unbiased=False)
        return {
            "mean": features.mean(0),
            "scale": torch.where(std < 1e-3, torch.ones_like(std), std),
            "low": features.min(0).values,
            "high": features.max(0).values,
        }

    def dataset(self, tasks: Sequence[str]) -> CurveExamples | CostExamples:
        examples = CurveExamples if self.target == "performance" else CostExamples
        return examples(self.table, self.table.select(tasks))

    def _loader(self, tasks: Sequence[str], shuffle: bool) -> DataLoader:
        data = self.dataset(tasks)
        if self.target == "performance":
            return DataLoader(data, batch_sampler=TaskBatchSampler(data.task_of, self.batch_size, self.seed, shuffle))
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_tasks, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_tasks, shuffle=False) if self.val_tasks else []
