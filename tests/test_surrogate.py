import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from conftest import fit, short_recipe

from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError
from lit_transfer.surrogate import CostSurrogate, MetaDataModule, PerformanceSurrogate
from lit_transfer.surrogate.metrics import tau
from lit_transfer.surrogate.pretrained import load_pretrained, pretrained_paths, save_weights


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: threads only add overhead (and contention on a shared CPU)
    yield
    torch.set_num_threads(threads)


def _runs(path, task):
    with MetaDataset(path) as store:
        return [r for r in store.runs(task)], store.tasks()[task]


@pytest.fixture(scope="module")
def trained(synthetic_metadataset):
    """Both surrogates meta-trained on three synthetic tasks, the fourth held out."""
    L.seed_everything(0, verbose=False)
    torch.set_num_threads(1)
    perf_data = MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"], batch_size=64)
    perf = fit(PerformanceSurrogate(), perf_data, {"max_epochs": 6})
    cost_data = MetaDataModule(synthetic_metadataset, target="cost", holdout_tasks=["t3"], batch_size=32)
    cost = fit(CostSurrogate(), cost_data, {"max_epochs": 150})
    return perf, cost


def test_batches_hold_one_task_and_no_held_out_task(synthetic_metadataset):
    data = MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"], val_tasks=["t2"], batch_size=50)
    data.setup("fit")
    assert data.train_tasks == ["t0", "t1"]
    tasks_seen = set()
    for batch_indices in data.train_dataloader().batch_sampler:
        tasks = {data.train_dataloader().dataset.task_of[i] for i in batch_indices}
        assert len(tasks) == 1
        tasks_seen |= tasks
    assert tasks_seen == {"t0", "t1"}
    batch = next(iter(data.val_dataloader()))
    # every example predicts an epoch after its observed prefix
    assert (batch["mask"].sum(1) < batch["fidelity"]).all()
    assert batch["prefix"].shape == (50, 8, 2)


def test_every_parameter_gets_a_gradient(synthetic_metadataset):
    data = MetaDataModule(synthetic_metadataset, batch_size=64)
    data.setup("fit")
    perf = PerformanceSurrogate()
    perf.training_step(next(iter(data.train_dataloader())), 0).backward()
    for name, p in perf.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    cost_data = MetaDataModule(synthetic_metadataset, target="cost", batch_size=64)
    cost_data.setup("fit")
    cost = CostSurrogate()
    cost.training_step(next(iter(cost_data.train_dataloader())), 0).backward()
    for name, p in cost.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_recovers_saturating_curves_on_a_new_task(trained, synthetic_metadataset):
    """Zero-shot ranking of a held-out task's configs by final accuracy: tau >= 0.9 (stated threshold)."""
    perf, _ = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    actual = [r.final() for r in runs]
    mean, std = perf.predict([r.config for r in runs], features)
    assert tau(mean, actual) >= 0.9
    assert (std > 0).all()
    # after 3 observed epochs per config, predictions are closer to the truth
    curves = [[p["metrics"] for p in r.curve[1:4]] for r in runs]
    observed = [(r.config, c) for r, c in zip(runs, curves, strict=True)]
    mean3, _ = perf.predict([r.config for r in runs], features, curves, observed=observed)
    assert np.abs(mean3 - actual).mean() < np.abs(mean - actual).mean()
    assert tau(mean3, actual) >= 0.9


def test_cost_model_error_on_a_new_task(trained, synthetic_metadataset):
    _, cost = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    seconds = np.array([r.seconds / r.max_epochs for r in runs])
    predicted = cost.predict_seconds([r.config for r in runs], features)
    assert np.mean(np.abs(predicted - seconds) / seconds) < 0.25


