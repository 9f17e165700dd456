"""Real trials: finetune a pipeline on the user's data, one more epoch at a time (freeze-thaw).

Each config gets its own folder (named by a hash of the config) with its curve, checkpoints and a copy of its
``fit`` YAML, in the tuning's storage (``lit_transfer.tune.storage``: a folder, or a URL every node reaches).
Advancing a trial to epoch t continues the run from its ``last.ckpt`` through the one run path
(``lit_transfer.finetune.run``); the schedule is laid over the space's maximum epochs, so a run continued step by
step trains exactly like one run straight through. A run that diverges or runs out of memory is recorded as such and
scores 0 from then on, without being trained again. Any other failure (an unreadable checkpoint, an I/O error, an
error of ours) raises ``RunError`` and changes nothing that was recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import yaml

from lit_transfer.finetune.curves import read_curve
from lit_transfer.finetune.run import CURVE_FILE, RunError, RunSettings, fit_config, instantiate, train
from lit_transfer.io import FolderLock, LockedError, write_atomic
from lit_transfer.space import PipelineConfig, config_key
from lit_transfer.tune.methods.base import Trial
from lit_transfer.tune.storage import TrialStorage


def trial_id(config_key: str) -> str:
    """A config's short name: its trial folder's, and what progress lines show."""
    return hashlib.sha1(config_key.encode()).hexdigest()[:12]


def data_fingerprint(data: str, settings: RunSettings) -> str:
    """What a trial is trained on, in 16 hex digits: the task's data (every file of its folder, or the dataset's
    name) and the run settings. Trials of other data or settings never share a folder, however alike the config."""
    digest = hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode())
    folder = Path(data)
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    else:
        digest.update(str(data).encode())
    return digest.hexdigest()[:16]


class FinetuneEvaluator:
    """Trains trials of one task with the run path, each in ``root/trials/<trial id>/``.

    Args:
        data: the task's data folder (``train/validation/test.jsonl``).
        settings: base model, schedule length, length limit, batch size for evaluation, seed, device.
        root: where the trials live (``storage``: a folder or an fsspec URL).
        metric: the metric the tuner maximizes (also what picks a trial's best checkpoint).
    """

    def __init__(
        self, data: str, settings: RunSettings, root: str, metric: str = "val/acc", callbacks: list | None = None,
        identity: str | None = None,
    ) -> None:  # fmt: skip
        self.data, self.settings, self.metric = data, settings, metric
        self.storage = TrialStorage(str(root))
        self.callbacks = callbacks  # observers of every step (timers)
        self.identity = identity

    def name(self, config_key: str) -> str:
        """The trial's path in storage: ``<data fingerprint>/<trial id>`` (``identity``), so trials of other data or
        settings never meet in one storage; a tuning begun before fingerprints keeps its ``<trial id>``."""
        return f"{self.identity}/{trial_id(config_key)}" if self.identity else trial_id(config_key)

    def folder(self, config: dict[str, Any]) -> Path:
        """The trial's folder in this process (in storage, or a local copy of it)."""
        return self.storage.local(self.name(config_key(config)))

    def location(self, config: dict[str, Any]) -> str:
        """Where the trial lives in storage."""
        return self.storage.url(self.name(config_key(config)))

    def recorded(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """The trial's ``curve.json`` as recorded so far (after ``pull``), or None before its first step."""
        path = self.folder(config) / CURVE_FILE
        if not path.exists():
            return None
        try:
            return read_curve(path)
        except (OSError, ValueError) as err:
            raise RunError(f"{path}: cannot read the trial's curve ({err})") from err

    def run(self, trial: Trial) -> tuple[list[dict[str, float]], float]:
        """Train ``trial.config`` to epoch ``trial.fidelity``; returns its curve (epochs 1..fidelity) and the
        seconds this step took. An epoch already recorded (the driver stopped before it saved its state) is
        returned as it is, with the seconds it took, not trained again."""
        name = self.name(trial.key)
        folder = self.storage.pull(name)
        if self.storage.remote:
            return self._run(trial, name, folder)
        try:
            with FolderLock(folder, "trial"):  # two tunings sharing this storage never train one trial at once
                return self._run(trial, name, folder)
        except LockedError as err:
            raise RunError(f"{folder}: the trial is being trained by another process ({err})") from None

    def _run(self, trial: Trial, name: str, folder: Path) -> tuple[list[dict[str, float]], float]:
        recorded = self.recorded(trial.config)
        if recorded is not None:
            if recorded["status"] in ("diverged", "oom"):
                return self._metrics(recorded, trial.fidelity, folder), 0.0
            epochs = [p for p in recorded["points"] if p["fidelity"] > 0]
            if len(epochs) >= trial.fidelity:
                before = epochs[trial.fidelity - 2]["seconds"] if trial.fidelity > 1 else 0.0
                return self._metrics(recorded, trial.fidelity, folder), epochs[trial.fidelity - 1]["seconds"] - before
        pipeline = PipelineConfig(dict(trial.config))
        fit = fit_config(pipeline, self.data, self.settings, str(folder), trial.fidelity, monitor=self.metric)
        write_atomic(folder / "config.yaml", yaml.safe_dump(fit, sort_keys=False))
        start = time.perf_counter()
        curve = train(
            pipeline, self.data, self.settings, folder, trial.fidelity, monitor=self.metric, callbacks=self.callbacks
        )
        seconds = time.perf_counter() - start
        self.storage.push(name)
        return self._metrics(curve, trial.fidelity, folder), seconds

    def _metrics(self, curve: dict[str, Any], fidelity: int, folder: Path) -> list[dict[str, float]]:
        """Metrics of epochs 1..fidelity; epochs a diverged or out-of-memory run did not reach score 0."""
        points = [p["metrics"] for p in curve["points"] if p["fidelity"] > 0][:fidelity]
        if curve["status"] in ("diverged", "oom"):
            return points + [{self.metric: 0.0}] * (fidelity - len(points))
        if len(points) < fidelity:
            raise RunError(f"{folder / CURVE_FILE}: the run has {len(points)} epochs recorded, expected {fidelity}")
        return points

    def tested_epoch(self, config: dict[str, Any]) -> int:
        """The epoch (1-based) whose checkpoint ``test`` tested: the config's best by the tuned metric (read from the
        trial's folder as ``test`` brought it up to date, not fetched from storage again)."""
        import torch

        best = self.folder(config) / "checkpoints" / "best.ckpt"
        try:
            return int(torch.load(best, map_location="cpu", weights_only=True)["epoch"]) + 1
        except Exception as err:
            raise RunError(f"{best}: cannot read which epoch it holds ({type(err).__name__}: {err})") from err

    def test(self, config: dict[str, Any]) -> dict[str, float]:
        """Test-split metrics of a trained config's best checkpoint."""
        folder = self.storage.pull(self.name(config_key(config)))
        best = folder / "checkpoints" / "best.ckpt"
        if not best.exists():
            raise RunError(f"{best}: the config was never trained to a checkpoint")
        fit = fit_config(PipelineConfig(dict(config)), self.data, self.settings, str(folder), checkpoints=False)
        fit["trainer"]["callbacks"] = []
        fit["trainer"]["logger"] = False
        module, data, trainer = instantiate(fit)
        try:
            return trainer.test(module, data, ckpt_path=str(best), verbose=False, weights_only=True)[0]
        except Exception as err:
            raise RunError(f"{best}: cannot test the chosen config ({type(err).__name__}: {err})") from err
