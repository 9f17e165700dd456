import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.summary import summarize
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate.metrics import tau

SPACE = SearchSpace.from_yaml()
CONFIGS = [SPACE.default(), *SPACE.sample(4, seed=0)]
# final val/acc per task and config; task c ranks configs in the reverse order of a
ACC = {"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.1, 0.3, 0.2, 0.5, 0.4], "c": [0.5, 0.4, 0.3, 0.2, 0.1]}


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "meta.sqlite"
    with MetaDataset(path, create=True) as store:
        for task, accs in ACC.items():
            store.add_task(task, {"log_train_size": math.log(20), "log_validation_size": math.log(8)})
            for config, acc in zip(CONFIGS, accs, strict=True):
                curve = [{"fidelity": float(e), "metrics": {"val/acc": acc * e / 2}} for e in (0, 1, 2)]
                store.add_run(RunRecord(task, dict(config.values), 0, "m", 2, "ok", curve=curve, seconds=1.0))
        store.add_run(RunRecord("a", dict(CONFIGS[1].values), 1, "m", 2, "diverged", message="NaN"))
    return path


def test_summary_numbers(store_path):
    with MetaDataset(store_path) as store:
        summary = summarize(store, SPACE.default().key())
    a = summary["per_task"][0]
    assert (a["task"], a["runs"], a["failures"]) == ("a", 6, 1)
    assert a["best"] == pytest.approx(0.5) and a["default"] == pytest.approx(0.1)
    # config 1's failed seed counts as 0, so it scores (0.2 + 0) / 2 = 0.1: median of (0.1, 0.1, 0.3, 0.4, 0.5)
    assert a["median"] == pytest.approx(0.3)
    # spearman: a-b 0.8, a-c -1.0, b-c -0.8 -> mean -1/3
    assert summary["mean_rank_correlation"] == pytest.approx((0.8 - 1.0 - 0.8) / 3, abs=0.02)
    assert (summary["tasks"], summary["runs"], summary["failures"]) == (3, 16, 1)
    assert (summary["shared_configs"], summary["own_configs_min"], summary["families"]) == (5, 0, 3)
    assert summary["val_examples_min"] == 8 and a["train_examples"] == 20 and a["family"] == "a"
    # best shared config: a -> config 4, b -> config 3, c -> config 0 (the default)
    assert summary["distinct_best"] == 3 and summary["default_best_share"] == pytest.approx(1 / 3)
    # portfolio's first for a: best mean over b, c = config 0 (0.3) vs 3 (0.35) ... per task:
    #   a: mean(b, c) = [0.3, 0.35, 0.25, 0.35, 0.25] -> config 3 or 1 tie -> by key; not config 4 -> miss
    #   b: mean(a, c) = [0.3, 0.3, 0.3, 0.3, 0.3] -> any; c: mean(a, b) = [0.1, 0.25, 0.25, 0.45, 0.45]
    assert 0.0 <= summary["portfolio_top1_share"] <= 2 / 3


def test_shared_core_and_own_configs(tmp_path):
    """Two tasks, three shared configs (rankings a: 0<1<2, b: 2<1<0) and one own config each."""
    path = tmp_path / "meta.sqlite"
    own = SPACE.sample(6, seed=7)[4:]
    with MetaDataset(path, create=True) as store:
        for t, (task, accs) in enumerate({"x-l1": [0.1, 0.2, 0.3], "y-l2": [0.3, 0.2, 0.1]}.items()):
            store.add_task(task, {"log_train_size": math.log(64), "log_validation_size": math.log(256)})
            for config, acc in zip([*CONFIGS[:3], own[t]], [*accs, 0.9], strict=True):
                curve = [{"fidelity": 1.0, "metrics": {"val/acc": acc, "val/loss": 1.0}}]
                store.add_run(RunRecord(task, dict(config.values), 0, "m", 1, "ok", curve=curve))
        summary = summarize(store, SPACE.default().key())
    assert summary["shared_configs"] == 3 and summary["own_configs_min"] == 1
    assert summary["mean_rank_correlation"] == pytest.approx(-1.0)
    assert summary["distinct_best"] == 2 and summary["portfolio_top1_share"] == 0.0
    assert summary["default_best_share"] == 0.5 and summary["families"] == 2
    assert [t["best"] for t in summary["per_task"]] == [0.9, 0.9]  # own configs count for best and median


def test_summary_cli_json_and_table(store_path):
    run = [sys.executable, "-m", "lit_transfer", "metadata", "summary", str(store_path)]
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert {"tasks", "runs", "failures", "mean_rank_correlation", "per_task", "families", "val_examples_min",
            "shared_configs", "own_configs_min", "portfolio_top1_share", "distinct_best"} <= set(data)  # fmt: skip
    assert {"task", "runs", "failures", "best", "median", "default", "family", "train_examples",
            "val_examples"} <= set(data["per_task"][0])  # fmt: skip
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "| a | a | 20 | 8 | 6 | 1 | 0.500 | 0.300 | 0.100 |" in table


def test_summary_of_a_foreign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_text("nope" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "lit_transfer", "metadata", "summary", str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not an SQLite meta-dataset" in result.stderr


def test_feature_correlations_report_rho_and_p_and_set_aside_constant_features(tmp_path):
    """Features equal on every task are listed as constant (no correlation is defined), the others carry Spearman's
    rho with its p-value per target, and nothing warns."""
    import warnings

    from conftest import load_tool, write_synthetic_metadataset
    from scipy.stats import spearmanr

    tool = load_tool("feature_correlations")
    path = write_synthetic_metadataset(tmp_path / "m.sqlite", tasks=("t0", "t1", "t2", "t3", "t4"), configs=8, own=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tool.correlations(str(path))
    assert {"zero_shot_loss", "zero_shot_acc"} <= set(result["constant"])
    assert not set(result["constant"]) & set(result["correlations"])
    with MetaDataset(path) as store:
        best, features = tool.best_configs(store), store.tasks()
    tasks = sorted(best)
    rates = [math.log10(best[t]["learning_rate"]) for t in tasks]
    expected = spearmanr([features[t]["log_train_size"] for t in tasks], rates)
    row, p = result["correlations"]["log_train_size"], result["p_values"]["log_train_size"]
    assert len(set(rates)) > 1  # the tasks' own configs make their best configs differ
    assert row["learning_rate"] == pytest.approx(expected.statistic, abs=1e-3)
    assert p["learning_rate"] == pytest.approx(expected.pvalue, abs=1e-4)


def test_first_epoch_neighbours_choose_the_remembered_tasks_that_showed_the_same_epochs(tmp_path):
    """A remembered task whose first epochs match the new task's is among the 3 chosen and weighs most; the whole
    comparison, the hindsight choice (``evaluate``'s ``oracle_neighbours``) among its rows, runs on a meta-dataset
    of several families."""
    from conftest import load_tool, write_synthetic_metadataset

    tool = load_tool("first_epoch_neighbours")
    configs = ["c0", "c1", "c2", "c3"]
    finals = {"new": dict(zip(configs, (0.9, 0.1, 0.5, 0.3), strict=True)),
              "twin": dict(zip(configs, (0.8, 0.2, 0.6, 0.1), strict=True)),
              **{f"far{i}": dict(zip(configs, (0.1, 0.9, 0.2, 0.8), strict=True)) for i in range(4)}}  # fmt: skip
    acc = {t: {c: [finals[t][c] / 2, finals[t][c]] for c in configs} for t in finals}
    acc["twin"] = {c: list(v) for c, v in acc["new"].items()}  # the same first epochs as the new task
    loss = {t: {c: [1.0 - a for a in acc[t][c]] for c in configs} for t in finals}
    data = ({t: t for t in finals}, finals, acc, loss, dict.fromkeys(finals, 1.0))
    others = [t for t in finals if t != "new"]
    chosen = tool.choices("new", others, ["c0", "c1"], 2, data)
    for kind in ("acc", "loss", "loss_spread"):
        assert "twin" in chosen[f"{kind}_top3"]
        assert max(chosen[f"{kind}_soft"], key=chosen[f"{kind}_soft"].get) == "twin"
    assert "loss_spread_top3" not in tool.choices("new", others, ["c0"], 2, data)
    path = write_synthetic_metadataset(tmp_path / "m.sqlite", tasks=("a-l1-n64", "a-l2-n64", "b-l1-n64", "c-l1-n64"),
                                       configs=12, own=0)  # fmt: skip
    result = tool.compare(str(path))
    settings = {"1,1", "1,3", "2,2", "3,3"}
    for name in ("mean_config", "oracle_top3", "oracle_top3_cross_fitted"):  # chosen once per task
        assert set(result[name]) == settings
    # what a new task may draw on: other families only (its own family's results would leak into the baselines)
    kin = {"new": {"c0": 0.1, "c1": 0.9}, "kin": {"c0": 1.0, "c1": 0.0}, "far": {"c0": 0.2, "c1": 0.6}}
    assert tool.remembered("new", kin, {"new": "x", "kin": "x", "far": "y"}) == (
        ["far"], ["c0", "c1"], {"c0": 0.2, "c1": 0.6}
    )  # fmt: skip
    half = tool.halves(str(path))
    assert set(half) == {"mean_config", "oracle_top3_cross_fitted", "own_gp", "mean_config_plus_own_gp"}
    assert all(-1.0 <= v <= 1.0 for v in half.values())
    # the task's own GP learns what depends smoothly on the config: a result that rises with one input is ranked
    rng = np.random.default_rng(0)
    encoded = {f"k{i}": rng.random(5) for i in range(24)}
    train = {k: float(v[0] + 0.5 * v[1]) for k, v in list(encoded.items())[:16]}
    query = list(encoded)[16:]
    assert tau(tool.own_gp(train, query, encoded), [encoded[k][0] + 0.5 * encoded[k][1] for k in query]) > 0.8
    assert all(-1.0 <= v <= 1.0 for by in result.values() for v in by.values())