def test_the_cost_model_learns_what_an_epochs_validation_costs(tmp_path):
    """Where validation is a large part of a small task's epoch, a cost per training token alone overrates a larger
    task's; learning both rates predicts it."""
    from conftest import write_synthetic_metadataset

    path = write_synthetic_metadataset(
        tmp_path / "m.sqlite", tasks=("a-1", "b-1", "c-1", "d-1"), configs=24, log_train_sizes=(3.0, 4.0, 5.0, 6.5),
        validation_cost=2e-3,
    )  # fmt: skip
    runs, features = _runs(path, "d-1")
    seconds = np.array([r.seconds / r.max_epochs for r in runs])
    errors = {}
    for validation in (False, True):
        L.seed_everything(0, verbose=False)
        data = MetaDataModule(str(path), target="cost", holdout_tasks=["d-1"], batch_size=32)
        cost = fit(CostSurrogate(validation=validation), data, {"max_epochs": 150})
        predicted = cost.predict_seconds([r.config for r in runs], features)
        errors[validation] = float(np.mean(np.abs(predicted - seconds) / seconds))
    assert errors[True] < 0.25 < 0.5 < errors[False], errors
    with pytest.raises(ValueError, match="needs the task feature log_validation_size"):
        CostSurrogate(task_features=["log_train_size"], validation=True)


def test_predictions_identical_after_save_and_load(trained, synthetic_metadataset, tmp_path):
    perf, cost = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    configs = [r.config for r in runs]
    observed = [(runs[0].config, [p["metrics"] for p in runs[0].curve[1:3]])]
    with pytest.raises(FileNotFoundError, match=r"surrogate train --metadataset"):
        load_pretrained(tmp_path / "meta.sqlite")
    paths = pretrained_paths(tmp_path / "meta.sqlite")
    assert {t: p.name for t, p in paths.items()} == {
        "performance": "meta.perf.ckpt", "cost": "meta.cost.ckpt", "refit": "meta.refit.ckpt"
    }  # fmt: skip
    perf_path = paths["refit"]  # this deep-kernel GP is what QuickTune and DyHPO refit
    save_weights(perf, perf_path)
    save_weights(cost, paths["cost"])
    with pytest.raises(FileNotFoundError, match=r"meta\.perf\.ckpt"):
        load_pretrained(tmp_path / "meta.sqlite")  # Transfer's performance surrogate is not there
    loaded = load_pretrained(tmp_path / "meta.sqlite", ("refit", "cost"))
    assert loaded.perf is None and isinstance(loaded.refit, PerformanceSurrogate)
    loaded_perf, loaded_cost = loaded.refit, loaded.cost
    before = perf.predict(configs, features, observed=observed)
    after = loaded_perf.predict(configs, features, observed=observed)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(
        cost.predict_seconds(configs, features), loaded_cost.predict_seconds(configs, features)
    )
    # the checkpoint carries the search space itself, not a path to it
    assert isinstance(torch.load(perf_path, weights_only=False)["hyper_parameters"]["space"], dict)


def test_bad_inputs_give_clear_errors(trained, synthetic_metadataset, tmp_path):
    perf, _ = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    config = dict(runs[0].config)
    with pytest.raises(ValueError, match=r"unknown hyperparameter.*warp"):
        perf.predict([{**config, "warp": 9}], features)
    with pytest.raises(ValueError, match=r"missing hyperparameter.*learning_rate"):
        perf.predict([{k: v for k, v in config.items() if k != "learning_rate"}], features)
    curve = [p["metrics"] for p in runs[0].curve[1:]]  # all 8 epochs: nothing left to predict
    with pytest.raises(ValueError, match="8 observed epochs; a prefix for epoch 8"):
        perf.predict([config], features, [curve])
    with pytest.raises(ValueError, match=r"fidelity 9 .* outside 1..8"):
        perf.predict([config], features, fidelity=9)
    with pytest.raises(ValueError, match="task features missing: zero_shot_loss"):
        perf.predict([config], {k: v for k, v in features.items() if k != "zero_shot_loss"})
    empty = tmp_path / "empty.sqlite"
    MetaDataset(empty, create=True).close()
    with pytest.raises(MetaDatasetError, match="no runs"):
        MetaDataModule(str(empty)).setup("fit")
    with pytest.raises(ValueError, match=r"unknown task.*nope"):
        MetaDataModule(synthetic_metadataset, holdout_tasks=["nope"]).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"missing.sqlite"):
        MetaDataModule(str(tmp_path / "missing.sqlite")).setup("fit")
    with pytest.raises(ValueError, match="mlp_task_features not among task_features: size"):
        CostSurrogate(mlp_task_features=["size"])


