"""Surrogates meta-trained on a meta-dataset live beside it: ``micro.sqlite`` -> ``micro.perf.ckpt`` and
``micro.cost.ckpt``. ``python -m lit_transfer surrogate train`` writes them; tuners load them with
``load_pretrained``."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from lit_transfer.io import commit_file, temporary_path
from lit_transfer.metadataset.store import SHIPPED_METADATASET
from lit_transfer.surrogate.cost import CostSurrogate
from lit_transfer.surrogate.perf import PerformanceSurrogate


def pretrained_paths(metadataset: str | Path = SHIPPED_METADATASET) -> tuple[Path, Path]:
    """Where the performance and cost surrogates of ``metadataset`` are (or go)."""
    base = Path(metadataset).with_suffix("")
    return base.with_name(base.name + ".perf.ckpt"), base.with_name(base.name + ".cost.ckpt")


def load_pretrained(metadataset: str | Path = SHIPPED_METADATASET) -> tuple[PerformanceSurrogate, CostSurrogate]:
    """The surrogates meta-trained on ``metadataset`` (default: the shipped ones), ready to predict."""
    perf_path, cost_path = pretrained_paths(metadataset)
    for path in (perf_path, cost_path):
        if not path.exists():
            hint = f"python -m lit_transfer surrogate train --metadataset {metadataset}"
            raise FileNotFoundError(f"no pretrained surrogate {path}; make it with: {hint}")
    return load_surrogate(PerformanceSurrogate, perf_path), load_surrogate(CostSurrogate, cost_path)


def load_surrogate(cls: type[L.LightningModule], path: str | Path) -> L.LightningModule:
    """A surrogate from its weights-only checkpoint, in eval mode; an unreadable file is one clear error."""
    try:
        return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    except FileNotFoundError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{path}: not a readable {cls.__name__} checkpoint ({type(err).__name__}: {first})") from None


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
