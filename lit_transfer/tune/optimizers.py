"""Tuning methods behind one ask/tell interface, so the same loop runs and compares all of them.

``ask()`` returns the next ``Trial``: a config and the epoch to train it to, always one epoch beyond what was
observed for it (freeze-thaw: a trial continues a run, it does not restart it), or ``None`` when the method has
nothing left to run. ``tell(trial, curve, seconds)`` reports the config's whole curve so far. ``state_dict()``
is plain JSON-able data, so a tuning loop can save it after every ``tell`` and resume after a crash.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.tune.acquisition import (
    cost_aware_expected_improvement,
    expected_improvement,
    upper_confidence_bound,
)

Curve = list[dict[str, float]]


@dataclass(frozen=True)
class Trial:
    """Train ``config`` to epoch ``fidelity`` (continuing from its last observed epoch)."""

    config: dict[str, Any]
    fidelity: int

    @property
    def key(self) -> str:
        return PipelineConfig(self.config).key()


class Optimizer:
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
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------ interface
    def ask(self) -> Trial | None:
        raise NotImplementedError

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        if len(curve) != trial.fidelity:
            raise ValueError(f"trial asked for epoch {trial.fidelity} but the curve has {len(curve)} epochs")
        self.observed[trial.key] = (dict(trial.config), [dict(p) for p in curve])

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "observed": [[config, curve] for config, curve in self.observed.values()],
            "rng": _encode_rng(self.rng.getstate()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of {state.get('name')!r} cannot be loaded into {self.name!r}")
        self.observed = {PipelineConfig(c).key(): (c, curve) for c, curve in state["observed"]}
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
        entry = self.observed.get(PipelineConfig(dict(config)).key())
        return len(entry[1]) if entry else 0

    def pool(self) -> list[dict[str, Any]]:
        """Candidates that can still advance."""
        if self.candidates is None:
            raise ValueError(f"{self.name} needs a candidate set")
        return [c for c in self.candidates if self.epochs_done(c) < self.max_epochs]

    def continue_or_next(self, order: Sequence[Mapping[str, Any]]) -> Trial | None:
        """Run configs in ``order``, each to the last epoch before starting the next."""
        for config in order:
            done = self.epochs_done(config)
            if done < self.max_epochs:
                return Trial(dict(config), done + 1)
        return None


class ZeroShot(Optimizer):
    """No finetuning at all: the base model as it is (its zero-shot metric is the task's ``zero_shot_acc``)."""

    name = "zero_shot"

    def ask(self) -> Trial | None:
        return None


class Default(Optimizer):
    """The documented default pipeline, trained to the last epoch."""

    name = "default"

    def ask(self) -> Trial | None:
        return self.continue_or_next([self.space.default()])


class Portfolio(Optimizer):
    """The configs that did best on average over the meta-dataset's tasks, in that order, each to the last epoch.

    Args:
        ranked: configs best first (``portfolio_from_metadataset``).
    """

    name = "portfolio"

    def __init__(self, space: SearchSpace, ranked: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(space, ranked, **kwargs)

    def ask(self) -> Trial | None:
        return self.continue_or_next(self.candidates)


class RandomSearch(Optimizer):
    """Uniformly random candidates, each trained to the last epoch."""

    name = "random"

    def __init__(self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(space, candidates, **kwargs)
        self.order = list(range(len(self.candidates)))
        self.rng.shuffle(self.order)

    def ask(self) -> Trial | None:
        return self.continue_or_next([self.candidates[i] for i in self.order])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "order": self.order}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.order = list(state["order"])


class SurrogateOptimizer(Optimizer):
    """Freeze-thaw Bayesian optimization with a ``PerformanceSurrogate``: every candidate's next epoch is scored by
    the acquisition, given all observations of the task; the best is run for one more epoch.

    Args:
        perf: the performance surrogate.
        task_features: the task's meta-features (``metadataset.build.task_features``).
        cost: a ``CostSurrogate`` for cost-aware EI (optional).
        acquisition: ``ei``, ``cost_ei`` (EI per predicted second, ``cost_power``) or ``ucb`` (``beta``).
        horizon: the epoch a candidate is scored at: ``final`` (its predicted last-epoch value, given its curve
            so far) or ``next`` (its next epoch, as DyHPO does). Either way it is then trained one more epoch.
            On the shipped meta-dataset, ``final`` lowered Transfer's normalized regret at 10% of the budget
            from 0.34 to 0.24: it stays with a promising config instead of sampling first epochs, whose values
            say little about the last.
    """

    name = "surrogate"

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]], perf: Any,
        task_features: Mapping[str, float], cost: Any = None, acquisition: str = "ei",
        cost_power: float = 1.0, beta: float = 2.0, horizon: str = "final", **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(space, candidates, **kwargs)
        if acquisition not in ("ei", "cost_ei", "ucb"):
            raise ValueError(f"acquisition must be 'ei', 'cost_ei' or 'ucb', got {acquisition!r}")
        if acquisition == "cost_ei" and cost is None:
            raise ValueError("acquisition 'cost_ei' needs a cost surrogate")
        if horizon not in ("final", "next"):
            raise ValueError(f"horizon must be 'final' or 'next', got {horizon!r}")
        self.perf, self.cost, self.task_features = perf, cost, dict(task_features)
        self.acquisition, self.cost_power, self.beta, self.horizon = acquisition, cost_power, beta, horizon

    def scores(self, pool: list[dict[str, Any]]) -> np.ndarray:
        curves = [self.observed.get(PipelineConfig(c).key(), (c, []))[1] for c in pool]
        fidelity = [self.max_epochs if self.horizon == "final" else len(curve) + 1 for curve in curves]
        observed = list(self.observed.values())
        mean, std = self.perf.predict(pool, self.task_features, curves, fidelity, observed=observed)
        best = self.best()[1] if self.observed else 0.0
        if self.acquisition == "ucb":
            return upper_confidence_bound(mean, std, self.beta)
        if self.acquisition == "cost_ei":
            seconds = self.cost.predict_seconds(pool, self.task_features)
            return cost_aware_expected_improvement(mean, std, best, seconds, self.cost_power)
        return expected_improvement(mean, std, best)

    def ask(self) -> Trial | None:
        pool = self.pool()
        if not pool:
            return None
        chosen = pool[int(np.argmax(self.scores(pool)))]
        return Trial(chosen, self.epochs_done(chosen) + 1)