def test_cost_model_sees_chosen_task_features_only(trained, synthetic_metadataset):
    """By default only the token count of a task moves its cost (doubling it doubles the prediction); a task
    feature named in ``mlp_task_features`` changes predictions beyond that."""
    _, cost = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    configs = [r.config for r in runs[:5]]
    base = cost.predict_seconds(configs, features)
    other = {**features, "zero_shot_loss": features["zero_shot_loss"] + 3.0}
    np.testing.assert_allclose(cost.predict_seconds(configs, other), base, rtol=1e-6)
    doubled = {**features, "log_train_size": features["log_train_size"] + np.log(2.0)}
    np.testing.assert_allclose(cost.predict_seconds(configs, doubled), 2 * base, rtol=1e-4)
    seeing = CostSurrogate(mlp_task_features=["answer_diversity"])
    seeing.task_low.fill_(-10.0), seeing.task_high.fill_(10.0)
    changed = {**features, "answer_diversity": features["answer_diversity"] + 1.0}
    assert not np.allclose(seeing.predict_seconds(configs, changed), seeing.predict_seconds(configs, features))


def test_prediction_context_is_bounded(trained, synthetic_metadataset):
    """However many observations a task has, the GP conditions on at most ``max_context`` (the latest)."""
    perf, _ = trained
    runs, features = _runs(synthetic_metadataset, "t3")
    observed = [(r.config, [p["metrics"] for p in r.curve[1:]]) for r in runs]  # 48 configs x 8 epochs = 384
    configs = [r.config for r in runs]
    mean, _ = perf.predict(configs, features, observed=observed)
    assert perf.gp.train_inputs[0].shape[0] == perf.hparams.max_context == 256
    assert np.isfinite(mean).all()


