"""One seeded way to meta-train a surrogate: from its YAML (``configs/surrogate/*.yaml``, the same file ``fit``
takes), on a meta-dataset, optionally without some tasks.

The shipped checkpoints (``surrogate train``), the quality evaluation (``surrogate evaluate``), the tuning
evaluation's per-fold surrogates and the benchmarks all call ``train_surrogate``, so one YAML and one seed give the
same surrogate everywhere, and every table built from them can be rebuilt exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml


@dataclass(frozen=True)
class SurrogateRecipe:
    """What a surrogate YAML says: the model (class and arguments), the data module's arguments, the Trainer's
    ``max_epochs`` and the seed (``seed_everything``)."""

    model_class: str
    model_args: dict[str, Any]
    data_args: dict[str, Any] = field(default_factory=dict)
    max_epochs: int = 10
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path) -> SurrogateRecipe:
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text())
            model = config["model"]
            return cls(
                model_class=model["class_path"],
                model_args=dict(model.get("init_args") or {}),
                data_args=dict((config.get("data") or {}).get("init_args") or {}),
                max_epochs=int(config["trainer"]["max_epochs"]),
                seed=int(config.get("seed_everything", 0)),
            )
        except OSError as err:
            raise FileNotFoundError(f"{path}: cannot read the surrogate recipe ({err.strerror})") from None
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path}: not a surrogate recipe (needs model.class_path, trainer.max_epochs): {err}"
            ) from None

    @property
    def target(self) -> str:
        return self.data_args.get("target", "performance")


def train_surrogate(
    recipe: str | Path | SurrogateRecipe,
    metadataset: str,
    holdout_tasks: Sequence[str] = (),
    space: str | None = None,
    max_epochs: int | None = None,
    seed: int | None = None,
    own: Sequence[str] = (),
) -> L.LightningModule:
    """Meta-train the surrogate of ``recipe`` on ``metadataset`` and the ``own`` ones (without ``holdout_tasks``);
    returns it in eval mode.

    The seed (the recipe's unless given) is set right before the model is built, so the result depends only on the
    inputs: two calls with the same arguments give the same weights."""
    from jsonargparse.typing import import_object

    from lit_transfer.surrogate.data import MetaDataModule

    recipe = recipe if isinstance(recipe, SurrogateRecipe) else SurrogateRecipe.from_yaml(recipe)
    seed = recipe.seed if seed is None else seed
    model_args = dict(recipe.model_args)
    data_args = {k: v for k, v in recipe.data_args.items() if k not in ("path", "holdout_tasks")}
    if space is not None:
        model_args["space"] = data_args["space"] = space
    L.seed_everything(seed, verbose=False)
    model = import_object(recipe.model_class)(**model_args)
    data = MetaDataModule(metadataset, holdout_tasks=list(holdout_tasks), own=list(own), **{**data_args, "seed": seed})
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=max_epochs or recipe.max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=1.0 if data.val_tasks else 0,  # nothing to validate on: no empty loop
    )  # fmt: skip
    with torch.random.fork_rng():
        trainer.fit(model, data)
    return model.eval()
