"""``ExperienceSurrogate``: the performance surrogate Transfer tunes with — the recorded experience near a config and
a task (``ExperienceMean``), corrected by what the new task has shown so far (``Forecast``).

Why this design rather than a deep-kernel GP whose task features add a level: a config's prediction *is* the
results of similar configs on similar tasks, so a task whose neighbours ranked configs differently gets a different
ranking (interactions come from the data, not from a network asked to learn them from 32 tasks), and where no
recorded run is near (a config far from every recorded one, a task unlike every remembered one) the kernel mass
behind the prediction falls and its variance grows. Everything is fitted leave-one-family-out on the experience
itself, so the lengthscales, the forecast's coefficients and its calibrated variance are those of a new kind of
task. Meta-training takes no gradient steps: ``on_fit_start`` remembers the training tasks' runs and fits the
rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.space import DEFAULT_SPACE
from lit_transfer.surrogate.base import SurrogateModule
from lit_transfer.surrogate.data import prefix_channels
from lit_transfer.surrogate.experience import LIKELIHOOD_SCALES, PRIOR_MASSES, ExperienceMean
from lit_transfer.surrogate.forecast import Forecast, dispersion, task_ratio

Observed = Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]]


class ExperienceSurrogate(SurrogateModule):
    """Predicts a config's metric at an epoch on a task from the recorded runs and the task's curves so far.

    Args:
        space: the search space (YAML path or dict).
        metric: the curve metric predicted.
        task_features: the task meta-features it reads, in order.
        variance_steps: Adam steps of each (context, observed epochs, target epoch) variance fit.
        metric_range: clip predicted means to this range (``null``: no clipping).
        prior_masses: weights of the task prior tried (chosen leave-one-family-out with the lengthscales).
        likelihood_scales: noise scales tried for the likelihood that reweighs the remembered tasks by how well they
            predicted the new task's observed values (chosen leave-one-family-out; ``.inf``: no reweighing).
        thin_to: while the prior's weight is chosen, each config recorded on several tasks is kept on only this
            many of them, one number drawn per (held-out task, config), 0: all (``ExperienceMean.thinned``); empty:
            never thinned.
    """

    def __init__(
        self, space: str | Mapping[str, Any] = str(DEFAULT_SPACE), metric: str = "val/acc",
        task_features: Sequence[str] = TASK_FEATURES, variance_steps: int = 300,
        metric_range: tuple[float, float] | None = None, prior_masses: Sequence[float] = PRIOR_MASSES,
        likelihood_scales: Sequence[float] = LIKELIHOOD_SCALES, thin_to: Sequence[int] = (),
    ) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self._init_encoding(space, task_features, metric)
        enc = self.encoding
        self.experience = ExperienceMean(enc.config_dim, len(enc.task_features), enc.max_epochs)
        self.forecast = Forecast(enc.max_epochs)

    def on_fit_start(self) -> None:
        """Task normalization (``SurrogateModule``); then the training tasks' runs become the experience, its
        lengthscales are chosen and the forecast is fitted, each family predicted from the others."""
        super().on_fit_start()
        data = self.trainer.datamodule
        if data.target != "performance":
            raise ValueError(f"an ExperienceSurrogate learns from performance curves, not {data.target!r}")
        from lit_transfer.surrogate.metrics import tau

        rows = data.table.select(data.train_tasks)
        tasks = [data.table.tasks[r] for r in rows]
        self.experience.remember(
            data.table.config[rows], tasks, [data.table.families[t] for t in tasks], data.table.task_features,
            data.table.target[rows],
        )  # fmt: skip
        self.experience.choose_scales(self.normalized_task, tau, self.hparams.prior_masses, self.hparams.thin_to)
        self.experience.choose_likelihood(self.normalized_task, tau, self.hparams.likelihood_scales)
        self.forecast.fit(self.experience.held_out(self.normalized_task), self.hparams.variance_steps)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing to step: everything is fitted in ``on_fit_start``."""
        return None

    def configure_optimizers(self) -> None:
        return None

    def predict(
        self, configs: Sequence[Mapping[str, Any]], task_features: Mapping[str, float],
        curves: Sequence[Sequence[Mapping[str, float]]] | None = None, fidelity: int | Sequence[int] | None = None,
        observed: Observed = (),
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Predicted metric (mean, std) of ``configs`` at ``fidelity`` (default: the last epoch) on a task, given
        each config's ``curves`` so far and the task's ``observed`` (config, curve) pairs (``PerformancePredictor``)."""
        n = len(configs)
        inputs = self.encoding.inputs(configs, task_features, curves, fidelity)  # validates shapes and epochs
        seen = inputs["mask"].sum(1)  # each config's observed epochs; its values are the prefix's metric channel
        last = inputs["prefix"][..., 0].gather(1, (seen.long() - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            likelihood, shift, ratio, spread_of_runs, runs = self._observed(observed, inputs["task"][0])
            expected, spread, mass = self._experience(inputs["config"], inputs["task"][0], likelihood)
            shift, ratio, spread_of_runs, runs = (x.expand(n) for x in (shift, ratio, spread_of_runs, runs))
            mean, var = self.forecast(
                expected, spread, mass, last, seen, shift, ratio, runs, inputs["fidelity"], spread_of_runs
            )  # fmt: skip
        if self.hparams.metric_range is not None:
            mean = mean.clamp(*self.hparams.metric_range)
        return mean.numpy(), var.clamp_min(1e-8).sqrt().numpy()

    def _experience(
        self, config: torch.Tensor, task: torch.Tensor, likelihood: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        memory = self.normalized_task(self.experience.tasks)
        tasks = task.expand(len(config), -1)
        return self.experience(config.float(), tasks, memory, self.normalized_task(tasks), log_likelihood=likelihood)

    def _observed(self, observed: Observed, task: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the task's runs so far (each at its last epoch) say: how well each remembered task predicted them
        (the log-likelihood that reweighs the experience), then the task's mean deviation from the experience so
        reweighed, their ratio (``task_ratio``), how much their deviations disagree (``dispersion``) and how many
        they are."""
        pairs = [(c, curve) for c, curve in observed if len(curve)]
        if not pairs:
            return None, torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0)
        configs = self.encoding.configs([c for c, _ in pairs]).float()
        at = torch.tensor([min(len(curve), self.encoding.max_epochs) - 1 for _, curve in pairs])
        last = torch.tensor([prefix_channels(curve[-1], self.encoding.metric, 1.0)[0] for _, curve in pairs])
        sums, _, counts = self.experience.tables(configs)
        likelihood = self.experience.log_likelihood(self.experience.per_task(sums, counts), last, at)
        expected, _, _ = self._experience(configs, task, likelihood)
        at_last = expected.gather(1, at.unsqueeze(1)).squeeze(1)
        deviations = last - at_last
        ratio = task_ratio(last, at_last)
        return likelihood, deviations.mean(), ratio, dispersion(deviations), torch.tensor(len(pairs))
