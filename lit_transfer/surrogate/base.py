"""What both surrogates share: the input encoding they carry in their checkpoints, task-feature normalization
learned from the training tasks, and the optimizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from lightning.pytorch import LightningModule

from lit_transfer.surrogate.data import Encoding, MetaDataModule


class SurrogateModule(LightningModule):
    """Base of ``PerformanceSurrogate`` and ``CostSurrogate``; subclasses call ``save_hyperparameters`` first."""

    def _init_encoding(self, space: str | Mapping[str, Any], task_features: Sequence[str], metric: str) -> None:
        self.encoding = Encoding(space, task_features, metric)
        # the space itself, not its path, goes into the checkpoint: a shipped surrogate must load anywhere
        self.hparams["space"] = self.encoding.space.to_dict()
        task_dim = len(self.encoding.task_features)
        for name, value in (("mean", 0.0), ("scale", 1.0), ("low", -torch.inf), ("high", torch.inf)):
            self.register_buffer(f"task_{name}", torch.full((task_dim,), value))

    def on_fit_start(self) -> None:
        # gpytorch shares one transform module among all its constraints: another surrogate put in eval mode (one
        # trained earlier in the same process) leaves it in eval mode here too
        self.train()
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, MetaDataModule):
            raise TypeError("surrogates train on a lit_transfer.surrogate.MetaDataModule")
        theirs, ours = datamodule.encoding, self.encoding
        if theirs.space.feature_names() != ours.space.feature_names() or theirs.task_features != ours.task_features:
            raise ValueError("the data module encodes a different search space or task features than the model")
        if theirs.metric != ours.metric:
            raise ValueError(f"the data module serves {theirs.metric!r}, the model predicts {ours.metric!r}")
        for name, value in datamodule.task_feature_stats().items():
            getattr(self, f"task_{name}").copy_(value)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The class goes into the checkpoint: a pretrained surrogate loads as whatever its recipe built."""
        checkpoint["surrogate_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    def normalized_task(self, task: torch.Tensor) -> torch.Tensor:
        """Task features clipped to the range the meta-training tasks span, then standardized: a new task is
        never extrapolated to (with few training tasks, that is where models go wild)."""
        task = torch.maximum(torch.minimum(task.to(self.task_mean), self.task_high), self.task_low)
        return (task - self.task_mean) / self.task_scale

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@runtime_checkable
class PerformancePredictor(Protocol):
    """What Transfer and ``suggest`` use of a performance surrogate — and nothing else of it."""

    def predict(
        self, configs: Sequence[Mapping[str, Any]], task_features: Mapping[str, float],
        curves: Sequence[Sequence[Mapping[str, float]]] | None = None, fidelity: int | Sequence[int] | None = None,
        observed: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]] = (),
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Mean and std of the metric of ``configs`` at ``fidelity``, given their curves so far and conditioned on
        the task's ``observed`` (config, curve) pairs."""


@runtime_checkable
class RefittablePredictor(PerformancePredictor, Protocol):
    """A performance surrogate that task-specific methods (QuickTune, DyHPO) fit to the new task's observations."""

    def refit(
        self, observed: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]],
        task_features: Mapping[str, float], steps: int = 20, lr: float = 1e-3, seed: int = 0,
    ) -> None:  # fmt: skip
        """Fit the model's weights to one task's observations, starting from where ``reset`` goes back to."""

    def reset(self) -> None:
        """Back to the meta-learned weights."""

    def untrained(self, seed: int = 0) -> PerformancePredictor:
        """The same model without meta-learning, its fresh weights drawn with ``seed``."""


@runtime_checkable
class CostPredictor(Protocol):
    """What tuning methods use of a cost surrogate."""

    def predict_seconds(self, configs: Sequence[Mapping[str, Any]], task_features: Mapping[str, float]) -> np.ndarray:
        """Predicted seconds of one epoch of each config on the task."""