@pytest.mark.slow
def test_fit_from_yaml_writes_a_loadable_checkpoint(synthetic_metadataset, tmp_path):
    for name, cls in (("perf_dkgp", PerformanceSurrogate), ("cost_mlp", CostSurrogate)):
        root = tmp_path / name
        config = yaml.safe_load(Path(f"configs/surrogate/{name}.yaml").read_text())
        config["trainer"].update(max_epochs=1, default_root_dir=str(root))
        config["trainer"]["logger"]["init_args"]["save_dir"] = str(root)
        config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(root / "checkpoints")
        config["data"]["init_args"]["path"] = synthetic_metadataset
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        subprocess.run(
            [sys.executable, "-m", "lit_transfer", "fit", "--config", str(tmp_path / f"{name}.yaml")],
            check=True, capture_output=True,
        )  # fmt: skip
        (checkpoint,) = (root / "checkpoints").glob("*.ckpt")
        assert isinstance(cls.load_from_checkpoint(checkpoint), cls)
        assert list((root / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_surrogate_evaluate_json_holds_out_whole_families(tmp_path):
    """``--holdout family``: both tasks of family ``a`` are left out of the fold that evaluates one of them, so
    none of its configs count as recorded; every figure is there, per task and per family."""
    from conftest import write_synthetic_metadataset

    from lit_transfer.evaluation.surrogate_quality import FAMILY_KEYS, KEYS

    tasks = ("a-l1-n64", "a-l2-n64", "b-l1-n64", "c-l1-n64")
    path = str(write_synthetic_metadataset(tmp_path / "meta.sqlite", tasks=tasks, configs=24, own=8))
    out = subprocess.run(
        [
            sys.executable, "-m", "lit_transfer", "surrogate", "evaluate", "--metadataset", path,
            "--tasks", "[a-l1-n64,c-l1-n64]", "--holdout", "family",
            "--perf_config", short_recipe(tmp_path, "performance", 2),
            "--cost_config", short_recipe(tmp_path, "cost", 20), "--json", "true",
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    summary = json.loads(out)
    assert set(KEYS) <= set(summary) and summary["holdout"] == "family"
    assert 0.0 <= summary["top1_at_least_portfolio_share"] <= 1.0
    assert [r["task"] for r in summary["per_task"]] == ["a-l1-n64", "c-l1-n64"]
    assert all(set(KEYS) <= set(r) for r in summary["per_task"])
    assert set(summary["per_family"]) == {"a", "c"} and set(FAMILY_KEYS) <= set(summary["per_family"]["a"])
    for row in summary["per_task"]:
        assert (row["configs"], row["shared_configs"]) == (32, 24)  # its own 8 were run by no training task
        assert 0.0 <= row["coverage_95_own"] <= 1.0 and 0.0 <= row["coverage_95_shared"] <= 1.0
        assert row["knn_k"] in (1, 2, 4, 8, 16, 32)
    # what the task shows, measured on the configs it has not run: the portfolio's first n ran k epochs each
    from lit_transfer.evaluation.surrogate_quality import UNOBSERVED_KEYS

    settings = {"1,1", "1,3", "2,2", "3,3"}
    for key in UNOBSERVED_KEYS:
        assert set(summary[key]) == settings, key
        assert all(value is None or -1.0 <= value <= 1.0 for value in summary[key].values()), key
    assert set(summary["coverage_95_per_family"]) == {"a", "c"}
    for entry in summary["coverage_95_per_family"].values():
        assert 0.0 <= entry["before"] <= 1.0 and 0.0 <= entry["after"] <= 1.0
    for row in summary["per_task"]:  # "before": before any observation, not the mean over 0, 1 and 3 epochs seen
        before = summary["coverage_95_per_family"][row["task"][0]]["before"]
        assert before == row["coverage_95_before"]
        assert "interval_multiples_before" not in row  # pooled per family, not written per task
    from lit_transfer.evaluation.surrogate_quality import ONCE_KEYS

    for key in ONCE_KEYS:  # a config recorded once, against the same config recorded on every training task
        assert 0.0 <= summary[key] <= 1.0 and all(0.0 <= r[key] <= 1.0 for r in summary["per_task"]), key
    one = summary["coverage_95_before_one_width"]
    assert set(summary["coverage_95_before_width_per_family"]) == {"a", "c"} and one["families"] == 2
    as_stated = sum(0.85 <= e["before"] <= 0.99 for e in summary["coverage_95_per_family"].values())
    assert one["families_inside_as_stated"] == as_stated <= one["families_inside"]


def test_one_width_finds_the_multiple_that_fits_most_families_and_says_when_none_fits_all():
    """Two families whose errors need intervals 1x and 3x as wide as stated: no one multiple puts both within
    0.85-0.99, and each family's range says why; two alike families are both met by one multiple."""
    from lit_transfer.evaluation.surrogate_quality import one_width

    rng = np.random.default_rng(0)
    calm, wild = np.abs(rng.normal(0, 0.5, 4000)), np.abs(rng.normal(0, 1.5, 4000))  # stated 1.96 sd: z/1.96
    apart = one_width({"calm": calm, "wild": wild})
    assert apart["coverage_95_before_one_width"]["families_inside"] == 1
    width = apart["coverage_95_before_width_per_family"]
    assert width["calm"]["for_0.99"] < width["wild"]["for_0.85"]  # the ranges do not overlap
    assert width["calm"]["for_0.85"] == pytest.approx(np.quantile(calm, 0.85))
    alike = one_width({"calm": calm, "also_calm": np.abs(rng.normal(0, 0.5, 4000))})["coverage_95_before_one_width"]
    assert alike["families_inside"] == 2 and alike["families_inside_as_stated"] == 2
    assert alike["multiple"] == 1.0  # the stated width already fits both: kept


def test_nearest_configs_baseline_chooses_k_on_the_recorded_tasks():
    """Results that depend smoothly on the config: neighbours predict them, and a recorded config is predicted
    by its own mean when one neighbour is best."""
    from lit_transfer.evaluation.surrogate_baselines import NearestConfigs

    rng = np.random.default_rng(0)
    points = rng.random((40, 3))
    finals = {f"t{i}": {f"c{j}": (p.tolist(), float(p[0] + 0.1 * i)) for j, p in enumerate(points)} for i in range(3)}
    knn = NearestConfigs(finals)
    assert knn.k == 1  # every config was recorded on the other tasks: itself is the best neighbour
    np.testing.assert_allclose(knn.predict([points[5].tolist()]), [points[5][0] + 0.1])
    fresh = rng.random((30, 3))
    assert tau(knn.predict(fresh.tolist()), fresh[:, 0]) > 0.5


def test_surrogate_training_is_seeded(synthetic_metadataset, tmp_path):
    """One path, one seed: the same recipe and data give the same weights; another seed does not (the deep-kernel
    GP; Transfer's surrogate draws nothing at random)."""
    from lit_transfer.surrogate.training import train_surrogate

    recipe = short_recipe(tmp_path, "refit", 1)
    a = train_surrogate(recipe, synthetic_metadataset, holdout_tasks=["t0"])
    b = train_surrogate(recipe, synthetic_metadataset, holdout_tasks=["t0"])
    c = train_surrogate(recipe, synthetic_metadataset, holdout_tasks=["t0"], seed=1)
    same = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)]
    other = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True)]
    assert all(same) and not all(other)


