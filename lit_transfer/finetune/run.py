"""One path from a pipeline to a finetuning run.

The meta-dataset builder, ``tune`` and the ``fit`` YAML that ``suggest`` writes all turn (pipeline config, task
data, base model, run settings) into the same ``fit`` config here, and build the same objects from it that
LightningCLI builds from the YAML. So what is suggested is trained exactly as the experience it was predicted
from was measured.

Within one process, runs are warm: the frozen base model and the tokenized task are kept (``warm``), so a worker
pays setup once per model and task, not once per run or freeze-thaw step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lit_transfer.finetune.settings import RunSettings
from lit_transfer.space import PipelineConfig

CURVE_FILE = "curve.json"
OUTCOMES = ("ok", "diverged", "oom")  # how a run itself can end; anything else is an error, never a result


class RunError(RuntimeError):
    """A run or trial step failed for a reason that is not the run's own outcome: a checkpoint that cannot be read
    or written, an I/O error, an exception in our code. Such a failure is never recorded as a result."""


def fit_config(
    pipeline: PipelineConfig,
    data: str,
    settings: RunSettings,
    root_dir: str,
    epochs: int | None = None,
    checkpoints: bool = True,
    tensorboard: bool = True,
    monitor: str = "val/acc",
) -> dict[str, Any]:
    """The complete ``python -m lit_transfer fit`` config of a pipeline, trained to ``epochs`` (default: all)."""
    callbacks: list[dict[str, Any]] = [
        {"class_path": "lit_transfer.finetune.LearningCurve", "init_args": {"path": f"{root_dir}/{CURVE_FILE}"}}
    ]
    if checkpoints:
        callbacks.append(
            {
                "class_path": "lit_transfer.finetune.AdapterCheckpoint",
                "init_args": {"dirpath": f"{root_dir}/checkpoints", "monitor": monitor},
            }
        )
    logger: Any = False
    if tensorboard:
        logger = {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": root_dir, "name": "tensorboard"},
        }
    return {
        "seed_everything": settings.seed,
        "trainer": {
            "accelerator": settings.accelerator,
            "devices": settings.devices,
            "precision": settings.precision,
            "max_epochs": epochs or settings.max_epochs,
            "default_root_dir": root_dir,
            **pipeline.trainer_args(),
            "logger": logger,
            "enable_checkpointing": checkpoints,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": callbacks,
        },
        "model": {
            "class_path": "lit_transfer.finetune.FinetuneModule",
            "init_args": {
                "model": settings.base_model,
                **pipeline.module_args(),
                "schedule_epochs": settings.max_epochs,
                "seed": settings.seed,
            },
        },
        "data": {
            "class_path": "lit_transfer.finetune.QADataModule",
            "init_args": {
                "data": data,
                **pipeline.data_args(),
                "eval_batch_size": settings.eval_batch_size,
                "max_length": settings.max_length,
                "seed": settings.seed,
                "prompt_template": settings.prompt_template,
            },
        },
    }


def _instance(spec: dict[str, Any]) -> Any:
    from jsonargparse.typing import import_object

    return import_object(spec["class_path"])(**spec.get("init_args", {}))


def instantiate(config: dict[str, Any], callbacks: list[Any] | None = None) -> tuple[Any, Any, Any]:
    """The module, data module and Trainer that LightningCLI builds from the same ``fit`` config (plus
    ``callbacks`` that only observe, such as timers)."""
    import lightning as L

    trainer_args = dict(config["trainer"])
    trainer_args["callbacks"] = [_instance(c) for c in trainer_args.get("callbacks", [])] + list(callbacks or [])
    if isinstance(trainer_args.get("logger"), dict):
        trainer_args["logger"] = _instance(trainer_args["logger"])
    L.seed_everything(config["seed_everything"], verbose=False)
    return _instance(config["model"]), _instance(config["data"]), L.Trainer(**trainer_args)


def train(
    pipeline: PipelineConfig,
    data: str,
    settings: RunSettings,
    folder: str | Path,
    epochs: int | None = None,
    checkpoints: bool = True,
    tensorboard: bool = False,
    monitor: str = "val/acc",
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train ``pipeline`` to ``epochs``, continuing from ``folder/checkpoints/last.ckpt`` when there is one; returns
    the run's ``curve.json`` (status, points, cost). ``diverged`` and ``oom`` are outcomes and come back as such;
    anything else raises ``RunError`` and leaves what was recorded before untouched."""
    from lit_transfer.finetune.curves import read_curve

    folder = Path(folder)
    config = fit_config(pipeline, data, settings, str(folder), epochs, checkpoints, tensorboard, monitor)
    last = folder / "checkpoints" / "last.ckpt"
    resume = str(last) if checkpoints and last.exists() else None
    if checkpoints and resume is None and (folder / CURVE_FILE).exists():
        try:
            trained = [p for p in read_curve(folder / CURVE_FILE)["points"] if p["fidelity"] > 0]
        except (OSError, ValueError) as err:
            raise RunError(f"{folder / CURVE_FILE}: cannot read the run's curve ({err})") from err
        if trained:  # retraining from scratch would silently replace what was recorded
            raise RunError(
                f"{last}: missing, though the run's curve records {len(trained)} epochs; restore it, or remove "
                f"{folder} to train the config again from the start"
            )
    try:
        module, datamodule, trainer = instantiate(config, callbacks)
        trainer.fit(module, datamodule, ckpt_path=resume, weights_only=True)
    except torch.OutOfMemoryError:
        pass  # recorded as `oom` by LearningCurve
    except Exception as err:
        where = f"{resume}: " if resume else f"{folder}: "
        raise RunError(f"{where}{type(err).__name__}: {err}") from err
    try:
        curve = read_curve(folder / CURVE_FILE)
    except (OSError, ValueError) as err:
        raise RunError(f"{folder / CURVE_FILE}: cannot read the run's curve ({err})") from err
    if curve["status"] not in OUTCOMES:
        raise RunError(f"{folder / CURVE_FILE}: the run ended with status {curve['status']!r} ({curve['message']})")
    return curve
