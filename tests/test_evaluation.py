"""Evaluation v2: leave-one-family-out folds, seeds by kind of method, bootstrap intervals, Wilcoxon tests and the
critical-difference diagram, on a small synthetic meta-dataset of five tasks in three families."""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import short_recipe, write_synthetic_metadataset

from lit_transfer.evaluation.stats import bootstrap_ci, critical_difference, task_means, wilcoxon_against
from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate
from lit_transfer.metadataset.store import MetaDataset

TASKS = ("alpha-l1", "alpha-l2", "beta-l1", "beta-l2", "gamma-l1")


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    return str(
        write_synthetic_metadataset(tmp_path_factory.mktemp("families") / "meta.sqlite", tasks=TASKS, configs=24)
    )


@pytest.fixture(scope="module")
def lofo(families, tmp_path_factory):
    out = tmp_path_factory.mktemp("lofo")
    plan = EvaluationPlan(
        metadataset=families, methods=["transfer", "portfolio", "default", "random"], seeds=[0, 1, 2, 3],
        budget_epochs=12, holdout="family", perf_config=short_recipe(out, "performance", 2),
        cost_config=short_recipe(out, "cost", 10), out=str(out / "eval"),
    )  # fmt: skip
    return plan, evaluate(plan, progress=lambda line: None), out / "eval"


def test_a_family_is_held_out_together(lofo):
    plan, _, out = lofo
    with MetaDataset(plan.metadataset) as store:
        families = store.families()
    assert plan.folds(list(TASKS), families) == {
        "family-alpha": ["alpha-l1", "alpha-l2"], "family-beta": ["beta-l1", "beta-l2"], "family-gamma": ["gamma-l1"]
    }  # fmt: skip
    # per fold, the surrogates the methods use (no QuickTune here: no refit surrogate), named by recipe content
    cached = sorted(p.name.rsplit(".", 2)[0] for p in (out / "surrogates").iterdir())
    assert cached == sorted(f"family-{f}.{t}" for f in ("alpha", "beta", "gamma") for t in ("performance", "cost"))


def test_seed_free_methods_run_once_and_stand_for_every_seed(lofo):
    plan, _, out = lofo
    assert plan.method_seeds("transfer") == [0] and plan.method_seeds("random") == [0, 1, 2, 3]
    states = {p.name for p in (out / "states" / "alpha-l1").glob("*.json")}
    assert {"transfer-0.json", "portfolio-0.json", "random-3.json"} <= states and "transfer-1.json" not in states
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    at_end = [r for r in rows if float(r["fraction"]) == 1.0]
    assert len(at_end) == len(TASKS) * 4 * 4  # (task, seed) complete for every method
    transfer = {
        r["seed"]: r["normalized_regret"] for r in at_end if r["method"] == "transfer" and r["task"] == "beta-l2"
    }
    assert len(transfer) == 4 and len(set(transfer.values())) == 1


def test_summary_has_bootstrap_intervals_and_stats_test_transfer_against_every_method(lofo):
    _, summary, out = lofo
    for method, by_fraction in summary.items():
        for fraction, entry in by_fraction.items():
            lo, hi = entry["regret_ci95"]
            assert lo - 1e-9 <= entry["normalized_regret"] <= hi + 1e-9, (method, fraction)
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats) == {"0.1", "0.25", "0.5", "1.0"}
    for entry in stats.values():
        assert set(entry) == {"portfolio", "default", "random"}
        for test in entry.values():
            assert 0.0 <= test["p_value"] <= 1.0 and isinstance(test["transfer_better"], bool)
            assert test["pairs"] == len(TASKS) * 4 and test["tasks"] == len(TASKS)
            assert 0.0 <= test["p_value_tasks"] <= 1.0
    cd = json.loads((out / "cd.json").read_text())
    assert (out / "cd.png").stat().st_size > 1000 and cd["blocks"] == len(TASKS)
    assert set(cd["mean_rank"]) == {"transfer", "portfolio", "default", "random"}


def test_bootstrap_interval_narrows_with_more_data_and_is_seeded():
    rng = np.random.default_rng(0)
    few, many = rng.normal(size=10), rng.normal(size=1000)
    lo_few, hi_few = bootstrap_ci(few)
    lo_many, hi_many = bootstrap_ci(many)
    assert hi_many - lo_many < (hi_few - lo_few) / 4
    assert lo_many < 0.0 < hi_many
    assert bootstrap_ci(few) == bootstrap_ci(few)


def test_wilcoxon_finds_a_consistent_difference_and_not_a_coin_flip():
    rng = np.random.default_rng(1)
    rows = []
    for task in range(20):
        for seed in range(3):
            base = rng.uniform(0.2, 0.8)
            for method, value in (
                ("transfer", base - 0.1),
                ("worse", base),
                ("same", base - 0.1 + rng.normal(0, 0.01)),
            ):
                rows.append({"task": f"t{task}", "seed": seed, "method": method, "fraction": 1.0,
                             "normalized_regret": value})  # fmt: skip
    result = wilcoxon_against(rows, "transfer", [1.0])["1.0"]
    assert result["worse"]["p_value"] < 1e-6 and result["worse"]["transfer_better"]
    assert result["same"]["p_value"] > 0.01
    assert result["worse"]["p_value_tasks"] < 1e-3 and result["worse"]["tasks"] == 20


