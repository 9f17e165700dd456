"""The finetuning core: data, model loading, the LightningModule, learning curves and adapter checkpoints."""

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
