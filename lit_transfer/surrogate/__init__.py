"""Meta-learned surrogates: performance (the experience with a forecast, which Transfer uses; a deep-kernel GP over
configs and learning curves, which QuickTune and DyHPO refit) and cost."""

from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.data import Encoding, MetaDataModule
from lit_transfer.surrogate.perf import PerformanceSurrogate
from lit_transfer.surrogate.pretrained import load_pretrained
from lit_transfer.surrogate.transfer import ExperienceSurrogate

__all__ = [
    "CostSurrogate", "Encoding", "ExperienceSurrogate", "MetaDataModule", "PerformanceSurrogate", "load_pretrained",
]  # fmt: skip
