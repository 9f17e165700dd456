"""DEHB (differential evolution with Hyperband) behind the tuning-method interface, with the epochs as fidelity:
the meta-optimization baseline of the research we build on (the ``dehb`` extra, then ``pip install --no-deps
dehb==0.1.2``: its release pins numpy < 2 but runs on numpy 2).

DEHB asks for a config at a fidelity (a number of epochs, from Hyperband's brackets: 3 and 8 of 8 epochs with
``eta=3``). Here a config is trained one epoch at a time (freeze-thaw), so a job continues its config until it has
the epochs asked for; then DEHB is told the metric at that epoch and what those epochs cost. A config that already
has the epochs (trained for an earlier job) is told at once, at no cost: a higher fidelity continues the same run.
With a candidate set, DEHB's suggestion is snapped to the nearest candidate that can advance (in the space's
encoding), as for Optuna. Several jobs may be in flight at once (DEHB's asynchronous mode).

The state is the sequence of asks and tells: resumed, a new DEHB with the same seed replays it and is where it was.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lit_transfer.space import SearchSpace, config_key
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec


class DEHB(TuningMethod):
    """DEHB over the space, fidelity = epochs (``min_epochs`` to the space's maximum).

    Args:
        eta: Hyperband's reduction factor.
        min_epochs: the lowest fidelity.
    """

    name = "dehb"

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]] | None = None, eta: int = 3,
        min_epochs: int = 1, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(space, candidates, **kwargs)
        self.eta, self.min_epochs = eta, min_epochs
        self.events: list[dict[str, Any]] = []  # asks and tells, in order: what a resume replays
        self.jobs: dict[str, dict[str, Any]] = {}  # config key -> its open job: {ask: event index, epochs, cost}
        self.dehb, self.asked = self._new(), []

    def _new(self) -> Any:
        try:
            from dehb import DEHB as Optimizer
            from loguru import logger
        except ImportError as err:
            raise ImportError(
                "the dehb method needs DEHB: pip install 'lit_transfer[dehb]' && pip install --no-deps dehb==0.1.2"
            ) from err
        folder = tempfile.mkdtemp(prefix="lit_transfer_dehb_")
        try:
            optimizer = Optimizer(
                cs=self._configspace(), min_fidelity=self.min_epochs, max_fidelity=self.max_epochs, eta=self.eta,
                n_workers=1, seed=self.seed, output_path=folder, log_level="ERROR", save_freq="end",
            )  # fmt: skip
        finally:
            logger.remove()  # DEHB points loguru at stdout and a log file: commands print only their own lines
            shutil.rmtree(folder, ignore_errors=True)
        return optimizer

    def _configspace(self) -> Any:
        import ConfigSpace as CS

        cs = CS.ConfigurationSpace(seed=self.seed)
        for name, h in self.space.hyperparameters.items():
            if h.kind == "float":
                cs.add(CS.Float(name, (h.low, h.high), log=h.log))
            elif h.kind == "ordinal":
                cs.add(CS.OrdinalHyperparameter(name, list(h.choices)))
            else:
                cs.add(CS.Categorical(name, list(h.choices)))
        return cs

    def _epochs(self, fidelity: float) -> int:
        return min(self.max_epochs, max(1, math.ceil(fidelity - 1e-9)))

    def _snap(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.candidates is None:
            return dict(self.space.config({k: getattr(v, "item", lambda v=v: v)() for k, v in params.items()}).values)
        busy = self.pending.keys() | self.jobs.keys() | self.failed.keys()
        pool = [c for c in self.candidates if config_key(c) not in busy]
        return self.nearest(params, pool) if pool else None

    def _ask_dehb(self) -> tuple[int, dict[str, Any]]:
        job = self.dehb.ask()
        self.asked.append(job)
        return len(self.asked) - 1, job

    def _tell_dehb(self, index: int, value: float, cost: float) -> None:
        self.dehb.tell(self.asked[index], {"fitness": -value, "cost": cost})

    def ask(self) -> Trial | None:
        for key, job in self.jobs.items():  # an open job waiting for its next epoch
            if key not in self.pending:
                config = self.events[job["ask"]]["config"]
                return Trial(config, self.epochs_done(config) + 1)
        for _ in range(100):  # configs that already have the epochs asked for are told at once
            index, job = self._ask_dehb()
            config = self._snap(dict(job["config"]))
            if config is None:
                self.asked.pop()  # nothing can advance now; DEHB's ask is replayed only when recorded
                self.dehb = self._replayed()
                return None
            epochs = self._epochs(job["fidelity"])
            self.events.append({"ask": index, "config": config, "epochs": epochs})
            key = config_key(config)
            if self.epochs_done(config) >= epochs:
                self._tell(len(self.events) - 1, self._value_at(config, epochs), 0.0)
                continue
            self.jobs[key] = {"ask": len(self.events) - 1, "epochs": epochs, "cost": 0.0}
            return Trial(config, self.epochs_done(config) + 1)
        return None

    def _value_at(self, config: Mapping[str, Any], epochs: int) -> float:
        curve = self.observed[config_key(config)][1]
        return self.value(curve[epochs - 1])

    def _tell(self, event: int, value: float, cost: float) -> None:
        self._tell_dehb(self.events[event]["ask"], value, cost)
        self.events.append({"tell": event, "value": value, "cost": cost})

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        super().tell(trial, curve, seconds)
        job = self.jobs.get(trial.key)
        if job is None:
            return
        job["cost"] += seconds
        if trial.fidelity >= job["epochs"]:
            del self.jobs[trial.key]
            self._tell(job["ask"], self.value(curve[job["epochs"] - 1]), job["cost"])

    def fail(self, trial: Trial, reason: str) -> None:
        super().fail(trial, reason)
        job = self.jobs.pop(trial.key, None)
        if job is not None:  # DEHB is told it scored nothing, so its brackets go on
            self._tell(job["ask"], 0.0, job["cost"])

    def _replayed(self) -> Any:
        """A new DEHB with the same seed, told everything in the recorded order."""
        self.dehb, self.asked = self._new(), []
        for event in self.events:
            if "ask" in event:
                self._ask_dehb()
            else:
                self._tell_dehb(self.events[event["tell"]]["ask"], event["value"], event["cost"])
        return self.dehb

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "events": self.events, "jobs": self.jobs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.events = [dict(e) for e in state["events"]]
        self.jobs = {k: dict(v) for k, v in state["jobs"].items()}
        self._replayed()


@dataclass
class DEHBSpec(MethodSpec):
    """DEHB with the epochs as fidelity.

    Args:
        eta: Hyperband's reduction factor.
        min_epochs: the lowest fidelity.
    """

    name: ClassVar[str] = "dehb"
    randomness: ClassVar[str] = "random"
    eta: int = 3
    min_epochs: int = 1

    def build(self, context: MethodContext) -> DEHB:
        return DEHB(context.space, context.candidates, eta=self.eta, min_epochs=self.min_epochs, seed=context.seed)
