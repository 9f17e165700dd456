"""Meta-learned surrogates: performance (the experience with a forecast, which Transfer uses; a deep-kernel GP over
configs and learning curves, which QuickTune and DyHPO refit) and cost.

Its names are imported when first used (configs name them as ``lit_transfer.surrogate.CostSurrogate``), so that
light modules here (``metrics``, ``recipes``) load without torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "CostSurrogate": "cost",
    "Encoding": "data",
    "ExperienceSurrogate": "transfer",
    "MetaDataModule": "data",
    "PerformanceSurrogate": "perf",
    "load_pretrained": "pretrained",
}

if TYPE_CHECKING:
    from lit_transfer.surrogate.cost import CostSurrogate
    from lit_transfer.surrogate.data import Encoding, MetaDataModule
    from lit_transfer.surrogate.perf import PerformanceSurrogate
    from lit_transfer.surrogate.pretrained import load_pretrained
    from lit_transfer.surrogate.transfer import ExperienceSurrogate

__all__ = [
    "CostSurrogate",
    "Encoding",
    "ExperienceSurrogate",
    "MetaDataModule",
    "PerformanceSurrogate",
    "load_pretrained",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
