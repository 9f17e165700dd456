"""Methods that need no model of the task: no finetuning, the default pipeline, the portfolio of configs that did
best on related tasks, and random search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lit_transfer.space import SearchSpace
from lit_transfer.tune.methods.base import Trial, TuningMethod


class ZeroShot(TuningMethod):
    """No finetuning at all: the base model as it is (its zero-shot metric is the task's ``zero_shot_acc``)."""

    name = "zero_shot"

    def ask(self) -> Trial | None:
        return None


class Default(TuningMethod):
    """The documented default pipeline, trained to the last epoch."""

    name = "default"

    def ask(self) -> Trial | None:
        return self.continue_or_next([self.space.default()])


class Portfolio(TuningMethod):
    """The shared configs that did best on average over the meta-dataset's tasks, in that order, each to the last
    epoch.

    Args:
        ranked: configs best first (``lit_transfer.tune.replay.portfolio``: the shared configs by their mean).
    """

    name = "portfolio"

    def __init__(self, space: SearchSpace, ranked: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(space, ranked, **kwargs)

    def ask(self) -> Trial | None:
        return self.continue_or_next(self.candidates)


class RandomSearch(TuningMethod):
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
