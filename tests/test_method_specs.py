"""Methods as specs: each declares what the evaluation needs, builds from one context, and is found by name."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from lit_transfer.space import SearchSpace
from lit_transfer.tune.methods import MethodContext, MethodSpec, TuningMethod, method_spec, registry
from lit_transfer.tune.replay import ReplayEvaluator

SHIPPED = (
    "transfer", "quicktune", "dyhpo", "portfolio", "greedy_portfolio", "portfolio_halving", "default", "zero_shot",
    "random", "optuna_tpe", "dehb",
)  # fmt: skip


def test_every_shipped_method_is_registered_with_what_evaluate_needs():
    found = registry()
    assert set(SHIPPED) <= set(found)
    for name, spec in found.items():
        assert spec.name == name and spec.randomness in ("none", "refit", "random")
        assert spec.surrogate in (None, "performance", "refit")


def test_a_method_without_its_randomness_is_refused_when_it_is_defined():
    with pytest.raises(TypeError, match="must declare randomness"):

        @dataclass
        class Careless(MethodSpec):
            name: ClassVar[str] = "careless"


def test_a_name_cannot_be_taken_twice():
    with pytest.raises(TypeError, match="'random' is taken"):

        @dataclass
        class AnotherRandom(MethodSpec):
            name: ClassVar[str] = "random"
            randomness: ClassVar[str] = "random"


@pytest.mark.parametrize("name", sorted(registry()))  # every registered method, a new one included
def test_every_method_builds_from_a_context_and_asks_only_for_the_surrogates_it_declares(
    name, synthetic_metadataset, tmp_path
):
    spec = method_spec(name)
    evaluator = ReplayEvaluator.from_store(synthetic_metadataset, "t0")
    asked = []

    def surrogates():
        asked.append(spec.surrogate)
        from lit_transfer.surrogate.pretrained import Surrogates

        return Surrogates(_Flat(), None, _Flat())

    context = MethodContext(
        SearchSpace.from_yaml(), evaluator.configs(), {"zero_shot_acc": 0.0}, surrogates, synthetic_metadataset,
        exclude_tasks=["t0"], seed=1, state_file=tmp_path / "state.json",
    )  # fmt: skip
    method = spec.build(context)
    assert isinstance(method, TuningMethod) and method.name == name
    assert asked == ([spec.surrogate] if spec.surrogate else [])


def test_an_unknown_name_says_what_there_is():
    with pytest.raises(ValueError, match=r"unknown method 'transfr'; choose from .*transfer.* or give class_path"):
        method_spec("transfr")


class _Flat:
    """A surrogate that predicts 0.5 ± 0.1 for everything (enough to build and ask)."""

    def predict(self, configs, task_features, curves=None, fidelity=None, observed=None):
        import numpy as np

        return np.full(len(configs), 0.5), np.full(len(configs), 0.1)

    def reset(self):
        pass

    def untrained(self, seed=0):
        return self
