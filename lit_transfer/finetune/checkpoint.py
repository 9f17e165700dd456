"""AdapterCheckpoint: best/last checkpoints that hold the adapter only, also written in peft's format.

A Phi-3-mini checkpoint with its frozen base is ~7.6 GB; the adapter is a few MB. The ``.ckpt`` file keeps the
adapter plus optimizer, scheduler and curve state, so a run can be continued to more epochs; the folder beside
it (``best/``, ``last/``) is a plain peft adapter that ``PeftModel.from_pretrained(base, folder)`` loads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import save_file

from lit_transfer.io import commit_file


def adapter_dir(ckpt_path: str | Path) -> Path:
    """The peft folder that belongs to a ``.ckpt`` file: ``checkpoints/last.ckpt`` -> ``checkpoints/last``."""
    path = Path(ckpt_path)
    return path.with_suffix("") if path.suffix == ".ckpt" else path.with_name(path.name + ".adapter")


def write_peft_adapter(model, state: dict[str, torch.Tensor], directory: Path) -> None:
    """Write an adapter in peft's format (``adapter_config.json`` + ``adapter_model.safetensors``) from its state
    dict. peft's own ``save_pretrained`` finds adapter weights by walking the module tree, which FSDP's wrappers
    hide; the names in a gathered state dict are clean, so the files are written from them (same keys as peft's:
    without the adapter name, DoRA magnitudes without ``.weight``)."""
    adapter = model.active_adapter
    tensors = {}
    for key, value in state.items():
        key = key.replace(f".{adapter}.", ".")
        if ".lora_magnitude_vector." in key and key.endswith(".weight"):
            key = key.removesuffix(".weight")
        tensors[key] = value.detach().contiguous()
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / "adapter_model.safetensors", metadata={"format": "pt"})
    # like peft, the saved config is for inference
    dataclasses.replace(model.peft_config[adapter], inference_mode=True).save_pretrained(directory)


def save_adapter_atomic(model, directory: Path, state: dict[str, torch.Tensor]) -> None:
    """Write the peft folder into a temporary folder, then swap it in, so a crash never leaves half an adapter."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        write_peft_adapter(model, state, tmp)
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
    (atomically) rather than versioned. Ties on the monitored metric (every epoch at accuracy 0 is common on hard
    tasks) are broken by ``tie_breaker`` (lower validation loss), so "best" is never an untrained epoch by accident.
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
        tie_breaker: str | None = "val/loss",
    ) -> None:
        self._adapter_state: dict = {}
        self.tie_breaker = tie_breaker
        self.best_tie_value: float | None = None
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

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or self.tie_breaker is None or self.save_top_k != 1 or not self.best_k_models:
            return False
        best = self.best_k_models[self.kth_best_model_path]
        value = trainer.callback_metrics.get(self.tie_breaker)
        better = (
            bool(current.float() == best.float())
            and value is not None
            and self.best_tie_value is not None
            and float(value) < self.best_tie_value  # the tie-breaker is a loss: lower is better
        )
        return trainer.strategy.reduce_boolean_decision(better)

    def _update_best_and_save(self, current: torch.Tensor, trainer: L.Trainer, monitor_candidates: dict) -> None:
        value = monitor_candidates.get(self.tie_breaker) if self.tie_breaker else None
        self.best_tie_value = None if value is None else float(value)
        super()._update_best_and_save(current, trainer, monitor_candidates)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_tie_value": self.best_tie_value}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.best_tie_value = state_dict.get("best_tie_value")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # the strategy has gathered the weights into the checkpoint (under FSDP on rank 0 only); keep the adapter's
        # part for the peft folder instead of asking a sharded model for its state dict again
        names = pl_module.trainable_names()
        self._adapter_state = {
            k.removeprefix("model."): v for k, v in checkpoint.get("state_dict", {}).items() if k in names
        }
        return super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        # Lightning writes `last` only at steps where a top-k checkpoint was written; continuing a run to more
        # epochs needs `last` after every epoch, improved or not, so this step counts as saved.
        self._last_global_step_saved = trainer.global_step

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"  # unique: never shared with another writer
        try:
            super()._save_checkpoint(trainer, tmp)
            if trainer.is_global_zero:
                commit_file(tmp, filepath)  # durable before it replaces the previous checkpoint
                save_adapter_atomic(trainer.lightning_module.model, adapter_dir(filepath), self._adapter_state)
        except BaseException as err:  # no half-written file stays behind; a full disk names the file
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise OSError(err.errno, f"{filepath}: cannot save the checkpoint ({err.strerror or err})") from err
            raise
        self._last_checkpoint_saved = filepath
        trainer.strategy.barrier("adapter_checkpoint")

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(adapter_dir(filepath), ignore_errors=True)
