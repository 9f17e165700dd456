"""AdapterCheckpoint: best/last checkpoints that hold the adapter only, also written in peft's format.

A Phi-3-mini checkpoint with its frozen base is ~7.6 GB; the adapter is a few MB. The ``.ckpt`` file keeps the
adapter plus optimizer, scheduler and curve state, so a run can be continued to more epochs; the folder beside
it (``best/``, ``last/``) is a plain peft adapter that ``PeftModel.from_pretrained(base, folder)`` loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def adapter_dir(ckpt_path: str | Path) -> Path:
    """The peft folder that belongs to a ``.ckpt`` file: ``checkpoints/last.ckpt`` -> ``checkpoints/last``."""
    path = Path(ckpt_path)
    return path.with_suffix("") if path.suffix == ".ckpt" else path.with_name(path.name + ".adapter")


def save_adapter_atomic(model, directory: Path) -> None:
    """``save_pretrained`` into a temporary folder, then swap it in, so a crash never leaves half an adapter."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        model.save_pretrained(tmp)
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class AdapterCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for adapter finetuning (the module must keep its ``PeftModel`` in ``.model``).

    Defaults: the best checkpoint by ``val/acc`` as ``best.ckpt`` plus ``last.ckpt``, each overwritten in place
    (atomically) rather than versioned.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "best",
        monitor: str | None = "val/acc",
        mode: str = "max",
        save_last: bool = True,
        save_top_k: int = 1,
        every_n_epochs: int | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_last=save_last,
            save_top_k=save_top_k,
            every_n_epochs=every_n_epochs,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        # Lightning writes `last` only at steps where a top-k checkpoint was written; continuing a run to more
        # epochs needs `last` after every epoch, improved or not, so this step counts as saved.
        self._last_global_step_saved = trainer.global_step

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
            save_adapter_atomic(trainer.lightning_module.model, adapter_dir(filepath))
        self._last_checkpoint_saved = filepath
        trainer.strategy.barrier("adapter_checkpoint")

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(adapter_dir(filepath), ignore_errors=True)
