"""Tuning methods behind one ask/tell interface (``TuningMethod``), by name, built the same way for the evaluation
(replay) and for real tuning: ``base`` (the interface and observations), ``baselines`` (zero-shot, default,
portfolio, random), ``surrogate`` (Transfer, QuickTune, DyHPO), ``optuna_tpe`` and ``dehb``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lit_transfer.space import SearchSpace
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.baselines import Default, Portfolio, RandomSearch, ZeroShot
from lit_transfer.tune.methods.dehb import DEHB
from lit_transfer.tune.methods.optuna_tpe import OptunaTPE
from lit_transfer.tune.methods.surrogate import DyHPO, QuickTune, SurrogateMethod, Transfer

if TYPE_CHECKING:
    from lit_transfer.surrogate.pretrained import Surrogates

METHODS = ("transfer", "quicktune", "dyhpo", "portfolio", "default", "zero_shot", "random", "optuna_tpe", "dehb")
# the surrogate each surrogate method predicts with (a target of ``surrogate.pretrained.ROLES``); all use the cost one
PERFORMANCE_SURROGATE = {"transfer": "performance", "quicktune": "refit", "dyhpo": "refit"}
# what a method's seed changes: nothing (deterministic given the experience), its refits, or its choices
RANDOMNESS = {
    "transfer": "none", "portfolio": "none", "default": "none", "zero_shot": "none", "quicktune": "refit",
    "dyhpo": "refit", "random": "random", "optuna_tpe": "random", "dehb": "random",
}  # fmt: skip


def build_method(
    name: str,
    space: SearchSpace,
    candidates: Sequence[Mapping[str, Any]],
    task_features: Mapping[str, float],
    surrogates: Callable[[], Surrogates],
    metadataset: str,
    exclude_tasks: Sequence[str] = (),
    seed: int = 0,
    acquisition: str = "ei",
    horizon: str = "final",
    incumbent: str = "observed",
    drop_below: float | None = None,
    quicktune_refit_steps: int = 20,
    dyhpo_refit_steps: int = 30,
    optuna_storage: str | None = None,
) -> TuningMethod:
    """The method ``name`` for a task; ``surrogates()`` is only called by the methods that need them (Transfer
    predicts with its ``perf``, QuickTune and DyHPO refit its ``refit``), and
    ``metadataset`` (without ``exclude_tasks``) is where the portfolio comes from; ``optuna_storage`` is the journal
    file of Optuna's study (what it resumes from)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if name in PERFORMANCE_SURROGATE:
        found = surrogates()
        perf = found.perf if PERFORMANCE_SURROGATE[name] == "performance" else found.refit
        common = {
            "perf": perf, "cost": found.cost, "task_features": task_features, "acquisition": acquisition,
            "horizon": horizon, "incumbent": incumbent, "drop_below": drop_below, "seed": seed,
        }  # fmt: skip
        if name == "transfer":
            return Transfer(space, candidates, **common)
        if name == "quicktune":
            return QuickTune(space, candidates, refit_steps=quicktune_refit_steps, **common)
        return DyHPO(space, candidates, refit_steps=dyhpo_refit_steps, **common)
    if name == "portfolio":
        from lit_transfer.tune.replay import portfolio  # replay imports the methods' base: import it late

        return Portfolio(space, portfolio(metadataset, exclude=exclude_tasks), seed=seed)
    if name == "dehb":
        return DEHB(space, candidates, seed=seed)
    if name == "optuna_tpe":
        return OptunaTPE(space, candidates, seed=seed, storage=optuna_storage)
    simple = {"default": Default, "zero_shot": ZeroShot, "random": RandomSearch}
    return simple[name](space, candidates, seed=seed)


__all__ = [
    "DEHB", "METHODS", "PERFORMANCE_SURROGATE", "RANDOMNESS", "Default", "DyHPO", "OptunaTPE", "Portfolio",
    "QuickTune", "RandomSearch", "SurrogateMethod", "Transfer", "Trial", "TuningMethod", "ZeroShot", "build_method",
]  # fmt: skip
