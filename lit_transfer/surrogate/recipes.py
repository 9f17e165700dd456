"""The YAML each shipped surrogate is meta-trained with (``configs/surrogate/``): named here, apart from the training
code, so that the command line and plans give them as defaults without importing torch."""

from __future__ import annotations

from lit_transfer.resources import CONFIGS

# performance: what Transfer and ``suggest`` predict with; refit: what QuickTune and DyHPO refit on a task
DEFAULT_RECIPES = {
    "performance": str(CONFIGS / "surrogate" / "perf_experience.yaml"),
    "cost": str(CONFIGS / "surrogate" / "cost_mlp.yaml"),
    "refit": str(CONFIGS / "surrogate" / "perf_dkgp.yaml"),
}
