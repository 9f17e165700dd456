"""Rank agreement between predictions and outcomes: used by the surrogates (to choose their own settings) and by
the evaluation of them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr


def tau(predicted: Any, actual: Any) -> float:
    """Kendall's tau-b; 0 when either side is constant (no ranking to compare)."""
    value = kendalltau(np.asarray(predicted), np.asarray(actual)).statistic
    return 0.0 if value is None or math.isnan(value) else float(value)


def spearman(predicted: Any, actual: Any) -> float:
    """Spearman's rho; 0 when either side is constant."""
    if len(set(np.asarray(predicted).tolist())) < 2 or len(set(np.asarray(actual).tolist())) < 2:
        return 0.0
    value = spearmanr(np.asarray(predicted), np.asarray(actual)).statistic
    return 0.0 if value is None or math.isnan(value) else float(value)
