"""Freeze-thaw Bayesian optimization with performance surrogates: Transfer (the meta-learned surrogates as they
are), QuickTune (refit on the new task) and DyHPO (trained on the new task only). They use the surrogate only
through its interface (``lit_transfer.surrogate.base.PerformancePredictor``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.stats import norm

from lit_transfer.space import SearchSpace, config_key
from lit_transfer.tune.acquisition import (
    cost_aware_expected_improvement,
    expected_improvement,
    expected_improvement_per_epoch,
    upper_confidence_bound,
)
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec

ACQUISITIONS = ("ei", "cost_ei", "ei_remaining", "ucb")
FLAT = 1e-3  # a value within this of the task's zero-shot value has not learned anything
PROBE_EPOCHS = 2  # epochs a config gets before a task where nothing learns moves on to another


class SurrogateMethod(TuningMethod):
    """Freeze-thaw Bayesian optimization with a ``PerformanceSurrogate``: every candidate's next epoch is scored by
    the acquisition, given all observations of the task; the best is run for one more epoch.

    Args:
        perf: the performance surrogate (``PerformancePredictor``; QuickTune and DyHPO refit it:
            ``RefittablePredictor``).
        task_features: the task's meta-features (``metadataset.build.task_features``).
        cost: a cost surrogate (``CostPredictor``) for cost-aware EI (optional).
        acquisition: ``ei``, ``cost_ei`` (EI per predicted second, ``cost_power``), ``ei_remaining`` (EI of the
            final value per epoch still to run; with ``horizon: final``) or ``ucb`` (``beta``).
            ``ei_remaining`` takes a config that is forecast to beat the incumbent to its end instead of starting
            ever more configs whose forecasts are as good but further from done (plain EI of the final value
            spreads a budget thin: it ignores what reaching the final value costs).
        horizon: the epoch a candidate is scored at: ``final`` (its predicted last-epoch value, given its curve
            so far) or ``next`` (its next epoch, as DyHPO does). Either way it is then trained one more epoch.
            On the shipped meta-dataset, ``final`` lowered Transfer's normalized regret at 10% of the budget
            from 0.34 to 0.24: it stays with a promising config instead of sampling first epochs, whose values
            say little about the last.
        drop_below: keep training the config advanced last until the predicted chance that its final value beats
            the best value of every other config falls below this; only then does the acquisition choose (a new
            config, or one paused before). ``None``: every step goes where the acquisition says. A slow starter
            is then not left after two epochs for a fresh config that looks as good only because nothing is
            known of it yet, which cost the anytime result: the detour came back to the first config anyway.
        keep_on_experience: with ``drop_below``, also keep training the config advanced last while the
            experience alone (its prediction for the config on this task before any of its epochs) gives it that
            chance. A forecast from a few epochs of a new kind of task cannot tell a late riser from a config that
            never learns; the recorded runs of similar configs can. On experience v2, leave one family out, every
            task on which Portfolio ended above Transfer was one where Transfer had started Portfolio's winner and
            dropped it after 1 to 4 epochs (it peaked at epoch 7 or 8).
    """

    name = "surrogate"

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]], perf: Any,
        task_features: Mapping[str, float], cost: Any = None, acquisition: str = "ei",
        cost_power: float = 1.0, beta: float = 2.0, horizon: str = "final", incumbent: str = "observed",
        drop_below: float | None = None, keep_on_experience: bool = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(space, candidates, **kwargs)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
        if acquisition == "cost_ei" and cost is None:
            raise ValueError("acquisition 'cost_ei' needs a cost surrogate")
        if horizon not in ("final", "next"):
            raise ValueError(f"horizon must be 'final' or 'next', got {horizon!r}")
        if acquisition == "ei_remaining" and horizon != "final":
            raise ValueError("acquisition 'ei_remaining' scores final values: use it with horizon 'final'")
        if incumbent not in ("observed", "predicted"):
            raise ValueError(f"incumbent must be 'observed' or 'predicted', got {incumbent!r}")
        self.perf, self.cost, self.task_features = perf, cost, dict(task_features)
        self.acquisition, self.cost_power, self.beta, self.horizon = acquisition, cost_power, beta, horizon
        if drop_below is not None and not 0.0 < drop_below < 1.0:
            raise ValueError(f"drop_below must be a probability in (0, 1), got {drop_below}")
        self.incumbent, self.drop_below, self.keep_on_experience = incumbent, drop_below, keep_on_experience
        self.last: str | None = None  # the config asked or told last (see ``tell``)

    def curve(self, config: Mapping[str, Any]) -> list[dict[str, float]]:
        return self.observed.get(config_key(config), (config, []))[1]

    def fantasies(self) -> list[tuple[dict[str, Any], list[dict[str, float]]]]:
        """Observations as if every trial in flight had ended at the surrogate's mean ("kriging believer"): the
        GP then conditions on them, so its uncertainty near configs in flight shrinks and parallel asks spread
        out instead of all landing next to one another."""
        if not self.pending:
            return []
        trials = list(self.pending.values())
        configs = [t.config for t in trials]
        curves = [self.curve(t.config) for t in trials]
        observed = list(self.observed.values())
        fidelity = [t.fidelity for t in trials]
        mean, _ = self.perf.predict(configs, self.task_features, curves, fidelity, observed=observed)
        return [(c, [*curve, {self.metric: float(m)}]) for c, curve, m in zip(configs, curves, mean, strict=True)]

    def conditioning(self) -> list[tuple[dict[str, Any], list[dict[str, float]]]]:
        """What the surrogate is told of the task: every observation, the trials in flight as their fantasies."""
        return [o for k, o in self.observed.items() if k not in self.pending] + self.fantasies()

    def scores(self, pool: list[dict[str, Any]]) -> np.ndarray:
        curves = [self.curve(c) for c in pool]
        fidelity = [self.max_epochs if self.horizon == "final" else len(curve) + 1 for curve in curves]
        mean, std = self.perf.predict(pool, self.task_features, curves, fidelity, observed=self.conditioning())
        best = self.reference(pool, curves, mean) if self.observed else 0.0
        if self.acquisition == "ucb":
            return upper_confidence_bound(mean, std, self.beta)
        if self.acquisition == "cost_ei":
            seconds = self.cost.predict_seconds(pool, self.task_features)
            return cost_aware_expected_improvement(mean, std, best, seconds, self.cost_power)
        if self.acquisition == "ei_remaining":
            remaining = np.array([self.max_epochs - len(curve) for curve in curves])
            return expected_improvement_per_epoch(mean, std, best, remaining)
        return expected_improvement(mean, std, best)

    def reference(self, pool: list[dict[str, Any]], curves: list, mean: np.ndarray) -> float:
        """What a candidate must beat. ``incumbent: observed``: the best value observed at any epoch.
        ``predicted`` (with ``horizon: final``): the best final value of the configs run so far, as forecast for
        those still under way (their ``mean``) and as observed for finished ones; a noisy early spike then does
        not set a bar that no forecast of a final value reaches, which sent EI after the widest forecasts (fresh
        configs) instead of the best ones."""
        if self.incumbent == "observed" or self.horizon != "final":
            return self.best()[1]
        started = [float(m) for m, curve in zip(mean, curves, strict=True) if curve]
        finished = [self.value(curve[-1]) for _, curve in self.observed.values() if len(curve) >= self.max_epochs]
        return max(started + finished, default=self.best()[1])

    def ask(self) -> Trial | None:
        pool = self.pool()
        if not pool:
            return None
        chosen = self.continued(pool)
        if chosen is None:
            fresh = [c for c in pool if self.epochs_done(c) == 0]
            if self.stuck() and fresh:
                pool = fresh  # nothing learns yet: probe another config rather than train a flat one further
            chosen = pool[int(np.argmax(self.scores(pool)))]
        self.last = config_key(chosen)
        return Trial(chosen, self.epochs_done(chosen) + 1)

    def floor(self) -> float:
        """What the task scores without finetuning (its zero-shot value): a config at or below it has learned
        nothing yet."""
        return float(self.task_features.get("zero_shot_acc", 0.0))

    def stuck(self) -> bool:
        """Every config run so far sits at the floor after ``PROBE_EPOCHS`` epochs or more of its own: nothing
        the task has shown says which config will learn, so the budget goes to trying more of them."""
        if self.drop_below is None or not self.observed:
            return False
        floor = self.floor()
        flat = [all(self.value(p) <= floor + FLAT for p in curve) for _, curve in self.observed.values()]
        tried = [len(curve) >= PROBE_EPOCHS for _, curve in self.observed.values()]
        return all(flat) and any(tried)

    def continued(self, pool: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The config advanced last, if it can advance and is on track (at its epoch, at least level with every
        other config at the same epoch: what a late riser looks like on a task whose curves all rise late) or
        still has at least a ``drop_below`` chance of ending above the best value any other config has reached
        (``None`` otherwise, or without ``drop_below``)."""
        if self.drop_below is None or self.last is None:
            return None
        config = next((c for c in pool if config_key(c) == self.last), None)
        if config is None:
            return None
        own = self.curve(config)
        if self.stuck() and len(own) >= PROBE_EPOCHS:
            return None  # flat, like every other: probe another config (``stuck``)
        others = [curve for key, (_, curve) in self.observed.items() if key != self.last]
        if not others:
            return config
        level = [self.value(curve[len(own) - 1]) for curve in others if len(curve) >= len(own)]
        learned = bool(own) and self.value(own[-1]) > self.floor() + FLAT
        if learned and level and self.value(own[-1]) >= max(level):
            return config  # on track: it learns, and is level with the best other config at the same epoch
        # the bar: the best any other config reached, and never below what no finetuning gives
        bar = max(max(self.value(p) for curve in others for p in curve), self.floor() + FLAT)
        if self.chance(config, own, bar, self.conditioning()) >= self.drop_below:
            return config
        slow = learned or len(own) < PROBE_EPOCHS  # a slow start; a config flat for PROBE_EPOCHS has shown more
        if self.keep_on_experience and slow and self.chance(config, [], bar, []) >= self.drop_below:
            return config  # what the experience says of the config here outweighs a slow start (not a flat one)
        return None

    def chance(self, config: dict[str, Any], curve: list, bar: float, observed: list) -> float:
        """The predicted probability that ``config``'s final value ends above ``bar``, given its ``curve`` so far and
        the task's ``observed`` runs."""
        mean, std = self.perf.predict([config], self.task_features, [curve], [self.max_epochs], observed=observed)
        return float(1.0 - norm.cdf(bar, loc=float(mean[0]), scale=max(float(std[0]), 1e-9)))

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        """Also make the config just told the one to consider continuing: with steps in flight, the next ask is
        the freed worker's, and the config advanced last by then is another worker's (in flight, so not in the
        pool), which left every config to the acquisition and broke the freeze-thaw chain of each worker
        (2 workers took longer than one to reach one worker's result on the first experience)."""
        super().tell(trial, curve, seconds)
        self.last = trial.key

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last": self.last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.last = state.get("last")


