"""The portfolio with successive halving: what stopping configs by their first epochs gives a portfolio.

Transfer's freeze-thaw keeps a config its experience rates, however slow its start; this is the baseline that does
not. The portfolio's configs come in brackets of ``bracket``, in the portfolio's order. Within a bracket (Jamieson
and Talwalkar's successive halving), every config trains ``min_epochs``; the best ``1 / eta`` of them by their value
at that epoch train ``eta`` times as long, and so on until one config reaches the last epoch. Then the next bracket.
When every bracket is done, the configs that were stopped are resumed, the best value seen first, so no budget is
left unspent. With several workers, a bracket whose rung waits on a config in flight lets the next bracket start.

The schedule is a function of what was observed, so the state to resume from is the observations alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lit_transfer.space import SearchSpace, config_key
from lit_transfer.tune.methods.base import Trial, TuningMethod
from lit_transfer.tune.methods.spec import MethodContext, MethodSpec


class PortfolioHalving(TuningMethod):
    """Successive halving over the portfolio's configs, bracket by bracket (see the module).

    Args:
        ranked: configs best first (``lit_transfer.metadataset.portfolio``).
        bracket: configs that start a bracket.
        eta: the share promoted at each rung is ``1 / eta``, and each rung trains ``eta`` times as long.
        min_epochs: the epochs of the first rung.
    """

    name = "portfolio_halving"

    def __init__(
        self, space: SearchSpace, ranked: Sequence[Mapping[str, Any]], bracket: int = 8, eta: int = 2,
        min_epochs: int = 1, **kwargs: Any,
    ) -> None:  # fmt: skip
        if bracket < 1 or eta < 2 or min_epochs < 1:
            raise ValueError(f"need bracket >= 1, eta >= 2, min_epochs >= 1; got {bracket}, {eta}, {min_epochs}")
        super().__init__(space, ranked, **kwargs)
        self.bracket, self.eta, self.min_epochs = bracket, eta, min_epochs

    def rungs(self) -> list[tuple[int, int]]:
        """(configs kept, epochs) of each rung of a full bracket, the last at the last epoch."""
        rungs, kept, epochs = [], self.bracket, min(self.min_epochs, self.max_epochs)
        while True:
            rungs.append((kept, epochs))
            if epochs >= self.max_epochs or kept == 1:
                break
            kept, epochs = max(1, kept // self.eta), min(self.max_epochs, epochs * self.eta)
        if rungs[-1][1] < self.max_epochs:
            rungs.append((1, self.max_epochs))
        return rungs

    def value_at(self, config: Mapping[str, Any], epoch: int) -> float:
        """The config's best value up to ``epoch``."""
        curve = self.observed[config_key(config)][1][:epoch]
        return max(self.value(point) for point in curve)

    def ask(self) -> Trial | None:
        assert self.candidates is not None
        waiting = False
        for start in range(0, len(self.candidates), self.bracket):
            trial, done = self._in_bracket(self.candidates[start : start + self.bracket])
            if trial is not None:
                return trial
            waiting |= not done
        if waiting:
            return None  # the stopped configs are resumed only once every bracket has decided
        resumed = sorted(
            (c for c in self.candidates if config_key(c) in self.observed),
            key=lambda c: -self.value_at(c, self.max_epochs),
        )  # stable: ties keep the portfolio's order
        return self.continue_or_next(resumed)

    def _in_bracket(self, configs: Sequence[Mapping[str, Any]]) -> tuple[Trial | None, bool]:
        """The next epoch this bracket's schedule asks for (None if none now), and whether the bracket is done
        (False while a rung waits on a trial in flight: its value decides the next rung)."""
        alive = [c for c in configs if config_key(c) not in self.failed]
        for kept, epochs in self.rungs():
            rung = alive[:kept]
            for config in rung:
                if self.epochs_done(config) < epochs and self.available(config):
                    return Trial(dict(config), self.epochs_done(config) + 1), False
            rung = [c for c in rung if config_key(c) not in self.failed]  # failed in flight: out of the bracket
            if any(self.epochs_done(c) < epochs for c in rung):
                return None, False
            order = {config_key(c): i for i, c in enumerate(alive)}
            alive = sorted(rung, key=lambda c: (-self.value_at(c, epochs), order[config_key(c)]))
        return None, True


@dataclass
class PortfolioHalvingSpec(MethodSpec):
    """The portfolio's configs (as ``portfolio`` ranks them) by successive halving, bracket after bracket; then
    the stopped configs resumed, best first."""

    name: ClassVar[str] = "portfolio_halving"
    randomness: ClassVar[str] = "none"
    bracket: int = 8
    eta: int = 2
    min_epochs: int = 1

    def build(self, context: MethodContext) -> PortfolioHalving:
        from lit_transfer.metadataset.portfolio import portfolio

        ranked = portfolio(context.metadataset, exclude=context.exclude_tasks)
        return PortfolioHalving(
            context.space, ranked, bracket=self.bracket, eta=self.eta, min_epochs=self.min_epochs, seed=context.seed
        )
