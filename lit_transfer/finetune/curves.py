"""LearningCurve: the metric at every fidelity point of a run, its cost, and how the run ended.

The curve is what the meta-dataset stores and what the surrogates learn from, so it is written atomically after
every validation point (a killed run leaves the points it reached) and carried inside checkpoints (a run
continued to more epochs extends the same curve).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from lit_transfer.io import write_json_atomic

CURVE_METRICS = ("val/loss", "val/acc", "val/token_acc")


def read_curve(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a curve file ({err.msg})") from None


class LearningCurve(Callback):
    """Writes ``curve.json``: one point per validation (fidelity in epochs, metrics, seconds, tokens) and status.

    Args:
        path: where to write; defaults to ``<trainer.default_root_dir>/curve.json``.
        zero_shot: evaluate the untouched model on the whole validation set first (the point at fidelity 0).

    Status is ``running`` while training, then ``ok``; ``diverged`` when the training loss became NaN/inf (the
    module stops the run), ``oom`` on out-of-memory and ``failed`` with the error message on any other error.
    """

    def __init__(self, path: str | None = None, zero_shot: bool = True) -> None:
        self.path = path
        self.zero_shot = zero_shot
        self.points: list[dict[str, Any]] = []
        self.status, self.message = "running", None
        self.seconds_before = 0.0  # time spent in earlier sessions of a continued run
        self.tokens = 0
        self.padding_tokens = 0
        self._started = time.perf_counter()
        self._losses: list[float] = []
        self._fitting = False  # set once the run (and any checkpoint it continues from) is set up

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "seconds": self.elapsed(),
            "tokens": self.tokens,
            "padding_tokens": self.padding_tokens,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.points = list(state["points"])
        self.seconds_before = state["seconds"]
        self.tokens = state["tokens"]
        self.padding_tokens = state["padding_tokens"]

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self._started

    def _file(self, trainer: L.Trainer) -> Path:
        return Path(self.path) if self.path else Path(trainer.default_root_dir) / "curve.json"

    def write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        device = str(trainer.strategy.root_device)
        if trainer.strategy.root_device.type == "cuda":
            device = torch.cuda.get_device_name(trainer.strategy.root_device)
        write_json_atomic(
            self._file(trainer),
            {
                "status": self.status,
                "message": self.message,
                "points": self.points,
                "cost": {
                    "seconds": self.elapsed(),
                    "tokens": self.tokens,
                    "padding_tokens": self.padding_tokens,
                    "device": device,
                    "num_devices": trainer.world_size,
                },
            },
        )

    # ---------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fitting = True
        self._started = time.perf_counter()
        self.status, self.message = "running", None
        has_zero_shot = any(p["fidelity"] == 0 for p in self.points)
        # the sanity check over the *whole* validation set is the zero-shot point; a continued run has it already
        trainer.num_sanity_val_steps = float("inf") if self.zero_shot and not has_zero_shot else 0
        self.write(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += int(batch["num_tokens"])
        self.padding_tokens += int(batch["num_padding_tokens"])
        loss = (outputs or {}).get("loss")  # absent when the step was skipped (a non-finite loss)
        if loss is not None:
            self._losses.append(float(loss))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        logged = trainer.callback_metrics
        metrics = {k: float(logged[k]) for k in CURVE_METRICS if k in logged}
        if trainer.sanity_checking:
            fidelity = 0.0
            for logger in trainer.loggers:  # Lightning does not log sanity checks; the zero-shot point counts
                logger.log_metrics(metrics, step=0)
        else:
            done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
            fidelity = trainer.current_epoch + done / max(1, trainer.num_training_batches)
            if self._losses:
                metrics["train/loss"] = sum(self._losses) / len(self._losses)
        self._losses.clear()
        self.points.append(
            {
                "fidelity": round(fidelity, 6),
                "step": trainer.global_step,
                # NaN/inf are not JSON; a diverged metric is stored as null
                "metrics": {k: v if math.isfinite(v) else None for k, v in metrics.items()},
                "seconds": self.elapsed(),
                "tokens": self.tokens,
            }
        )
        self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run with no epochs left never starts training (no ``on_train_end``): it ends as it was."""
        if self.status == "running":
            self._finish(trainer, pl_module)

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(pl_module, "diverged", False):
            self.status, self.message = "diverged", "training loss became NaN or infinite"
        elif any(v is None for p in self.points for v in p["metrics"].values()):
            self.status, self.message = "diverged", "a validation metric became NaN or infinite"
        else:
            self.status = "ok"
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Before the run was set up (e.g. its checkpoint could not be read) this callback holds none of the points
        # recorded so far: writing would replace them with an empty curve. The error is reported, not recorded.
        if not self._fitting:
            return
        self.status = "oom" if isinstance(exception, torch.OutOfMemoryError) else "failed"
        self.message = f"{type(exception).__name__}: {exception}"
        self.write(trainer)
