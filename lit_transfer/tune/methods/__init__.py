"""Tuning methods behind one ask/tell interface (``TuningMethod``), each with a spec (``MethodSpec``) that owns its
options and builds it, the same way for the evaluation (replay) and for real tuning: ``base`` (the interface and
observations), ``spec`` (specs, their registry and the context they build from), ``baselines`` (zero-shot, default,
portfolio, random), ``surrogate`` (Transfer, QuickTune, DyHPO), ``greedy_portfolio``,
``portfolio_halving``, ``optuna_tpe`` and ``dehb``."""

from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.baselines import (
    Default,
    DefaultSpec,
    Portfolio,
    PortfolioSpec,
    RandomSearch,
    RandomSpec,
    ZeroShot,
    ZeroShotSpec,
)
from lit_transfer.tune.methods.dehb import DEHB, DEHBSpec
from lit_transfer.tune.methods.optuna_tpe import OptunaTPE, OptunaTPESpec
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec, method_spec, registry
from lit_transfer.tune.methods.surrogate import (
    DyHPO,
    DyHPOSpec,
    QuickTune,
    QuickTuneSpec,
    SurrogateMethod,
    SurrogateSpec,
    Transfer,
    TransferSpec,
)

__all__ = [
    "DEHB", "DEHBSpec", "Default", "DefaultSpec", "DyHPO", "DyHPOSpec", "MethodContext", "MethodSpec", "OptunaTPE",
    "OptunaTPESpec", "Portfolio", "PortfolioSpec", "QuickTune", "QuickTuneSpec", "RandomSearch", "RandomSpec",
    "SurrogateMethod", "SurrogateSpec", "Transfer", "TransferSpec", "Trial", "TuningMethod", "ZeroShot",
    "ZeroShotSpec", "method_spec", "registry",
]  # fmt: skip
