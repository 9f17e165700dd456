"""Meta-learned surrogates: performance (deep-kernel GP over configs and learning curves) and cost."""

from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.data import Encoding, MetaDataModule
from lit_transfer.surrogate.perf import PerformanceSurrogate

__all__ = ["CostSurrogate", "Encoding", "MetaDataModule", "PerformanceSurrogate"]