class Transfer(SurrogateOptimizer):
    """The meta-learned surrogates used as they are: no refit on the new task, whose observations enter only
    through the GP's conditioning and the curve encoder."""

    name = "transfer"


class QuickTune(SurrogateOptimizer):
    """Like ``Transfer``, but the surrogate is refit on the new task's observations after every ``tell``
    (task-specific Bayesian optimization starting from the meta-learned weights).

    Args:
        refit_steps: gradient steps on the task's observations per refit.
        refit_lr: their learning rate.
    """

    name = "quicktune"

    def __init__(self, *args: Any, refit_steps: int = 20, refit_lr: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial_state = copy.deepcopy(self.perf.state_dict())
        self.perf = copy.deepcopy(self.perf)
        self.refit_steps, self.refit_lr = refit_steps, refit_lr

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        super().tell(trial, curve, seconds)
        self.refit()

    def refit(self) -> None:
        """From the meta-learned weights, a few steps of the surrogate's own loss on this task's observations."""
        self.perf.load_state_dict(self.initial_state)
        batch = self.perf.encoding.observations(list(self.observed.values()), self.task_features)
        if batch is None or len(batch["target"]) < 2:
            return
        batch = {k: v[-self.perf.hparams.max_context :] for k, v in batch.items()}
        optimizer = torch.optim.Adam(self.perf.parameters(), lr=self.refit_lr)
        self.perf.train()
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            for _ in range(self.refit_steps):
                optimizer.zero_grad()
                self.perf.loss(batch).backward()
                optimizer.step()
        self.perf.eval()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.refit()


class DyHPO(QuickTune):
    """The same surrogate family trained from scratch on the new task's observations only (no meta-learning);
    until it has two observations, it starts random candidates."""

    name = "dyhpo"

    def __init__(self, *args: Any, refit_steps: int = 100, refit_lr: float = 1e-2, **kwargs: Any) -> None:
        super().__init__(*args, refit_steps=refit_steps, refit_lr=refit_lr, **kwargs)
        fresh = type(self.perf)(**{k: v for k, v in self.perf.hparams.items()})
        fresh.load_state_dict({**fresh.state_dict(), **_task_buffers(self.perf)})  # same task normalization
        self.perf, self.initial_state = fresh, copy.deepcopy(fresh.state_dict())

    def ask(self) -> Trial | None:
        if len(self.observed) < 2:
            pool = [c for c in self.pool() if self.epochs_done(c) == 0]
            if pool:
                return Trial(self.rng.choice(pool), 1)
        return super().ask()


def _task_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if k.startswith("task_")}