def test_two_methods_get_a_paired_test_and_no_empty_diagram(tmp_path):
    """autorank compares two methods by Wilcoxon's test, which has no critical-difference diagram: none is drawn,
    and nothing warns (its plot warned, and saved an empty figure)."""
    rng = np.random.default_rng(2)
    values = [(f"t{task}", ("transfer", rng.uniform(0, 0.2)), ("random", rng.uniform())) for task in range(8)]
    rows = [{"task": task, "seed": 0, "method": method, "fraction": 1.0, "normalized_regret": value}
            for task, *pairs in values for method, value in pairs]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = critical_difference(rows, 1.0, tmp_path / "two.png")
    assert two["test"] == "wilcoxon" and not two["diagram"] and not (tmp_path / "two.png").exists()
    rows += [{**row, "method": "default", "normalized_regret": 0.5} for row in rows if row["method"] == "random"]
    three = critical_difference(rows, 1.0, tmp_path / "three.png")
    assert three["diagram"] and (tmp_path / "three.png").stat().st_size > 1000


def test_seed_copies_do_not_count_as_evidence_over_tasks():
    """Two seed-free methods that differ on 6 of 20 tasks: 10 copies of each task make the test over (task, seed)
    pairs look sure; over tasks it is not, and the bootstrap over tasks is as wide as the tasks make it."""
    rows = []
    for task in range(20):
        for seed in range(10):
            for method, value in (("transfer", 0.1 - 0.05 * (task < 4)), ("portfolio", 0.1 - 0.05 * (task in (4, 5)))):
                rows.append({"task": f"t{task}", "seed": seed, "method": method, "fraction": 1.0,
                             "normalized_regret": value})  # fmt: skip
    result = wilcoxon_against(rows, "transfer", [1.0])["1.0"]["portfolio"]
    assert result["p_value"] < 0.05 < result["p_value_tasks"]
    per_task = task_means([r for r in rows if r["method"] == "transfer"])
    assert len(per_task) == 20
    lo, hi = bootstrap_ci(per_task)
    lo_copies, hi_copies = bootstrap_ci([r["normalized_regret"] for r in rows if r["method"] == "transfer"])
    assert hi - lo > 2 * (hi_copies - lo_copies)


def test_a_randomized_runs_seed_comes_from_seed_and_task(lofo):
    """The configs of every task come in the same order: one seed on every task would draw the same positions."""
    from lit_transfer.tune.loop import load_state
    from lit_transfer.tune.methods.spec import task_seed

    _, summary, out = lofo
    assert task_seed(0, "alpha-l1") == task_seed(0, "alpha-l1") != task_seed(0, "alpha-l2") != task_seed(1, "alpha-l2")
    orders = {}
    for task in TASKS:
        state = load_state(out / "states" / task / "random-0.json").method
        assert state["seed"] == task_seed(0, task)
        orders[task] = tuple(state["order"][:4])
    assert len(set(orders.values())) > 1  # the same positions on every task would be one order
    assert load_state(out / "states" / "alpha-l1" / "transfer-0.json").method["seed"] == 0  # seed-free: as given
    for fraction in ("0.1", "1.0"):
        assert summary["random"][fraction]["regret_seed_sd"] >= 0.0
        assert summary["transfer"][fraction]["regret_seed_sd"] is None


def test_a_state_from_before_per_task_seeds_is_refused_not_mixed(lofo, tmp_path):
    import dataclasses
    import shutil

    plan, _, out = lofo
    copy = tmp_path / "eval"
    shutil.copytree(out, copy)
    state = copy / "states" / "beta-l1" / "random-2.json"
    raw = json.loads(state.read_text())
    del raw["method"]["seed"]  # as the states of earlier versions were saved
    state.write_text(json.dumps(raw))
    plan = dataclasses.replace(plan, out=str(copy))
    with pytest.raises(ValueError, match=r"random-2.json: made before each run's seed was derived"):
        evaluate(plan, progress=lambda line: None)
    raw["method"]["seed"] = 7  # a state of another seed: refused by the loop, naming the file
    state.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"random-2.json: the state was made with seed 7"):
        evaluate(plan, progress=lambda line: None)


