"""``Forecast``: a config's metric at a later epoch from what the experience expects of it and what the new task
has shown so far, with a calibrated variance.

Everything here is fitted on held-out predictions: each remembered task is predicted by the experience of the
other families only (``ExperienceMean`` with its family left out), so the coefficients and the variance are those
of a new kind of task, not of a task the memory already holds.

- **Mean.** Per (epochs observed ``k``, target epoch ``t``, whether the task has shown anything), least squares of
  the metric at ``t`` on: the experience at ``t``; the config's own deviation from the experience at its last
  epoch; the task's shift, the mean deviation of its observed configs (a level the experience missed, which every
  config of the task shares); the config's last value; 1; and the task's ratio (observed over expected, less 1)
  times the experience at ``t``: a task where everything learns faster lifts a config that learns in proportion
  to what it learns, which a shift alone cannot say. Separating the config's deviation from the task's mean
  deviation (a within-between regression) keeps a task's level from being mistaken for how a config ranks.
- **Variance.** ``a + b * spread + c / (1 + mass) + d * deviation^2 + e * shift^2``: the experience's
  disagreement near the query, its absence (kernel mass), and how far the config and the task have strayed from
  it so far (a curve that starts far below what was expected may still catch up, or not), fitted by Gaussian
  likelihood on the held-out residuals, then scaled so that 95% of them fall within 1.96 standard deviations
  (split-conformal on the held-out families).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

COLUMNS = 6  # experience at t, own deviation, task shift, last value, 1, task ratio x experience at t
RATIO_RANGE = (-1.0, 3.0)  # a ratio of near-zero expectations says nothing beyond this
VARIANCE_TERMS = 5  # 1, spread, absence, deviation^2, shift^2
RIDGE = 1e-4


@dataclass
class HeldOut:
    """One remembered task predicted from the other families: the experience's ``expected`` curves [R, E], their
    ``spread`` [R, E] and ``mass`` [R], and the task's ``actual`` recorded curves [R, E]."""

    expected: torch.Tensor
    spread: torch.Tensor
    mass: torch.Tensor
    actual: torch.Tensor


