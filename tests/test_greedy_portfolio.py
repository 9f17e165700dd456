"""The greedy portfolio covers the tasks the configs before it left behind, where the mean-ranked one repeats itself."""

import numpy as np

from lit_transfer.metadataset.portfolio import portfolio
from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.tune.loop import Budget, run_tuning
from lit_transfer.tune.methods import MethodContext, method_spec
from lit_transfer.tune.methods.greedy_portfolio import greedy_order, greedy_portfolio
from lit_transfer.tune.replay import ReplayEvaluator


def test_the_second_pick_covers_the_tasks_the_first_left_behind():
    # a and a2 are near-twins, best on tasks 0-2 and useless on 3-4; b is poor on 0-2 and best on 3-4
    regret = np.array(
        [
            [0.0, 0.0, 0.0, 1.0, 1.0],  # a
            [0.05, 0.05, 0.05, 1.0, 1.0],  # a2
            [0.9, 0.9, 0.9, 0.0, 0.0],  # b (the worst mean of the three)
        ]
    )
    keys = ["a", "a2", "b"]
    assert list(np.argsort(regret.mean(axis=1))) == [0, 1, 2]  # by mean: a, then its twin
    assert greedy_order(regret, keys) == [0, 2, 1]  # greedy: a, then b
    shuffled = [2, 0, 1]  # the order does not depend on the order of the rows
    assert [shuffled[i] for i in greedy_order(regret[shuffled], [keys[i] for i in shuffled])] == [0, 2, 1]


CONFIGS = dict(zip(["a", "a2", "b"], SearchSpace.from_yaml().sample(3, seed=0), strict=True))
NAMES = {config.key(): name for name, config in CONFIGS.items()}


def _store(path, finals: dict[str, dict[str, float]]) -> str:
    """Each task's runs of a, a2 and b: curves that rise linearly to the given finals over 8 epochs."""
    with MetaDataset(path, create=True) as store:
        for task, by_config in finals.items():
            store.add_task(task, {"zero_shot_acc": 0.0})
            for name, final in by_config.items():
                curve = [{"fidelity": float(e), "metrics": {"val/acc": final * e / 8}, "seconds": e} for e in range(9)]
                store.add_run(RunRecord(task, dict(CONFIGS[name].values), 0, "synthetic", 8, "ok", curve=curve))
    return str(path)


def test_built_from_the_experience_without_the_held_out_tasks(tmp_path):
    finals = {
        "t1": {"a": 0.9, "a2": 0.88, "b": 0.3},
        "t2": {"a": 0.9, "a2": 0.88, "b": 0.3},
        "t3": {"a": 0.1, "a2": 0.12, "b": 0.8},
        "t4": {"a": 0.1, "a2": 0.12, "b": 0.8},
        "t5": {"a": 0.9, "a2": 0.88, "b": 0.3},
        "held": {"a": 0.0, "a2": 0.9, "b": 0.0},  # would put a2 first, were it not held out
    }
    path = _store(tmp_path / "m.sqlite", finals)
    assert [NAMES[PipelineConfig(c).key()] for c in portfolio(path, exclude=["held"])] == ["a", "a2", "b"]
    assert [NAMES[PipelineConfig(c).key()] for c in greedy_portfolio(path, exclude=["held"])] == ["a", "b", "a2"]

    # run by name, as evaluate and tune run it: that order, each config to its last epoch
    spec = method_spec("greedy_portfolio")
    assert spec.randomness == "none" and spec.surrogate is None
    evaluator = ReplayEvaluator.from_store(path, "t3")
    context = MethodContext(
        SearchSpace.from_yaml(), evaluator.configs(), {}, lambda: None, path, exclude_tasks=["held", "t4"]
    )
    history = run_tuning(spec.build(context), evaluator, Budget(16))
    assert [(NAMES[step.config_key], step.fidelity) for step in history] == [
        *[("a", e) for e in range(1, 9)], *[("b", e) for e in range(1, 9)]
    ]  # fmt: skip
    assert history[-1].incumbent == 0.8
