"""The finetuning core: data, model loading, the LightningModule, learning curves and adapter checkpoints."""

from lit_transfer.finetune.checkpoint import AdapterCheckpoint
from lit_transfer.finetune.curves import LearningCurve
from lit_transfer.finetune.data import DatasetError, QADataModule
from lit_transfer.finetune.module import FinetuneModule

__all__ = ["AdapterCheckpoint", "DatasetError", "FinetuneModule", "LearningCurve", "QADataModule"]
