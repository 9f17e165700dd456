"""Transfer's surrogate: rankings that follow the task, uncertainty that grows away from the experience, curves
that correct the forecast, and a checkpoint that loads as what it is."""

import math

import numpy as np
import pytest
import torch
from conftest import fit

from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate import ExperienceSurrogate, MetaDataModule
from lit_transfer.surrogate.metrics import tau
from lit_transfer.surrogate.pretrained import load_surrogate, save_weights

SPACE = SearchSpace.from_yaml()


def final_of(config, kind: float) -> float:
    """Tasks of kind 0 reward small learning rates, tasks of kind 1 large ones."""
    lr = SPACE.hyperparameters["learning_rate"].encode(config["learning_rate"])[0]
    return 0.2 + 0.6 * (lr if kind > 0.5 else 1.0 - lr)


def curve(final: float, epochs: int = 8) -> list[dict]:
    points = [{"fidelity": 0.0, "metrics": {"val/acc": 0.0, "val/loss": 5.0}, "seconds": 0.0}]
    for t in range(1, epochs + 1):
        acc = final * (1 - math.exp(-0.6 * t)) / (1 - math.exp(-0.6 * epochs))
        points.append({"fidelity": float(t), "metrics": {"val/acc": acc, "val/loss": 5.0 * (1 - acc)},
                       "seconds": float(t)})  # fmt: skip
    return points


@pytest.fixture(scope="module")
def opposed(tmp_path_factory):
    """Six families of two tasks: families a, b, c of kind 0 (feature near 0), d, e, f of kind 1 (near 1); every
    task runs the same 24 configs and 8 of its own (as the experience does: what is far from it is learned from
    those)."""
    path = tmp_path_factory.mktemp("opposed") / "meta.sqlite"
    configs = SPACE.sample(24, seed=3)
    with MetaDataset(path, create=True) as store:
        for f, family in enumerate("abcdef"):
            kind = float(f >= 3)
            for level in (1, 2):
                task = f"{family}-l{level}-n64"
                features = {name: 1.0 for name in TASK_FEATURES}
                features.update(zero_shot_acc=kind + 0.05 * (f % 3) + 0.01 * level, log_train_size=5.0)
                store.add_task(task, features)
                for config in configs + SPACE.sample(8, seed=100 + 2 * f + level):
                    store.add_run(RunRecord(task, dict(config.values), 0, "synthetic", 8, "ok",
                                            curve=curve(final_of(config, kind)), seconds=8.0))  # fmt: skip
    return str(path), [dict(c.values) for c in configs]


@pytest.fixture(scope="module")
def surrogate(opposed):
    path, _ = opposed
    torch.set_num_threads(1)
    return fit(ExperienceSurrogate(variance_steps=100), MetaDataModule(path), {"max_epochs": 1})


def features(kind: float) -> dict[str, float]:
    return {**{name: 1.0 for name in TASK_FEATURES}, "zero_shot_acc": kind, "log_train_size": 5.0}


def test_the_task_decides_the_ranking(surrogate, opposed):
    _, configs = opposed
    for kind in (0.02, 0.98):
        mean, _ = surrogate.predict(configs, features(kind))
        assert tau(mean, [final_of(c, kind) for c in configs]) > 0.8, kind
    low, _ = surrogate.predict(configs, features(0.0))
    high, _ = surrogate.predict(configs, features(1.0))
    assert int(np.argmax(low)) != int(np.argmax(high))


def test_uncertainty_grows_away_from_the_experience(surrogate, opposed):
    _, configs = opposed
    recorded = np.stack([SPACE.encode(c) for c in configs])
    samples = [dict(s.values) for s in SPACE.sample(300, seed=7)]
    distance = [np.abs(recorded - SPACE.encode(s)).sum(1).min() for s in samples]
    far = samples[int(np.argmax(distance))]  # the sampled config least like any recorded one
    _, std_recorded = surrogate.predict(configs, features(0.0))
    _, std_far = surrogate.predict([far], features(0.0))
    assert std_far[0] > np.median(std_recorded)


def test_observed_epochs_correct_the_forecast_and_the_checkpoint_loads_as_it_is(surrogate, opposed, tmp_path):
    _, configs = opposed
    kind = 0.5  # between the two kinds: the experience alone cannot tell which
    truth = [final_of(c, 1.0) for c in configs]
    zero_shot, _ = surrogate.predict(configs, features(kind))
    observed = [(c, [p["metrics"] for p in curve(f)[1:3]]) for c, f in zip(configs[:6], truth[:6], strict=True)]
    curves = [o[1] for o in observed] + [[] for _ in configs[6:]]
    after, std = surrogate.predict(configs, features(kind), curves, 8, observed=observed)
    error = lambda mean: np.abs(np.asarray(mean[:6]) - truth[:6]).mean()  # noqa: E731
    assert error(after) < 0.5 * error(zero_shot)  # a config's own epochs tell its final value
    assert np.isfinite(after).all() and (std > 0).all()
    # the same curves without ``observed``: each config with epochs still counts as a run of the task
    alone, _ = surrogate.predict(configs[:6], features(kind), curves[:6], 8)
    assert error(alone) < 0.5 * error(zero_shot)
    path = save_weights(surrogate, tmp_path / "perf.ckpt")
    loaded = load_surrogate(path)
    assert isinstance(loaded, ExperienceSurrogate)
    again, again_std = loaded.predict(configs, features(kind), curves, 8, observed=observed)
    np.testing.assert_array_equal(after, again)
    np.testing.assert_array_equal(std, again_std)


def test_a_config_recorded_once_is_told_from_one_recorded_everywhere(surrogate, opposed):
    """Kept on one training task only, a config's result there may be of the other kind of task: its prediction
    errs more than with every run, and the check says how often such a config tops the ranking."""
    from lit_transfer.evaluation.surrogate_quality import ONCE_KEYS, ONCE_SPLITS, _once_recorded

    _, configs = opposed
    kind = 0.02
    actual = np.array([final_of(c, kind) for c in configs])
    portfolio = np.array([(final_of(c, 0.0) + final_of(c, 1.0)) / 2 for c in configs])
    recorded = surrogate.experience.recorded.clone()
    found = _once_recorded(configs, features(kind), surrogate, actual, portfolio)
    assert torch.equal(surrogate.experience.recorded, recorded)  # the memory is as it was
    assert set(found) == set(ONCE_KEYS) and ONCE_SPLITS > 1
    assert found["once_recorded_error"] > found["once_recorded_error_known"]
    assert 0.0 < found["once_recorded_top_share"] <= 1.0
    assert 0.0 <= found["once_recorded_top_regret"] <= 1.0 and 0.0 <= found["once_recorded_portfolio_regret"] <= 1.0
