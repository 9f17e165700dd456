"""Acquisition functions: how much a candidate's next fidelity step is worth, given the surrogate's belief.

All maximize: higher is a better choice. ``best`` is the best metric value observed on the task so far.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(Y - best, 0)] for Y ~ N(mean, std^2): the closed form (mean - best) Phi(z) + std phi(z)."""
    mean, std = np.asarray(mean, dtype=float), np.maximum(np.asarray(std, dtype=float), 1e-12)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def cost_aware_expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, cost: np.ndarray, power: float = 1.0
) -> np.ndarray:
    """Expected improvement per unit of predicted cost (seconds) raised to ``power`` (0: plain EI)."""
    return expected_improvement(mean, std, best) / np.maximum(np.asarray(cost, dtype=float), 1e-12) ** power


def expected_improvement_per_epoch(mean: np.ndarray, std: np.ndarray, best: float, remaining: np.ndarray) -> np.ndarray:
    """Expected improvement of a candidate's final value per epoch it still needs to reach it (freeze-thaw): a
    config half-way through a good curve delivers its final sooner than a fresh one that looks as good, so the
    tuner takes promising configs to the end instead of spreading the budget over first epochs."""
    return expected_improvement(mean, std, best) / np.maximum(np.asarray(remaining, dtype=float), 1.0)


def upper_confidence_bound(mean: np.ndarray, std: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """mean + beta * std: optimism in proportion to uncertainty."""
    return np.asarray(mean, dtype=float) + beta * np.asarray(std, dtype=float)
