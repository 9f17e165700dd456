"""Real trials: finetune a pipeline on the user's data, one more epoch at a time (freeze-thaw).

Each config gets its own folder (named by a hash of the config) with its curve, checkpoints and a copy of its
``fit`` YAML. Advancing a trial to epoch t continues the run from its ``last.ckpt``; the learning-rate schedule
is laid over the space's maximum epochs, so a run continued step by step trains exactly like one run straight
through (tested in the finetuning core). A run that diverges or fails is recorded as such and scores 0 from
then on, without being trained again.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

import yaml

from lit_transfer.space import PipelineConfig
from lit_transfer.tune.optimizers import Trial


def trial_id(config_key: str) -> str:
    """A config's short name: its trial folder's, and what progress lines show."""
    return hashlib.sha1(config_key.encode()).hexdigest()[:12]


class FinetuneEvaluator:
    """Trains trials with ``FinetuneModule`` / ``QADataModule`` under a Lightning ``Trainer``.

    Args:
        data: the task's data folder (``train/validation/test.jsonl``).
        base_model: hub name or path of the model to finetune.
        root: folder for the trials.
        max_epochs: the space's maximum fidelity (the schedule's length).
        max_length: token limit of one example.
        eval_batch_size: batch size for validation and test.
        accelerator: Lightning accelerator.
        seed: training seed.
    """

    def __init__(
        self, data: str, base_model: str, root: str, max_epochs: int, max_length: int = 256,
        eval_batch_size: int = 64, accelerator: str = "cpu", seed: int = 0, metric: str = "val/acc",
    ) -> None:  # fmt: skip
        self.data, self.base_model, self.root = data, base_model, Path(root)
        self.max_epochs, self.max_length, self.eval_batch_size = max_epochs, max_length, eval_batch_size
        self.accelerator, self.seed, self.metric = accelerator, seed, metric

    def folder(self, config: dict[str, Any]) -> Path:
        return self.root / "trials" / trial_id(PipelineConfig(config).key())

    def _parts(self, config: dict[str, Any], fidelity: int, folder: Path) -> tuple[Any, Any, Any]:
        import lightning as L

        from lit_transfer.finetune import AdapterCheckpoint, FinetuneModule, LearningCurve, QADataModule

        pipeline = PipelineConfig(config)
        module = FinetuneModule(
            model=self.base_model, **pipeline.module_args(), schedule_epochs=self.max_epochs, seed=self.seed
        )
        data = QADataModule(
            self.data, **pipeline.data_args(), eval_batch_size=self.eval_batch_size, max_length=self.max_length,
            seed=self.seed,
        )  # fmt: skip
        trainer = L.Trainer(
            accelerator=self.accelerator, devices=1, max_epochs=fidelity, **pipeline.trainer_args(),
            default_root_dir=str(folder), logger=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[
                LearningCurve(path=str(folder / "curve.json")),
                AdapterCheckpoint(dirpath=str(folder / "checkpoints"), monitor=self.metric),
            ],
        )  # fmt: skip
        return module, data, trainer

    def run(self, trial: Trial) -> tuple[list[dict[str, float]], float]:
        from lit_transfer.finetune.curves import read_curve

        folder = self.folder(trial.config)
        folder.mkdir(parents=True, exist_ok=True)
        curve_path = folder / "curve.json"
        if curve_path.exists() and read_curve(curve_path)["status"] in ("diverged", "oom", "failed"):
            return self._curve(curve_path, trial.fidelity), 0.0  # a failed run is not trained again
        (folder / "config.yaml").write_text(yaml.safe_dump(dict(trial.config)))
        module, data, trainer = self._parts(dict(trial.config), trial.fidelity, folder)
        last = folder / "checkpoints" / "last.ckpt"
        start = time.perf_counter()
        with contextlib.suppress(Exception):  # failures are recorded in curve.json by LearningCurve
            trainer.fit(module, data, ckpt_path=str(last) if last.exists() else None)
        return self._curve(curve_path, trial.fidelity), time.perf_counter() - start

    def _curve(self, path: Path, fidelity: int) -> list[dict[str, float]]:
        """Metrics of epochs 1..fidelity; epochs a failed run did not reach score 0."""
        from lit_transfer.finetune.curves import read_curve

        points = (
            [p["metrics"] for p in read_curve(path)["points"] if p["fidelity"] > 0][:fidelity] if path.exists() else []
        )
        return points + [{self.metric: 0.0}] * (fidelity - len(points))

    def test(self, config: dict[str, Any]) -> dict[str, float]:
        """Test-split metrics of a trained config's best checkpoint."""
        folder = self.folder(config)
        best = folder / "checkpoints" / "best.ckpt"
        if not best.exists():
            raise FileNotFoundError(f"config was never trained to a checkpoint: {folder}")
        module, data, trainer = self._parts(config, self.max_epochs, folder)
        trainer.callbacks = [c for c in trainer.callbacks if type(c).__name__ != "LearningCurve"]
        return trainer.test(module, data, ckpt_path=str(best), verbose=False)[0]