class Transfer(SurrogateMethod):
    """The meta-learned surrogates used as they are: no refit on the new task, whose observations enter only
    through the surrogate's conditioning on them. A config the experience rates keeps training through a slow
    start (``keep_on_experience``)."""

    name = "transfer"

    def __init__(self, *args: Any, keep_on_experience: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, keep_on_experience=keep_on_experience, **kwargs)


class QuickTune(SurrogateMethod):
    """Like ``Transfer``, but the surrogate is refit on the new task's observations after every ``tell``
    (task-specific Bayesian optimization starting from the meta-learned weights).

    Args:
        refit_steps: gradient steps on the task's observations per refit.
        refit_lr: their learning rate.
    """

    name = "quicktune"

    def __init__(self, *args: Any, refit_steps: int = 20, refit_lr: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.perf = copy.deepcopy(self.perf)  # refitting must not touch the caller's surrogate
        self.perf.reset()  # remember the meta-learned weights, which every refit starts from
        self.refit_steps, self.refit_lr = refit_steps, refit_lr

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        super().tell(trial, curve, seconds)
        self.refit()

    def refit(self) -> None:
        """From the meta-learned weights, a few steps of the surrogate's own loss on this task's observations."""
        self.perf.refit(list(self.observed.values()), self.task_features, self.refit_steps, self.refit_lr, self.seed)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.refit()


class DyHPO(QuickTune):
    """The same surrogate family trained from scratch on the new task's observations only (no meta-learning);
    until it has two observations, it starts random candidates."""

    name = "dyhpo"

    def __init__(self, *args: Any, refit_steps: int = 100, refit_lr: float = 1e-2, **kwargs: Any) -> None:
        super().__init__(*args, refit_steps=refit_steps, refit_lr=refit_lr, **kwargs)
        self.perf = self.perf.untrained(self.seed)  # the same task normalization, no meta-learned weights
        self.perf.reset()

    def ask(self) -> Trial | None:
        if len(self.observed) < 2:
            pool = [c for c in self.pool() if self.epochs_done(c) == 0]
            if pool:
                return Trial(self.rng.choice(pool), 1)
        return super().ask()


@dataclass
class SurrogateSpec(MethodSpec):
    """Options of every freeze-thaw method with a performance surrogate (``SurrogateMethod`` says what each does).

    Args:
        acquisition: ``ei``, ``cost_ei``, ``ei_remaining`` (EI of the final value per epoch still to train) or
            ``ucb``.
        horizon: the epoch a candidate is scored at: ``final`` or ``next``.
        incumbent: what EI must beat: the best value ``observed``, or the best final value ``predicted`` of the
            configs run so far.
        drop_below: keep training the config advanced last while its predicted chance of ending above every other
            config's best is at least this (``None``: the acquisition chooses every step).
        cost_power: the exponent of the predicted seconds EI is divided by (``cost_ei``).
        beta: UCB's weight of the standard deviation (``ucb``).
    """

    acquisition: str = "ei_remaining"
    horizon: str = "final"
    incumbent: str = "predicted"
    drop_below: float | None = 0.2
    cost_power: float = 1.0
    beta: float = 2.0

    def options(self, context: MethodContext) -> dict[str, Any]:
        """The surrogates the spec declares and its options, as every surrogate method takes them."""
        found = context.surrogates()
        return {
            "perf": found.perf if self.surrogate == "performance" else found.refit, "cost": found.cost,
            "task_features": context.task_features, "acquisition": self.acquisition, "horizon": self.horizon,
            "incumbent": self.incumbent, "drop_below": self.drop_below, "cost_power": self.cost_power,
            "beta": self.beta, "seed": context.seed,
        }  # fmt: skip


@dataclass
class TransferSpec(SurrogateSpec):
    """Transfer: the meta-learned surrogates as they are, conditioned on the task's observations.

    Args:
        keep_on_experience: with ``drop_below``, also keep the config advanced last while the experience alone
            gives it that chance.
    """

    name: ClassVar[str] = "transfer"
    randomness: ClassVar[str] = "none"
    surrogate: ClassVar[str | None] = "performance"
    keep_on_experience: bool = True

    def build(self, context: MethodContext) -> Transfer:
        return Transfer(
            context.space, context.candidates, keep_on_experience=self.keep_on_experience, **self.options(context)
        )


@dataclass
class QuickTuneSpec(SurrogateSpec):
    """QuickTune: the meta-learned deep-kernel GP refit on the task after every observation.

    Args:
        refit_steps: gradient steps of each refit.
        refit_lr: their learning rate.
    """

    name: ClassVar[str] = "quicktune"
    randomness: ClassVar[str] = "refit"
    surrogate: ClassVar[str | None] = "refit"
    method: ClassVar[type[QuickTune]] = QuickTune
    refit_steps: int = 20
    refit_lr: float = 1e-3

    def build(self, context: MethodContext) -> QuickTune:
        return self.method(context.space, context.candidates, refit_steps=self.refit_steps, refit_lr=self.refit_lr,
                           **self.options(context))  # fmt: skip


@dataclass
class DyHPOSpec(QuickTuneSpec):
    """DyHPO: the deep-kernel GP trained on the task's observations only (each fit from fresh weights).

    Args:
        refit_steps: gradient steps of each fit from scratch.
        refit_lr: their learning rate.
    """

    name: ClassVar[str] = "dyhpo"
    method: ClassVar[type[QuickTune]] = DyHPO
    refit_steps: int = 30
    refit_lr: float = 1e-2
