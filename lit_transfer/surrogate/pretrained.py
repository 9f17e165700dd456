"""Surrogates meta-trained on a meta-dataset live beside it: ``micro.sqlite`` -> ``micro.perf.ckpt`` and
``micro.cost.ckpt``. ``tools/train_surrogates.py`` writes them; tuners load them with ``load_pretrained``."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L

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
            hint = f"python tools/train_surrogates.py --metadata {metadataset}"
            raise FileNotFoundError(f"no pretrained surrogate {path}; make it with: {hint}")
    perf = PerformanceSurrogate.load_from_checkpoint(perf_path, map_location="cpu")
    cost = CostSurrogate.load_from_checkpoint(cost_path, map_location="cpu")
    return perf.eval(), cost.eval()


def save_weights(module: L.LightningModule, path: str | Path) -> Path:
    """A weights-only Lightning checkpoint of ``module``, written atomically (a temporary file, then rename)."""
    path = Path(path)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    partial = path.with_name(path.name + ".partial")
    trainer.save_checkpoint(partial, weights_only=True)
    os.replace(partial, path)
    return path