def test_states_made_by_other_options_or_recipes_are_refused_not_resumed(lofo, tmp_path):
    """A rerun in the same folder with Transfer's options or its surrogate recipe changed would otherwise resume
    (and report) the old runs as the new method's; refused, naming the method, until its states are removed."""
    import dataclasses
    import shutil

    from lit_transfer.tune.methods import TransferSpec

    plan, _, out = lofo
    copy = tmp_path / "eval"
    shutil.copytree(out, copy)
    made = json.loads((copy / "states" / "made_with.json").read_text())
    assert set(made) == {"transfer", "portfolio", "default", "random"}
    again = dataclasses.replace(plan, out=str(copy))
    evaluate(again, progress=lambda line: None)  # as it was: resumed
    options = dataclasses.replace(again, methods=[TransferSpec(drop_below=0.5), "portfolio", "default", "random"])
    with pytest.raises(ValueError, match=r"made_with.json: the states of transfer were made with other options"):
        evaluate(options, progress=lambda line: None)
    recipe = tmp_path / "perf.yaml"
    recipe.write_text(Path(plan.perf_config).read_text() + "\n# another recipe\n")
    with pytest.raises(ValueError, match=r"the states of transfer were made with other options or surrogate"):
        evaluate(dataclasses.replace(again, perf_config=str(recipe)), progress=lambda line: None)
    for state in copy.glob("states/*/transfer-*.json"):
        state.unlink()
    evaluate(options, progress=lambda line: None)  # run again with the new options, the others resumed
    assert json.loads((copy / "states" / "made_with.json").read_text())["portfolio"] == made["portfolio"]
    (copy / "states" / "made_with.json").write_text("{")
    with pytest.raises(ValueError, match=r"made_with.json: cannot read what made the states"):
        evaluate(options, progress=lambda line: None)
    (copy / "states" / "made_with.json").unlink()  # states whose makers are not known: from an earlier version
    with pytest.raises(ValueError, match=r"the states of transfer have no record of what made them"):
        evaluate(options, progress=lambda line: None)


def test_references_use_the_held_out_tasks_results_and_are_never_ranked(lofo):
    from lit_transfer.evaluation.references import nearest_tasks, neighbours_order, own_order

    plan, summary, out = lofo
    references = json.loads((out / "references.json").read_text())
    assert {"oracle", "oracle_neighbours"} <= set(references) and not {"oracle", "oracle_neighbours"} & set(summary)
    for fraction in ("0.1", "0.25", "0.5", "1.0"):
        oracle = references["oracle"][fraction]["normalized_regret"]
        assert oracle <= min(entry[fraction]["normalized_regret"] for entry in summary.values()) + 1e-9
        assert references["oracle"][fraction]["tasks"] == len(TASKS)
    assert references["oracle"]["1.0"]["normalized_regret"] == 0.0  # its best config is run first
    with MetaDataset(plan.metadataset) as store:
        families = store.families()
    for task, nearest in references["neighbours"].items():
        assert len(nearest) == 3 and all(families[n] != families[task] for n in nearest)
    with open(out / "results.csv") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"transfer", "portfolio", "default", "random"}
    assert set(json.loads((out / "stats.json").read_text())["1.0"]) == {"portfolio", "default", "random"}
    table = (out / "table.md").read_text()
    assert "| oracle (reference) |" in table and "| oracle_neighbours (reference) |" in table

    # the orders themselves: the own order is by final; neighbours are the best-correlated tasks of other families
    finals = {
        "new": {"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.3},
        "kin": {"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.3},  # same family: never a neighbour, however alike
        "like": {"a": 0.8, "b": 0.6, "c": 0.0, "d": 0.2},
        "like2": {"a": 0.7, "b": 0.4, "c": 0.1, "d": 0.3},
        "unlike": {"a": 0.0, "b": 0.3, "c": 0.9, "d": 0.5},
        "flat": {"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2},
    }
    fams = {"new": "x", "kin": "x", "like": "y", "like2": "z", "unlike": "w", "flat": "v"}
    assert own_order(finals["new"]) == ["a", "b", "d", "c"]
    assert nearest_tasks("new", finals, fams, k=2) == ["like", "like2"]
    assert neighbours_order("new", ["like", "like2"], finals) == ["a", "b", "d", "c"]


def test_cross_fitted_neighbours_rank_a_config_without_its_own_final():
    """``oracle_neighbours`` chooses its tasks on the configs it then ranks; the cross-fitted reference ranks each
    half by tasks chosen from the other half, so a config's own final never moves it within its half."""
    from lit_transfer.evaluation.references import cross_fitted_order, nearest_tasks, neighbours_order

    rng = np.random.default_rng(0)
    keys = [f"c{i}" for i in range(8)]
    finals = {f"t{j}": dict(zip(keys, rng.random(8).tolist(), strict=True)) for j in range(10)}
    families = {task: task for task in finals}  # every task its own family
    half = keys[0::2]  # ranked by tasks chosen from the other half's finals

    def within(order: list[str]) -> list[str]:
        return [key for key in order if key in half]

    before = cross_fitted_order("t0", finals, families)
    in_sample_before = neighbours_order("t0", nearest_tasks("t0", finals, families), finals)
    assert sorted(before) == keys  # every config shared with every task here
    moved_in_sample = 0
    for _ in range(20):
        changed = {**finals, "t0": {**finals["t0"], **dict(zip(half, rng.random(4).tolist(), strict=True))}}
        assert within(cross_fitted_order("t0", changed, families)) == within(before)
        in_sample = neighbours_order("t0", nearest_tasks("t0", changed, families), changed)
        moved_in_sample += within(in_sample) != within(in_sample_before)
    assert moved_in_sample > 0  # the in-sample reference does move: what the cross-fitted one removes
