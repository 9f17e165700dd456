"""Methods that need no model of the task: no finetuning, the default pipeline, the portfolio of configs that did
best on related tasks, and random search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lit_transfer.space import SearchSpace
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec


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
        ranked: configs best first (``lit_transfer.metadataset.portfolio``: the shared configs by their mean).
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


@dataclass
class ZeroShotSpec(MethodSpec):
    """No finetuning: the base model as it is."""

    name: ClassVar[str] = "zero_shot"
    randomness: ClassVar[str] = "none"
    method: ClassVar[type[TuningMethod]] = ZeroShot


@dataclass
class DefaultSpec(MethodSpec):
    """The search space's default pipeline, trained to the last epoch."""

    name: ClassVar[str] = "default"
    randomness: ClassVar[str] = "none"
    method: ClassVar[type[TuningMethod]] = Default


@dataclass
class PortfolioSpec(MethodSpec):
    """The shared configs of the experience (without the tasks held out) by their mean final metric, each trained
    to the last epoch in that order."""

    name: ClassVar[str] = "portfolio"
    randomness: ClassVar[str] = "none"

    def build(self, context: MethodContext) -> Portfolio:
        from lit_transfer.metadataset.portfolio import portfolio

        ranked = portfolio(context.metadataset, exclude=context.exclude_tasks)
        return Portfolio(context.space, ranked, seed=context.seed)


@dataclass
class RandomSpec(MethodSpec):
    """Random search over the candidates, each trained to the last epoch."""

    name: ClassVar[str] = "random"
    randomness: ClassVar[str] = "random"
    method: ClassVar[type[TuningMethod]] = RandomSearch
