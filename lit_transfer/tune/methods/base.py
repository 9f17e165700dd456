"""Tuning methods behind one ask/tell interface, so the same loop runs and compares all of them.

``ask()`` returns the next ``Trial``: a config and the epoch to train it to, always one epoch beyond what was
observed for it (freeze-thaw: a trial continues a run, it does not restart it), or ``None`` when the method has
nothing left to run now. ``start(trial)`` says a trial is in flight: until its ``tell(trial, curve, seconds)`` (the
config's whole curve so far) or ``fail(trial, reason)``, no ask returns its config again, so several trials can run
at once. ``state_dict()`` is plain JSON-able data, so a tuning loop can save it after every ``tell`` and resume
after a crash (the loop, not the method, remembers what was in flight).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lit_transfer.space import SearchSpace, config_key

Curve = list[dict[str, float]]


@dataclass(frozen=True)
class Trial:
    """Train ``config`` to epoch ``fidelity`` (continuing from its last observed epoch)."""

    config: dict[str, Any]
    fidelity: int

    @property
    def key(self) -> str:
        return config_key(self.config)


class TuningMethod:
    """Keeps the task's observations; subclasses decide what to run next.

    Args:
        space: the search space.
        candidates: the configs this method may choose from (``None``: any config of the space).
        metric: the metric maximized.
        seed: seed of the method's own randomness.
    """

    name = "base"

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]] | None = None,
        metric: str = "val/acc", seed: int = 0,
    ) -> None:  # fmt: skip
        self.space, self.metric, self.seed = space, metric, seed
        self.max_epochs = space.max_epochs
        self.candidates = [dict(c) for c in candidates] if candidates is not None else None
        if self.candidates is not None and not self.candidates:
            raise ValueError("no candidate configs to choose from")
        self.observed: dict[str, tuple[dict[str, Any], Curve]] = {}
        self.pending: dict[str, Trial] = {}  # in flight: started, not yet told
        self.failed: dict[str, str] = {}  # configs that could not be run, and why
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------ interface
    def ask(self) -> Trial | None:
        raise NotImplementedError

    def start(self, trial: Trial) -> None:
        if trial.key in self.pending:
            raise ValueError(f"config {trial.key} is already in flight")
        self.pending[trial.key] = trial

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        if len(curve) != trial.fidelity:
            raise ValueError(f"trial asked for epoch {trial.fidelity} but the curve has {len(curve)} epochs")
        self.pending.pop(trial.key, None)
        self.observed[trial.key] = (dict(trial.config), [dict(p) for p in curve])

    def fail(self, trial: Trial, reason: str) -> None:
        """The trial could not be run (its worker was lost twice): the config is not asked again."""
        self.pending.pop(trial.key, None)
        self.failed[trial.key] = reason

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "observed": [[config, curve] for config, curve in self.observed.values()],
            "failed": self.failed,
            "rng": _encode_rng(self.rng.getstate()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of {state.get('name')!r} cannot be loaded into {self.name!r}")
        if state.get("seed", self.seed) != self.seed:  # states saved before seeds were recorded: as they are
            raise ValueError(f"the state was made with seed {state['seed']}, not {self.seed}: give that seed")
        self.observed = {config_key(c): (c, curve) for c, curve in state["observed"]}
        self.failed, self.pending = dict(state.get("failed", {})), {}
        self.rng.setstate(_decode_rng(state["rng"]))

    # ------------------------------------------------------------------ helpers
    def value(self, point: Mapping[str, float]) -> float:
        v = point.get(self.metric)
        return float(v) if v is not None and np.isfinite(v) else 0.0

    def best(self) -> tuple[dict[str, Any] | None, float]:
        """The incumbent: the config with the best observed metric at any epoch, and that value."""
        best_config, best_value = None, -np.inf
        for config, curve in self.observed.values():
            for point in curve:
                if self.value(point) > best_value:
                    best_config, best_value = config, self.value(point)
        return best_config, best_value

    def epochs_done(self, config: Mapping[str, Any]) -> int:
        entry = self.observed.get(config_key(config))
        return len(entry[1]) if entry else 0

    def available(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` can advance now: not at the last epoch, not in flight, not failed."""
        key = config_key(config)
        return key not in self.pending and key not in self.failed and self.epochs_done(config) < self.max_epochs

    def pool(self) -> list[dict[str, Any]]:
        """Candidates that can advance now."""
        if self.candidates is None:
            raise ValueError(f"{self.name} needs a candidate set")
        return [c for c in self.candidates if self.available(c)]

    def nearest(self, params: Mapping[str, Any], pool: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The config of ``pool`` nearest to ``params`` in the space's encoding (how a suggestion of a method that
        searches the whole space is snapped to a candidate)."""
        target = self.space.encode(params)
        distances = [float(np.sum((self.space.encode(c) - target) ** 2)) for c in pool]
        return dict(pool[int(np.argmin(distances))])

    def continue_or_next(self, order: Sequence[Mapping[str, Any]]) -> Trial | None:
        """Run configs in ``order``, each to the last epoch before starting the next (with several workers, the
        next ones start while the first is in flight)."""
        for config in order:
            if self.available(config):
                return Trial(dict(config), self.epochs_done(config) + 1)
        return None


def _encode_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _decode_rng(state: Sequence) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
