"""Meta-learned surrogates: performance (deep-kernel GP over configs and learning curves) and cost."""

from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.data import Encoding, MetaDataModule
from lit_transfer.surrogate.perf import PerformanceSurrogate
from lit_transfer.surrogate.pretrained import load_pretrained

__all__ = ["CostSurrogate", "Encoding", "MetaDataModule", "PerformanceSurrogate", "load_pretrained"]