def _encode_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _decode_rng(state: Sequence) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class OptunaTPE(Optimizer):
    """Optuna's TPE sampler with its median pruner on the epochs: the peer most users already know.

    Each Optuna trial trains one config epoch by epoch, reporting the metric; the median pruner stops it early
    when it trails the other trials at the same epoch. With a candidate set, TPE's suggestion is snapped to the
    nearest candidate (in the space's encoding), and TPE is told the parameters of that candidate — the point
    actually evaluated — not its own suggestion (the suggestion is closed as failed, which TPE does not model).
    The history lives in Optuna's own storage: with ``storage`` (a journal file) a resumed run reloads the study
    from it. Needs ``pip install optuna`` (the ``optuna`` extra).

    Args:
        startup_trials: random trials before TPE models the results.
        storage: journal file of the study (``None``: in memory, not resumable).
    """

    name = "optuna_tpe"
    study_name = "lit_transfer"

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]] | None = None,
        startup_trials: int = 5, storage: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        try:
            import optuna
        except ImportError as err:
            raise ImportError("OptunaTPE needs optuna: pip install 'lit_transfer[optuna]'") from err
        super().__init__(space, candidates, **kwargs)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.startup_trials, self.storage = optuna, startup_trials, storage
        self.study = self._study()
        self.current: tuple[Any, dict[str, Any]] | None = None  # (optuna trial, config)

    def _study(self) -> Any:
        sampler = self.optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.startup_trials)
        pruner = self.optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=1)
        storage = None
        if self.storage is not None:
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            storage = JournalStorage(JournalFileBackend(str(self.storage)))
        return self.optuna.create_study(
            study_name=self.study_name, storage=storage, load_if_exists=True, direction="maximize", sampler=sampler,
            pruner=pruner,
        )  # fmt: skip

    def _distributions(self) -> dict[str, Any]:
        d = self.optuna.distributions
        out = {}
        for name, h in self.space.hyperparameters.items():
            if h.kind == "float":
                out[name] = d.FloatDistribution(h.low, h.high, log=h.log)
            else:
                out[name] = d.CategoricalDistribution(list(h.choices))
        return out

    def _snap(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The nearest candidate not yet trained to the last epoch (in the space's encoding)."""
        pool = self.pool()
        target = self.space.encode(params)
        distances = [float(np.sum((self.space.encode(c) - target) ** 2)) for c in pool]
        return pool[int(np.argmin(distances))]

    def ask(self) -> Trial | None:
        if self.current is None:
            if self.candidates is not None and not self.pool():
                return None
            distributions = self._distributions()
            suggestion = self.study.ask(distributions)
            if self.candidates is None:
                self.current = (suggestion, dict(suggestion.params))
            else:
                config = self._snap(suggestion.params)
                self.study.tell(suggestion, state=self.optuna.trial.TrialState.FAIL)  # not what was evaluated
                self.study.enqueue_trial(config)
                self.current = (self.study.ask(distributions), config)
        config = self.current[1]
        return Trial(config, self.epochs_done(config) + 1)

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        super().tell(trial, curve, seconds)
        optuna_trial = self.current[0]
        optuna_trial.report(self.value(curve[-1]), step=trial.fidelity)
        if trial.fidelity >= self.max_epochs:
            self._finish(optuna_trial, curve, pruned=False)
        elif optuna_trial.should_prune():
            self._finish(optuna_trial, curve, pruned=True)

    def _finish(self, optuna_trial: Any, curve: Sequence[Mapping[str, float]], pruned: bool) -> None:
        state = self.optuna.trial.TrialState.PRUNED if pruned else self.optuna.trial.TrialState.COMPLETE
        self.study.tell(optuna_trial, None if pruned else self.value(curve[-1]), state=state)
        self.current = None

    def state_dict(self) -> dict[str, Any]:
        current = None if self.current is None else {"number": self.current[0].number, "config": self.current[1]}
        return {**super().state_dict(), "current": current, "storage": self.storage}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.storage is None and self.observed:
            raise ValueError("OptunaTPE resumes from its study's journal: give it `storage`")
        self.study, self.current = self._study(), None
        current = state.get("current")
        if current is not None:
            frozen = self.study.trials[current["number"]]
            if frozen.state == self.optuna.trial.TrialState.RUNNING:  # continue the trial in flight
                self.current = (self.optuna.trial.Trial(self.study, frozen._trial_id), current["config"])