def test_a_freshly_trained_surrogate_can_be_copied(synthetic_metadataset):
    """QuickTune deep-copies the surrogate it is given; right after meta-training that must work (the GP must not
    hold the last batch's features with their autograd graph)."""
    import copy

    L.seed_everything(0, verbose=False)
    perf = fit(PerformanceSurrogate(), MetaDataModule(synthetic_metadataset, batch_size=64), {"max_epochs": 1})
    runs, features = _runs(synthetic_metadataset, "t3")
    configs = [r.config for r in runs[:4]]
    np.testing.assert_array_equal(copy.deepcopy(perf).predict(configs, features)[0], perf.predict(configs, features)[0])


def test_the_plain_gp_baseline_is_the_same_whatever_the_process_drew_before(synthetic_metadataset):
    """On more than 800 points gpytorch solves by conjugate gradients with random probe vectors: drawn from the
    process's random state, they made the baseline's figures depend on what ran before it."""
    from lit_transfer.evaluation.surrogate_baselines import PlainGP

    data = MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"])
    data.setup()
    runs, features = _runs(synthetic_metadataset, "t3")
    perf = PerformanceSurrogate()
    for name, value in data.task_feature_stats().items():
        getattr(perf, f"task_{name}").copy_(value)
    inputs = perf.encoding.inputs([r.config for r in runs], features, None, perf.encoding.max_epochs)
    predictions = []
    for state in (1, 2):
        torch.manual_seed(state)
        gp = PlainGP(data.dataset(data.train_tasks), perf.normalized_task, iterations=10, seed=0)
        torch.manual_seed(state + 10)
        predictions.append(gp.predict(inputs))
    assert len(data.dataset(data.train_tasks)) > 1024  # the GP fits on its 1,024 points: more than gpytorch's 800
    for first, second in zip(*predictions, strict=True):
        torch.testing.assert_close(first, second, rtol=0, atol=0)
