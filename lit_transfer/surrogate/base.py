"""What both surrogates share: the input encoding they carry in their checkpoints, task-feature normalization
learned from the training tasks, and the optimizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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

    def normalized_task(self, task: torch.Tensor) -> torch.Tensor:
        """Task features clipped to the range the meta-training tasks span, then standardized: a new task is
        never extrapolated to (with few training tasks, that is where models go wild)."""
        task = torch.maximum(torch.minimum(task.to(self.task_mean), self.task_high), self.task_low)
        return (task - self.task_mean) / self.task_scale

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
