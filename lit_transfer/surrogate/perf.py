"""``PerformanceSurrogate``: a deep-kernel Gaussian process over (config, task, curve prefix, fidelity).

A neural feature extractor maps (config, curve prefix, fidelity) to a small vector; a GP with a linear mean and a
Matérn (or RBF) kernel on that vector gives mean and uncertainty, on top of a level the task's meta-features
predict (see ``encoders``). Meta-training maximizes the exact marginal likelihood of batches drawn
from one task at a time (as DyHPO and Quick-Tune do): the mean learns what holds across tasks, the kernel how
results of one task co-vary. On a new task the GP conditions on that task's own observations (at most
``max_context`` of them, so a prediction costs the same however large the meta-dataset), and before any
observation it predicts from the learned mean with the learned prior variance.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gpytorch
import numpy as np
import torch
from torchmetrics import MeanAbsoluteError, MeanMetric

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.space import DEFAULT_SPACE
from lit_transfer.surrogate.base import SurrogateModule
from lit_transfer.surrogate.data import PREFIX_CHANNELS
from lit_transfer.surrogate.encoders import FeatureExtractor, TaskEncoder

Observed = Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]]


class DeepKernelGP(gpytorch.models.ExactGP):
    """An exact GP on extracted features; its training data are set per batch (meta-training) or per task."""

    def __init__(self, feature_dim: int, kernel: str, likelihood: gpytorch.likelihoods.GaussianLikelihood) -> None:
        super().__init__(None, None, likelihood)
        self.mean_module = gpytorch.means.LinearMean(feature_dim)
        if kernel == "matern":
            base = gpytorch.kernels.MaternKernel(nu=2.5)
        elif kernel == "rbf":
            base = gpytorch.kernels.RBFKernel()
        else:
            raise ValueError(f"kernel must be 'matern' or 'rbf', got {kernel!r}")
        # + a constant: an offset shared by all results of a task, which its observations then reveal
        self.covar_module = gpytorch.kernels.ScaleKernel(base) + gpytorch.kernels.ConstantKernel()

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


class PerformanceSurrogate(SurrogateModule):
    """Predicts the metric (mean and standard deviation) of a config at an epoch, given its curve so far.

    Args:
        space: the search space (YAML path; checkpoints store the space itself).
        task_features: task meta-features read, in order.
        metric: the curve metric predicted.
        hidden: width of the feature extractor.
        feature_dim: size of the feature vector the GP sees.
        kernel: ``matern`` (5/2) or ``rbf``.
        max_context: most observations of a new task the GP conditions on (the most recent are kept).
        lr: AdamW learning rate of the feature extractor and the GP mean.
        gp_lr: learning rate of the kernel and noise hyperparameters.
        weight_decay: AdamW weight decay.
        prior_weight: weight of the prior-predictive likelihood (the GP before any observation of a task) next to
            the batch's joint marginal likelihood; it trains the mean and prior variance that zero-shot
            predictions rest on.
        metric_range: the values the metric can take (accuracy: 0..1); predicted means are clipped to it, so
            configs predicted to fail tie at 0 as their results do. ``None``: no clipping.
    """

    def __init__(
        self,
        space: str | dict = str(DEFAULT_SPACE),
        task_features: list[str] = list(TASK_FEATURES),  # noqa: B006  (a default LightningCLI can show)
        metric: str = "val/acc",
        hidden: int = 64,
        feature_dim: int = 16,
        kernel: Literal["matern", "rbf"] = "matern",
        max_context: int = 256,
        lr: float = 1e-3,
        gp_lr: float = 1e-2,
        weight_decay: float = 1e-4,
        prior_weight: float = 1.0,
        metric_range: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._init_encoding(space, task_features, metric)
        enc = self.encoding
        self.extractor = FeatureExtractor(enc.config_dim, enc.max_epochs, PREFIX_CHANNELS, hidden, feature_dim)
        self.task_level = TaskEncoder(len(enc.task_features), enc.max_epochs, hidden // 2)
        likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-4))
        self.gp = DeepKernelGP(feature_dim, kernel, likelihood)
        # start from the scale of the data (a metric in [0, 1]), not gpytorch's unit defaults
        likelihood.noise = 1e-2
        self.gp.covar_module.kernels[0].outputscale = 0.1
        self.gp.covar_module.kernels[1].constant = torch.tensor(0.01)
        self.max_context = max_context
        self.val_nll = MeanMetric()
        self.val_mae = MeanAbsoluteError()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The GP's few hyperparameters get a larger step than the network's many weights."""
        gp_params = [p for n, p in self.gp.named_parameters() if not n.startswith("mean_module")]
        gp_ids = {id(p) for p in gp_params}
        rest = [p for p in self.parameters() if id(p) not in gp_ids]
        return torch.optim.AdamW(
            [{"params": rest}, {"params": gp_params, "lr": self.hparams.gp_lr, "weight_decay": 0.0}],
            lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
        )  # fmt: skip

    def on_train_end(self) -> None:
        """The GP keeps the last training batch's features (and their graph, which cannot be deep-copied, as
        QuickTune copies the surrogate); a new task brings its own."""
        self.gp.train_inputs, self.gp.train_targets = None, None

    def features(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The GP's input features and the task level the GP's output is added to."""
        fidelity = batch["fidelity"].to(self.device)
        features = self.extractor(
            batch["config"].to(self.device), batch["prefix"].to(self.device), batch["mask"].to(self.device), fidelity
        )
        return features, self.task_level(self.normalized_task(batch["task"]), fidelity)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Negative log likelihood of one task's batch: jointly under the GP, plus ``prior_weight`` x under the
        prior alone (each point on its own, as before any observation of the task)."""
        return sum(self._losses(batch))

    def _losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        features, level = self.features(batch)
        target = batch["target"].to(features) - level
        self.gp.set_train_data(features, target, strict=False)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.gp.likelihood, self.gp)
        joint = -mll(self.gp(features), target)
        mean, var = self.gp.mean_module(features), self.gp.covar_module(features, diag=True) + self.gp.likelihood.noise
        prior = torch.nn.functional.gaussian_nll_loss(mean, target, var, full=True)
        return joint, self.hparams.prior_weight * prior

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        joint, prior = self._losses(batch)
        loss = joint + prior
        logged = {"train/loss": loss, "train/joint_nll": joint, "train/prior_nll": prior}
        self.log_dict(logged, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Validation tasks are new tasks: predictions before any of their observations."""
        mean, std = self.predict_distribution(batch)
        nll = 0.5 * (((batch["target"] - mean) / std) ** 2 + 2 * std.log() + np.log(2 * np.pi))
        self.val_nll.update(nll)
        self.val_mae.update(mean, batch["target"])
        self.log_dict({"val/nll": self.val_nll, "val/mae": self.val_mae}, batch_size=len(mean))

    def predict_distribution(
        self, inputs: Mapping[str, torch.Tensor], context: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation for encoded ``inputs``, conditioned on encoded ``context`` observations of
        the same task (``Encoding.observations``); without context, the meta-learned prior."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                features, level = self.features(inputs)
                noise = self.gp.likelihood.noise
                if context is None or len(context["target"]) == 0:
                    mean = self.gp.mean_module(features)
                    var = self.gp.covar_module(features, diag=True) + noise
                else:
                    keep = slice(-self.max_context, None)  # the most recent observations
                    context_features, context_level = self.features({k: v[keep] for k, v in context.items()})
                    target = context["target"][keep].to(features) - context_level
                    self.gp.set_train_data(context_features, target, strict=False)
                    prediction = self.gp.likelihood(self.gp(features))
                    mean, var = prediction.mean, prediction.variance
        finally:
            self.train(was_training)
        return mean + level, var.clamp_min(1e-10).sqrt()

    def predict(
        self,
        configs: Sequence[Mapping[str, Any]],
        task_features: Mapping[str, float],
        curves: Sequence[Sequence[Mapping[str, float]]] | None = None,
        fidelity: int | Sequence[int] | None = None,
        observed: Observed = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted metric (mean, std) of ``configs`` at ``fidelity`` (default: the last epoch) on a task.

        Args:
            configs: pipeline configs (every hyperparameter of the space).
            task_features: the task's meta-features (``metadataset.build.task_features``).
            curves: each config's observed curve so far, a metrics dict per epoch (default: none observed).
            fidelity: the epoch to predict, one for all or one per config.
            observed: (config, curve) pairs already run on this task, to condition on.
        """
        inputs = self.encoding.inputs(configs, task_features, curves, fidelity)
        context = self.encoding.observations(observed, task_features)
        mean, std = self.predict_distribution(inputs, context)
        if self.hparams.metric_range is not None:
            mean = mean.clamp(*self.hparams.metric_range)
        return mean.cpu().numpy(), std.cpu().numpy()

    # ------------------------------------------------------------------ adapting to one task
    def refit(
        self, observed: Observed, task_features: Mapping[str, float], steps: int = 20, lr: float = 1e-3, seed: int = 0
    ) -> None:
        """From the weights it was meta-trained to (``reset``), ``steps`` Adam steps of its own loss on one task's
        observations (task-specific Bayesian optimization, as QuickTune does); fewer than two observations leave it
        as it is."""
        self.reset()
        batch = self.encoding.observations(observed, task_features)
        if batch is None or len(batch["target"]) < 2:
            return
        batch = {k: v[-self.hparams.max_context :] for k, v in batch.items()}
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for _ in range(steps):
                optimizer.zero_grad()
                self.loss(batch).backward()
                optimizer.step()
        self.eval()

    def reset(self) -> None:
        """Back to the weights it had when it was first refit (its meta-learned ones)."""
        if getattr(self, "_meta_weights", None) is None:
            self._meta_weights = copy.deepcopy(self.state_dict())
        else:
            self.load_state_dict(self._meta_weights)

    def untrained(self, seed: int = 0) -> PerformanceSurrogate:
        """The same model with fresh weights drawn with ``seed`` (no meta-learning) and this one's task-feature
        normalization. Seeded here, not by whatever the process drew before: a DyHPO run is the same run in any
        process, resumed or not."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            fresh = type(self)(**dict(self.hparams))
        task_buffers = {k: v for k, v in self.state_dict().items() if k.startswith("task_")}
        fresh.load_state_dict({**fresh.state_dict(), **task_buffers})
        return fresh.eval()
