"""``CostSurrogate``: seconds per epoch of a pipeline on a task, so a tuner can weigh a gain against its price.

Costs span orders of magnitude (batch size, rank, sequence length), so the regression is on log seconds: errors
are then relative, which is what matters when comparing candidates. An epoch's work grows with the task's
training tokens, so the model predicts log(seconds / training tokens) and adds the task's log training tokens
back: a larger task than any seen costs more in proportion, instead of whatever an MLP extrapolates. Other task
features stay out of the MLP by default: with the eight tasks of the shipped meta-dataset, letting them in made
held-out errors worse (leave-one-task-out MAPE 0.19 with the token features, 0.16 with the config alone).

An epoch also validates, and that part grows with the validation set, not the training set: a small task's epoch
costs more per training token than a large one's (on experience v2, a median of 1,306 s per million training
tokens on the 64-example tasks against 572 on the 512-example ones, all with 256 validation examples). With
``validation``, the MLP gives both rates: seconds = exp(a(config)) x training tokens + exp(b(config)) x validation
tokens. Leaving one family out on v2, that lowered the mean error from 0.45 to 0.34.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import MeanAbsolutePercentageError

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.space import DEFAULT_SPACE
from lit_transfer.surrogate.base import SurrogateModule
from lit_transfer.surrogate.encoders import mlp


class CostSurrogate(SurrogateModule):
    """An MLP from the config (and optionally task features) to log seconds per training token, plus the task's
    log training tokens: log seconds per epoch; with ``validation``, plus seconds per validation token times the
    task's validation tokens.

    Args:
        space: the search space (YAML path; checkpoints store the space itself).
        task_features: task meta-features read, in order (the token count comes from ``log_train_size``,
            ``mean_prompt_tokens`` and ``mean_answer_tokens``).
        mlp_task_features: those of them the MLP sees beside the config (normalized, clipped to the training
            tasks' range); default none.
        hidden: width of the MLP.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        validation: also learn what an epoch's validation costs per validation token (``log_validation_size``);
            false: every second in proportion to the training tokens (surrogates meta-trained before it existed).
    """

    def __init__(
        self,
        space: str | dict = str(DEFAULT_SPACE),
        task_features: list[str] = list(TASK_FEATURES),  # noqa: B006  (a default LightningCLI can show)
        mlp_task_features: list[str] = [],  # noqa: B006
        hidden: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        validation: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._init_encoding(space, task_features, "val/acc")
        unknown = [f for f in mlp_task_features if f not in task_features]
        if unknown:
            raise ValueError(f"mlp_task_features not among task_features: {', '.join(unknown)}")
        self.mlp_columns = [task_features.index(f) for f in mlp_task_features]
        if validation and "log_validation_size" not in task_features:
            raise ValueError("validation: true needs the task feature log_validation_size")
        rates = 2 if validation else 1  # per training token, and per validation token
        self.net = mlp([self.encoding.config_dim + len(self.mlp_columns), hidden, hidden, rates], False)
        self.val_mape = MeanAbsolutePercentageError()

    def forward(self, config: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Log seconds per epoch."""
        seen = self.normalized_task(task)[:, self.mlp_columns]
        per_token = self.net(torch.cat([config.to(self.device), seen], dim=1))
        task = task.to(self.task_mean)
        training = per_token[:, 0] + self.log_tokens(task, "log_train_size")
        if not self.hparams.validation:
            return training
        return torch.logaddexp(training, per_token[:, 1] + self.log_tokens(task, "log_validation_size"))

    def log_tokens(self, task: torch.Tensor, log_size: str) -> torch.Tensor:
        """log(examples x tokens per example) of the split whose log size is the feature ``log_size``, or 0 when the
        features are not among the task features read."""
        names = self.encoding.task_features
        if not {log_size, "mean_prompt_tokens", "mean_answer_tokens"} <= set(names):
            return torch.zeros(len(task), device=task.device)
        column = {name: task[:, names.index(name)] for name in names}
        tokens = column["mean_prompt_tokens"] + column["mean_answer_tokens"]
        return column[log_size] + tokens.clamp_min(1.0).log()

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self(batch["config"], batch["task"]), batch["target"].log())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self.val_mape.update(self(batch["config"], batch["task"]).exp(), batch["target"])
        self.log("val/mape", self.val_mape, batch_size=len(batch["target"]))

    def predict_seconds(self, configs: Sequence[Mapping[str, Any]], task_features: Mapping[str, float]) -> np.ndarray:
        """Predicted seconds per epoch (training plus validation) of each config on a task."""
        config = self.encoding.configs(configs)
        task = self.encoding.task(task_features).expand(len(configs), -1)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            seconds = self(config, task).exp()
        self.train(was_training)
        return seconds.cpu().numpy()
