"""Optuna's TPE with its median pruner behind the tuning-method interface (the ``optuna`` extra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lit_transfer.space import SearchSpace, config_key
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec


class OptunaTPE(TuningMethod):
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
        self.running: dict[str, tuple[Any, dict[str, Any]]] = {}  # config key -> (its Optuna trial, config)

    def _study(self) -> Any:
        # constant liar: trials in flight count as bad results, so parallel asks spread out
        sampler = self.optuna.samplers.TPESampler(
            seed=self.seed, n_startup_trials=self.startup_trials, constant_liar=True
        )
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
        return self.nearest(params, self.pool())

    def ask(self) -> Trial | None:
        for key, (_, config) in self.running.items():  # an Optuna trial waiting for its next epoch
            if key not in self.pending:
                return Trial(config, self.epochs_done(config) + 1)
        if self.candidates is not None and not self.pool():
            return None
        distributions = self._distributions()
        suggestion = self.study.ask(distributions)
        if self.candidates is None:
            config = dict(suggestion.params)
            self.running[config_key(config)] = (suggestion, config)
        else:
            config = self._snap(suggestion.params)
            self.study.tell(suggestion, state=self.optuna.trial.TrialState.FAIL)  # not what was evaluated
            self.study.enqueue_trial(config)
            self.running[config_key(config)] = (self.study.ask(distributions), config)
        return Trial(config, self.epochs_done(config) + 1)

    def tell(self, trial: Trial, curve: Sequence[Mapping[str, float]], seconds: float = 0.0) -> None:
        super().tell(trial, curve, seconds)
        optuna_trial = self.running[trial.key][0]
        optuna_trial.report(self.value(curve[-1]), step=trial.fidelity)
        if trial.fidelity >= self.max_epochs:
            self._finish(trial.key, curve, pruned=False)
        elif optuna_trial.should_prune():
            self._finish(trial.key, curve, pruned=True)

    def fail(self, trial: Trial, reason: str) -> None:
        super().fail(trial, reason)
        optuna_trial, _ = self.running.pop(trial.key)
        self.study.tell(optuna_trial, state=self.optuna.trial.TrialState.FAIL)

    def _finish(self, key: str, curve: Sequence[Mapping[str, float]], pruned: bool) -> None:
        optuna_trial, _ = self.running.pop(key)
        state = self.optuna.trial.TrialState.PRUNED if pruned else self.optuna.trial.TrialState.COMPLETE
        self.study.tell(optuna_trial, None if pruned else self.value(curve[-1]), state=state)

    def state_dict(self) -> dict[str, Any]:
        running = [{"number": t.number, "config": config} for t, config in self.running.values()]
        return {**super().state_dict(), "running": running, "storage": self.storage}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.storage is None and self.observed:
            raise ValueError("OptunaTPE resumes from its study's journal: give it `storage`")
        self.study, self.running = self._study(), {}
        for entry in state.get("running", []):
            frozen = self.study.trials[entry["number"]]
            if frozen.state == self.optuna.trial.TrialState.RUNNING:  # continue the trials in flight
                trial = self.optuna.trial.Trial(self.study, frozen._trial_id)
                self.running[config_key(entry["config"])] = (trial, entry["config"])


@dataclass
class OptunaTPESpec(MethodSpec):
    """Optuna's TPE with its median pruner; its study is kept in a journal beside the tuning state.

    Args:
        startup_trials: random trials before TPE models the results.
    """

    name: ClassVar[str] = "optuna_tpe"
    randomness: ClassVar[str] = "random"
    startup_trials: int = 5

    def build(self, context: MethodContext) -> OptunaTPE:
        journal = None if context.state_file is None else str(context.state_file.with_suffix(".optuna.journal"))
        return OptunaTPE(
            context.space, context.candidates, startup_trials=self.startup_trials, storage=journal, seed=context.seed
        )
