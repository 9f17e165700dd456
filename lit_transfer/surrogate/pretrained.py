"""Surrogates meta-trained on a meta-dataset live beside it: ``v2.sqlite`` -> ``v2.perf.ckpt`` (the
performance surrogate Transfer and ``suggest`` use), ``v2.cost.ckpt`` and ``v2.refit.ckpt`` (the deep-kernel
GP QuickTune and DyHPO refit on a task). ``python -m lit_transfer surrogate train`` writes them; tuners load them
with ``load_pretrained``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lit_transfer.io import commit_file, temporary_path
from lit_transfer.metadataset.store import SHIPPED_METADATASET

# recipe target -> the file suffix of its checkpoint
ROLES = {"performance": "perf", "cost": "cost", "refit": "refit"}


@dataclass(frozen=True)
class Surrogates:
    """The meta-learned surrogates of one experience: ``perf`` (``PerformancePredictor``), ``cost``
    (``CostPredictor``) and ``refit`` (``RefittablePredictor``); ``None`` where not needed."""

    perf: Any = None
    cost: Any = None
    refit: Any = None


def pretrained_paths(metadataset: str | Path = SHIPPED_METADATASET) -> dict[str, Path]:
    """Where the surrogates of ``metadataset`` are (or go), by target (``performance``, ``cost``, ``refit``)."""
    base = Path(metadataset).with_suffix("")
    return {target: base.with_name(f"{base.name}.{suffix}.ckpt") for target, suffix in ROLES.items()}


def load_pretrained(metadataset: str | Path = SHIPPED_METADATASET, targets: Sequence[str] = tuple(ROLES)) -> Surrogates:
    """The surrogates meta-trained on ``metadataset`` (default: the shipped ones), ready to predict; only those of
    ``targets`` are loaded (the others are ``None``)."""
    unknown = [t for t in targets if t not in ROLES]
    if unknown:
        raise ValueError(f"unknown surrogate target(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}")
    paths = {t: p for t, p in pretrained_paths(metadataset).items() if t in targets}
    for path in paths.values():
        if not path.exists():
            hint = f"python -m lit_transfer surrogate train --metadataset {metadataset}"
            raise FileNotFoundError(f"no pretrained surrogate {path}; make it with: {hint}")
    loaded = {target: load_surrogate(path) for target, path in paths.items()}
    return Surrogates(loaded.get("performance"), loaded.get("cost"), loaded.get("refit"))


def load_surrogate(path: str | Path) -> L.LightningModule:
    """A surrogate from its weights-only checkpoint (as the class its recipe built), in eval mode; an unreadable
    file is one clear error."""
    from jsonargparse.typing import import_object

    from lit_transfer.surrogate.base import SurrogateModule

    try:
        data = Path(path).read_bytes()  # read once: the class is looked up in the same bytes the weights load from
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        cls = import_object(checkpoint["surrogate_class"])
        if not (isinstance(cls, type) and issubclass(cls, SurrogateModule)):
            raise TypeError(f"{checkpoint['surrogate_class']} is not a surrogate")
        return cls.load_from_checkpoint(io.BytesIO(data), map_location="cpu", weights_only=True).eval()
    except FileNotFoundError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{path}: not a readable surrogate checkpoint ({type(err).__name__}: {first})") from None


def save_weights(module: L.LightningModule, path: str | Path) -> Path:
    """A weights-only Lightning checkpoint of ``module``, written atomically (a temporary file, then rename)."""
    path = Path(path)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    partial = temporary_path(path)
    try:
        trainer.save_checkpoint(partial, weights_only=True)
        commit_file(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