def design(expected: torch.Tensor, last: torch.Tensor, deviation: torch.Tensor, shift: torch.Tensor,
           ratio: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The regression columns [Q, COLUMNS] of each query (``t``: target epoch index)."""
    at_t = expected.gather(1, t.unsqueeze(1)).squeeze(1)
    return torch.stack([at_t, deviation, shift, last, torch.ones_like(at_t), ratio * at_t], dim=1)


def task_ratio(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """How much more (or less) the observed values are than expected, over all of them: sum / sum - 1."""
    eps = 0.01 * actual.numel()
    return ((actual.sum() + eps) / (expected.sum() + eps) - 1.0).clamp(*RATIO_RANGE)


class Forecast(nn.Module):
    """Coefficients and variance per (context, k, t); ``fit`` learns them from ``HeldOut`` tasks."""

    def __init__(self, max_epochs: int) -> None:
        super().__init__()
        coef = torch.zeros(2, max_epochs, max_epochs, COLUMNS)
        coef[..., 0] = 1.0  # unfitted: the experience alone
        self.register_buffer("coef", coef)
        variance = torch.zeros(2, max_epochs, max_epochs, VARIANCE_TERMS)
        variance[..., 0] = 0.01
        self.register_buffer("variance", variance)

    @property
    def max_epochs(self) -> int:
        return self.coef.shape[1]

    def forward(
        self, expected: torch.Tensor, spread: torch.Tensor, mass: torch.Tensor, last: torch.Tensor,
        observed: torch.Tensor, shift: torch.Tensor | None, ratio: torch.Tensor | None, target: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean and variance [Q] of each query at epoch ``target`` (1-based) after ``observed`` epochs of its own
        (its ``last`` value; 0 if none); ``shift`` and ``ratio`` [Q]: the task's mean deviation from the
        experience over the configs it has observed and their ``task_ratio``, ``None`` when it has observed
        nothing."""
        k = observed.long().clamp(0, self.max_epochs - 1)
        t = (target.long() - 1).clamp(0, self.max_epochs - 1)
        t = torch.maximum(t, k)  # an epoch already observed is predicted as the next one would be
        at_k = (k - 1).clamp_min(0).unsqueeze(1)
        seen = (observed > 0).to(expected)
        expected_at_k = expected.gather(1, at_k).squeeze(1)
        deviation = (last - expected_at_k) * seen
        if shift is None or ratio is None:  # nothing of the task but possibly the config's own epochs
            context, shift = (observed > 0).long(), deviation
            eps = 0.01
            ratio = (((last + eps) / (expected_at_k + eps) - 1.0).clamp(*RATIO_RANGE)) * seen
        else:
            context = torch.ones_like(k)
        x = design(expected, last * seen, deviation, shift, ratio, t)
        mean = (self.coef[context, k, t] * x).sum(1)
        terms = _terms(spread.gather(1, t.unsqueeze(1)).squeeze(1), mass, x)
        return mean, (self.variance[context, k, t] * terms).sum(1)

    def fit(self, held_out: Sequence[HeldOut], steps: int = 300) -> None:
        """Least squares of the mean and likelihood-then-conformal variance per (context, k, t)."""
        if not held_out:
            return
        epochs = self.max_epochs
        for context in (0, 1):
            for k in range(epochs):
                if k and not context:
                    continue  # a config's own epochs are observations of the task
                for t in range(k, epochs):
                    x, y, spread, mass = self._rows(held_out, context, k, t)
                    columns = _used(context, k)
                    solution = torch.linalg.solve(
                        x[:, columns].T @ x[:, columns] + RIDGE * torch.eye(len(columns)), x[:, columns].T @ y
                    )  # fmt: skip
                    coef = torch.zeros(COLUMNS)
                    coef[columns] = solution
                    self.coef[context, k, t] = coef
                    residual = y - x @ coef
                    self.variance[context, k, t] = _fit_variance(residual, _terms(spread, mass, x), steps)

    @staticmethod
    def _rows(held_out: Sequence[HeldOut], context: int, k: int, t: int) -> tuple[torch.Tensor, ...]:
        xs, ys, spreads, masses = [], [], [], []
        for task in held_out:
            n = len(task.actual)
            at = torch.full((n,), t, dtype=torch.long)
            if k:
                last = task.actual[:, k - 1]
                deviation = last - task.expected[:, k - 1]
                shift = deviation.mean().expand(n)
                ratio = task_ratio(last, task.expected[:, k - 1]).expand(n)
            else:
                last = deviation = torch.zeros(n)
                # the other configs of the task seen for one epoch (each config's own run is not)
                others = task.actual[:, 0] - task.expected[:, 0]
                shift = (others.sum() - others) / max(n - 1, 1) if context else torch.zeros(n)
                ratio = torch.stack([
                    task_ratio(torch.cat([task.actual[:i, 0], task.actual[i + 1 :, 0]]),
                               torch.cat([task.expected[:i, 0], task.expected[i + 1 :, 0]]))
                    for i in range(n)
                ]) if context else torch.zeros(n)  # fmt: skip
            xs.append(design(task.expected, last, deviation, shift, ratio, at))
            ys.append(task.actual[:, t])
            spreads.append(task.spread[:, t])
            masses.append(task.mass)
        return torch.cat(xs), torch.cat(ys), torch.cat(spreads), torch.cat(masses)


def _used(context: int, k: int) -> list[int]:
    """The columns a (context, k) model uses: own deviation and last value only once the config has epochs, the
    task's shift and ratio only once the task has shown something."""
    return [0, *([1, 3] if k else []), *([2, 5] if context else []), 4]


def _terms(spread: torch.Tensor, mass: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The variance's terms [Q, VARIANCE_TERMS] of each query (``x``: its ``design`` row)."""
    return torch.stack([torch.ones_like(spread), spread, 1.0 / (1.0 + mass), x[:, 1] ** 2, x[:, 2] ** 2], dim=1)


def _fit_variance(residual: torch.Tensor, terms: torch.Tensor, steps: int) -> torch.Tensor:
    """Non-negative weights of the ``terms`` maximizing the Gaussian likelihood of ``residual``, then all scaled
    so that 95% of the residuals lie within 1.96 standard deviations."""
    start = torch.tensor([max(float(residual.var()), 1e-6), 0.5, 1e-3, 0.1, 0.1])
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
