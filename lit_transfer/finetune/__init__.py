"""The finetuning core: data, model loading, the LightningModule, learning curves and adapter checkpoints.

Its names are imported when first used (configs name them as ``lit_transfer.finetune.FinetuneModule``), so that the
command line and the plans can import this package's light modules without loading torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AdapterCheckpoint": "checkpoint",
    "AdapterDDPStrategy": "strategies",
    "AdapterPrecision": "precision",
    "AdapterThroughputMonitor": "throughput",
    "DatasetError": "data",
    "FinetuneModule": "module",
    "LearningCurve": "curves",
    "QADataModule": "data",
}

if TYPE_CHECKING:
    from lit_transfer.finetune.checkpoint import AdapterCheckpoint
    from lit_transfer.finetune.curves import LearningCurve
    from lit_transfer.finetune.data import DatasetError, QADataModule
    from lit_transfer.finetune.module import FinetuneModule
    from lit_transfer.finetune.precision import AdapterPrecision
    from lit_transfer.finetune.strategies import AdapterDDPStrategy
    from lit_transfer.finetune.throughput import AdapterThroughputMonitor

__all__ = [
    "AdapterCheckpoint",
    "AdapterDDPStrategy",
    "AdapterPrecision",
    "AdapterThroughputMonitor",
    "DatasetError",
    "FinetuneModule",
    "LearningCurve",
    "QADataModule",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # whoever uses the finetuning core may name its strategies by string (``strategy: ddp_adapter``): registered
    importlib.import_module(f"{__name__}.strategies")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
