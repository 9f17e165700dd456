"""Experience that grows with use: ``tune --record_into`` writes every trial of the user's task (its curve so far,
cost and status) into a meta-dataset of the user's own, after every step; ``surrogate train --own`` then
meta-trains on the shipped experience plus that file. The shipped files are never written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lit_transfer.metadataset.build import versions
from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError, RunRecord
from lit_transfer.resources import ASSETS
from lit_transfer.space import config_key
from lit_transfer.tune.loop import Step
from lit_transfer.tune.methods.base import TuningMethod


def check_own(path: str | Path) -> Path:
    """``path`` if it may hold a user's own experience: not a file shipped with the package."""
    resolved = Path(path).resolve()
    refused = ValueError(f"{path}: the shipped experience is never written; record into a file of your own")
    if resolved == ASSETS.resolve() or ASSETS.resolve() in resolved.parents:
        raise refused
    if resolved.exists():  # a hard link to a shipped file has a path of its own: compare the files themselves
        found = resolved.stat()
        for shipped in ASSETS.rglob("*"):
            if shipped.is_file() and _same_file(found, shipped.stat()):
                raise refused
    return resolved


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class TrialRecorder:
    """Writes a task's trials into the user's meta-dataset (created if missing), one run per config, replaced as
    its curve grows. Only the tuning driver calls it: one writer.

    Args:
        path: the user's meta-dataset file.
        task: the task's name in it.
        features: the task's meta-features.
        family: the kind of task it is (default: a family of its own), held out with its kin when evaluated.
        settings: the run settings of the trials (``RunSettings``).
    """

    def __init__(
        self, path: str | Path, task: str, features: Mapping[str, float], settings: Any, family: str | None = None
    ) -> None:
        self.path, self.task, self.settings = check_own(path), task, settings
        with MetaDataset(self.path, create=True) as store:
            known = store.tasks().get(task)
            if known is not None and known != dict(features):
                raise MetaDatasetError(
                    f"{path}: task {task!r} is already recorded with other meta-features (another dataset?); "
                    "name this one differently (--task_name)"
                )
            recorded = store.families().get(task)
            if known is not None and family is not None and recorded != family:
                raise MetaDatasetError(f"{path}: task {task!r} is recorded in family {recorded!r}, not {family!r}")
            store.add_task(task, dict(features), family if known is None else recorded)

    def record(self, step: Step, config: Mapping[str, Any], curve: Mapping[str, Any] | None) -> None:
        """The ``config`` of ``step`` as recorded so far: its trial's ``curve.json`` (None for a failed step).
        Idempotent: recording a config again replaces its run."""
        common = {"task": self.task, "config": dict(config), "seed": self.settings.seed,
                  "base_model": self.settings.base_model, "max_epochs": self.settings.max_epochs,
                  "versions": versions()}  # fmt: skip
        if curve is None:
            run = RunRecord(status="failed", message=step.message, **common)
        else:
            cost = curve.get("cost", {})
            run = RunRecord(
                status=curve["status"], message=curve.get("message"), curve=curve["points"],
                seconds=cost.get("seconds", 0.0), tokens=cost.get("tokens", 0), device=cost.get("device", "cpu"),
                **common,
            )  # fmt: skip
        with MetaDataset(self.path) as store:
            store.add_run(run)


def reconcile(recorder: TrialRecorder, state_file: Path, curve: Any) -> int:
    """A resumed tuning first records again every config its state holds (``curve(config_key)``: its trial's curve
    in storage): a step saved in the state whose recording failed (a full disk) is recorded now, not lost. Returns
    how many configs were recorded."""
    from lit_transfer.tune.loop import load_state

    if not state_file.exists():
        return 0
    state = load_state(state_file)
    configs = {config_key(c): c for c, _ in state.method.get("observed", [])}
    last = {step.config_key: step for step in state.history if step.config_key in configs}
    for key, step in last.items():
        recorder.record(step, configs[key], None if step.status == "failed" else curve(key))
    return len(last)


def config_of(method: TuningMethod, key: str) -> dict[str, Any]:
    """The config a method knows by ``key`` (observed, or among its candidates)."""
    if key in method.observed:
        return dict(method.observed[key][0])
    for config in method.candidates or []:
        if config_key(config) == key:
            return dict(config)
    raise KeyError(f"config {key} is unknown to the method")
