"""``Forecast``: a config's metric at a later epoch from what the experience expects of it and what the new task
has shown so far, with a calibrated variance.

Everything here is fitted on held-out predictions: each remembered task is predicted by the experience of the
other families only (``ExperienceMean`` with its family left out), so the coefficients and the variance are those
of a new kind of task, not of a task the memory already holds.

- **Mean.** Per (configs the task has run, bucketed: ``CONTEXTS``; epochs observed ``k``; target epoch ``t``),
  least squares of
  the metric at ``t`` on: the experience at ``t``; the config's own deviation from the experience at its last
  epoch; the task's shift, the mean deviation of its observed configs (a level the experience missed, which every
  config of the task shares); the config's last value; 1; and the task's ratio (observed over expected, less 1)
  times the experience at ``t``: a task where everything learns faster lifts a config that learns in proportion
  to what it learns, which a shift alone cannot say. Separating the config's deviation from the task's mean
  deviation (a within-between regression) keeps a task's level from being mistaken for how a config ranks.
- **Variance.** ``a + b * spread + c / (1 + mass) + d * deviation^2 + e * shift^2 + f * dispersion``: the
  experience's disagreement near the query, its absence (kernel mass), how far the config and the task have
  strayed from it so far (a curve that starts far below what was expected may still catch up, or not), and how
  much the task's observed configs disagree with one another about that (the variance of their deviations around
  the shift: a task whose configs all moved alike from what was expected leaves little for a config's own
  deviation, one where they scattered leaves much), fitted by Gaussian likelihood on the held-out residuals, then
  scaled so that 95% of them fall within 1.96 standard deviations (split-conformal on the held-out families).
  Without the dispersion, intervals after a task's first epochs were as wide on a family whose configs all end
  alike as on one whose configs scatter: leaving one family out of experience v2, after 3 configs' 3 epochs, the
  95% intervals of 5 of the 14 families covered more than 99% of what followed (0.996-1.000), against 3 with it.
- **How much the task has shown.** A task's shift and ratio estimated from one config are noisier than from
  eight: each is fitted per bucket of how many configs the task has run, on rows where the shift comes from that
  many configs (the config itself, when it has epochs, and others drawn at random, each at a random early
  epoch), as it does while tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

COLUMNS = 6  # experience at t, own deviation, task shift, last value, 1, task ratio x experience at t
RATIO_RANGE = (-1.0, 3.0)  # a ratio of near-zero expectations says nothing beyond this
CONTEXTS = (0, 1, 2, 4, 8)  # configs the task has run: each count uses the coefficients of the largest bucket <= it
OTHERS_EPOCHS = 4  # while fitting, the other configs a shift comes from were run 1..4 epochs
VARIANCE_TERMS = 6  # 1, spread, absence, deviation^2, shift^2, dispersion
RIDGE = 1e-4


@dataclass
class HeldOut:
    """One remembered task predicted from the other families: the experience's ``expected`` curves [R, E], their
    ``spread`` [R, E] and ``mass`` [R], and the task's ``actual`` recorded curves [R, E]; ``reweigh``, where the
    experience learns from observations: given per config the configs its task observed [R, O], at which epochs
    [R, O] and their values [R, O], the expected curves, spread and mass so informed, and the expectation at each
    observed point [R, O]."""

    expected: torch.Tensor
    spread: torch.Tensor
    mass: torch.Tensor
    actual: torch.Tensor
    reweigh: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] | None = None


def dispersion(deviations: torch.Tensor) -> torch.Tensor:
    """How much a task's observed configs disagree about their deviation from the experience (the last dimension):
    the variance of the deviations around their mean (the task's shift); 0 for fewer than two."""
    if deviations.shape[-1] < 2:
        return torch.zeros(deviations.shape[:-1], dtype=deviations.dtype, device=deviations.device)
    return deviations.var(-1, unbiased=False)


def design(expected: torch.Tensor, last: torch.Tensor, deviation: torch.Tensor, shift: torch.Tensor,
           ratio: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The regression columns [Q, COLUMNS] of each query (``t``: target epoch index)."""
    at_t = expected.gather(1, t.unsqueeze(1)).squeeze(1)
    return torch.stack([at_t, deviation, shift, last, torch.ones_like(at_t), ratio * at_t], dim=1)


def task_ratio(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """How much more (or less) the observed values are than expected, over all of them (the last dimension):
    sum / sum - 1."""
    eps = 0.01 * actual.shape[-1]
    return ((actual.sum(-1) + eps) / (expected.sum(-1) + eps) - 1.0).clamp(*RATIO_RANGE)


class Forecast(nn.Module):
    """Coefficients and variance per (context, k, t); ``fit`` learns them from ``HeldOut`` tasks."""

    def __init__(self, max_epochs: int) -> None:
        super().__init__()
        coef = torch.zeros(len(CONTEXTS), max_epochs, max_epochs, COLUMNS)
        coef[..., 0] = 1.0  # unfitted: the experience alone
        self.register_buffer("coef", coef)
        variance = torch.zeros(len(CONTEXTS), max_epochs, max_epochs, VARIANCE_TERMS)
        variance[..., 0] = 0.01
        self.register_buffer("variance", variance)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """A checkpoint from before the dispersion term had none: its weight is 0, so it predicts as it did."""
        variance = state_dict.get(prefix + "variance")
        if variance is not None and variance.shape[-1] < VARIANCE_TERMS:
            missing = variance.new_zeros(*variance.shape[:-1], VARIANCE_TERMS - variance.shape[-1])
            state_dict[prefix + "variance"] = torch.cat([variance, missing], -1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def max_epochs(self) -> int:
        return self.coef.shape[1]

    def forward(
        self, expected: torch.Tensor, spread: torch.Tensor, mass: torch.Tensor, last: torch.Tensor,
        observed: torch.Tensor, shift: torch.Tensor, ratio: torch.Tensor, runs: torch.Tensor, target: torch.Tensor,
        spread_of_runs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean and variance [Q] of each query at epoch ``target`` (1-based) after ``observed`` epochs of its own
        (its ``last`` value; 0 if none), on a task that has run ``runs`` configs (the query's own run among them)
        whose mean deviation from the experience is ``shift``, whose ``task_ratio`` is ``ratio`` and whose
        deviations' ``dispersion`` is ``spread_of_runs`` (default 0). A query with epochs on a task said to have run
        nothing (``runs`` 0) is itself that task's one run: its own deviation and ratio stand for the task's."""
        k = observed.long().clamp(0, self.max_epochs - 1)
        t = (target.long() - 1).clamp(0, self.max_epochs - 1)
        t = torch.maximum(t, k)  # an epoch already observed is predicted as the next one would be
        at_k = (k - 1).clamp_min(0).unsqueeze(1)
        seen = (observed > 0).to(expected)
        expected_at_k = expected.gather(1, at_k).squeeze(1)
        deviation = (last - expected_at_k) * seen
        alone = (runs == 0) & (observed > 0)
        shift = torch.where(alone, deviation, shift)
        ratio = torch.where(alone, task_ratio(last.unsqueeze(1), expected_at_k.unsqueeze(1)), ratio)
        context = context_of(torch.where(alone, torch.ones_like(runs), runs))
        shown = (context > 0).to(expected)
        x = design(expected, last * seen, deviation, shift * shown, ratio * shown, t)
        mean = (self.coef[context, k, t] * x).sum(1)
        if spread_of_runs is None:
            spread_of_runs = torch.zeros_like(mean)
        spread_of_runs = torch.where(alone, torch.zeros_like(mean), spread_of_runs) * shown
        terms = _terms(spread.gather(1, t.unsqueeze(1)).squeeze(1), mass, x, spread_of_runs)
        return mean, (self.variance[context, k, t] * terms).sum(1)

    def fit(self, held_out: Sequence[HeldOut], steps: int = 300, seed: int = 0) -> None:
        """Least squares of the mean and likelihood-then-conformal variance per (context, k, t)."""
        if not held_out:
            return
        generator = torch.Generator().manual_seed(seed)
        draws: dict = {}  # (task, runs, k) -> the shift and ratio drawn, the same for every target epoch
        epochs = self.max_epochs
        for context, runs in enumerate(CONTEXTS):
            for k in range(epochs):
                if k and not runs:
                    continue  # a config with epochs is a run of the task
                for t in range(k, epochs):
                    x, y, spread, mass, spread_of_runs = self._rows(held_out, runs, k, t, generator, draws)
                    columns = _used(runs, k)
                    solution = torch.linalg.solve(
                        x[:, columns].T @ x[:, columns] + RIDGE * torch.eye(len(columns)), x[:, columns].T @ y
                    )  # fmt: skip
                    coef = torch.zeros(COLUMNS)
                    coef[columns] = solution
                    self.coef[context, k, t] = coef
                    residual = y - x @ coef
                    terms = _terms(spread, mass, x, spread_of_runs)
                    self.variance[context, k, t] = _fit_variance(residual, terms, steps)

    @staticmethod
    def _rows(
        held_out: Sequence[HeldOut], runs: int, k: int, t: int, generator: torch.Generator, draws: dict
    ) -> tuple[torch.Tensor, ...]:
        """Every config of every task as a query after ``k`` of its own epochs, on the task having run ``runs``
        configs: itself (when ``k`` > 0) and others drawn at random, each at a random early epoch."""
        xs, ys, spreads, masses, dispersions = [], [], [], [], []
        for index, task in enumerate(held_out):
            n = task.actual.shape[0]
            at = torch.full((n,), t, dtype=torch.long)
            others = runs - (1 if k else 0)
            if runs and others > n - 1:
                continue  # too few configs to draw that many runs from
            if (index, runs, k) not in draws:
                draws[index, runs, k] = Forecast._draw(task, runs, k, generator)
            expected, spread, mass, shift, ratio, spread_of_runs = draws[index, runs, k]
            if k:
                last = task.actual[:, k - 1]
                deviation = last - expected[:, k - 1]
            else:
                last = deviation = torch.zeros(n)
            xs.append(design(expected, last, deviation, shift, ratio, at))
            ys.append(task.actual[:, t])
            spreads.append(spread[:, t])
            masses.append(mass)
            dispersions.append(spread_of_runs)
        if not xs:  # no task has that many configs: the bucket below stands in (its rows, not its coefficients)
            return Forecast._rows(held_out, CONTEXTS[CONTEXTS.index(runs) - 1], k, t, generator, draws)
        return torch.cat(xs), torch.cat(ys), torch.cat(spreads), torch.cat(masses), torch.cat(dispersions)

    @staticmethod
    def _draw(task: HeldOut, runs: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Each config of ``task`` on a task that has run ``runs`` configs: itself after ``k`` epochs (when ``k`` >
        0) and others drawn at random, each at a random early epoch. What the experience then expects (reweighed by
        those observations where it can be), its spread and mass, and the task's shift, ratio and dispersion."""
        n, epochs = task.actual.shape
        if not runs:
            zero = torch.zeros(n)
            return task.expected, task.spread, task.mass, zero, zero, zero
        others = runs - (1 if k else 0)
        keys = torch.rand(n, n, generator=generator)
        keys.fill_diagonal_(2.0)  # a config is not one of its own others
        observed = keys.argsort(1)[:, :others]  # [n, others]
        at_epoch = torch.randint(0, min(OTHERS_EPOCHS, epochs), (n, others), generator=generator)
        if k:
            observed = torch.cat([observed, torch.arange(n)[:, None]], 1)
            at_epoch = torch.cat([at_epoch, torch.full((n, 1), k - 1)], 1)
        actual = task.actual[observed, at_epoch]
        if task.reweigh is None:
            expected, spread, mass = task.expected, task.spread, task.mass
            at_observed = task.expected[observed, at_epoch]
        else:
            expected, spread, mass, at_observed = task.reweigh(observed, at_epoch, actual)
        deviations = actual - at_observed
        return expected, spread, mass, deviations.mean(1), task_ratio(actual, at_observed), dispersion(deviations)


def context_of(runs: torch.Tensor) -> torch.Tensor:
    """The ``CONTEXTS`` bucket of each count of configs run: the largest bucket not above it."""
    buckets = torch.tensor(CONTEXTS, device=runs.device)
    return (runs.long().unsqueeze(1) >= buckets).sum(1) - 1


def _used(runs: int, k: int) -> list[int]:
    """The columns a (context, k) model uses: own deviation and last value only once the config has epochs, the
    task's shift and ratio only once the task has run something."""
    return [0, *([1, 3] if k else []), *([2, 5] if runs else []), 4]


def _terms(spread: torch.Tensor, mass: torch.Tensor, x: torch.Tensor, spread_of_runs: torch.Tensor) -> torch.Tensor:
    """The variance's terms [Q, VARIANCE_TERMS] of each query (``x``: its ``design`` row; ``spread_of_runs``: the
    ``dispersion`` of its task's runs)."""
    return torch.stack(
        [torch.ones_like(spread), spread, 1.0 / (1.0 + mass), x[:, 1] ** 2, x[:, 2] ** 2, spread_of_runs], dim=1
    )


def _fit_variance(residual: torch.Tensor, terms: torch.Tensor, steps: int) -> torch.Tensor:
    """Non-negative weights of the ``terms`` maximizing the Gaussian likelihood of ``residual``, then all scaled
    so that 95% of the residuals lie within 1.96 standard deviations."""
    start = torch.tensor([max(float(residual.var()), 1e-6), 0.5, 1e-3, 0.1, 0.1, 0.1])
    log_weights = start.log().requires_grad_()
    optimizer = torch.optim.Adam([log_weights], lr=0.05)
    squared = residual.detach() ** 2
    for _ in range(steps):
        optimizer.zero_grad()
        var = terms @ log_weights.exp()
        (0.5 * (var.log() + squared / var)).mean().backward()
        optimizer.step()
    weights = log_weights.detach().exp()
    scale = torch.quantile(residual.abs() / (terms @ weights).sqrt(), 0.95) / 1.96
    return weights * scale**2
