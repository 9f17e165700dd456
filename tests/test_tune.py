import itertools
import json

import lightning as L
import numpy as np
import pytest
import torch
from conftest import fit, write_synthetic_metadataset
from scipy.stats import norm

from lit_transfer.metadataset.portfolio import portfolio
from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError
from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.surrogate import CostSurrogate, ExperienceSurrogate, MetaDataModule, PerformanceSurrogate
from lit_transfer.tune.acquisition import (
    cost_aware_expected_improvement,
    expected_improvement,
    expected_improvement_per_epoch,
    upper_confidence_bound,
)
from lit_transfer.tune.loop import Budget, incumbent_at, load_state, parse_duration, run_tuning
from lit_transfer.tune.methods import DEHB, DyHPO, OptunaTPE, Portfolio, QuickTune, RandomSearch, Transfer, Trial
from lit_transfer.tune.replay import ReplayEvaluator

SPACE = SearchSpace.from_yaml()


@pytest.fixture(scope="module")
def surrogates(synthetic_metadataset):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    perf = fit(
        PerformanceSurrogate(),
        MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"], batch_size=64),
        {"max_epochs": 6},
    )
    cost = fit(
        CostSurrogate(), MetaDataModule(synthetic_metadataset, target="cost", holdout_tasks=["t3"]), {"max_epochs": 50}
    )
    data = MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"])
    experience = fit(ExperienceSurrogate(variance_steps=100), data, {"max_epochs": 1})
    yield perf, cost, experience
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task(synthetic_metadataset):
    with MetaDataset(synthetic_metadataset) as store:
        return ReplayEvaluator.from_store(synthetic_metadataset, "t3"), store.tasks()["t3"]


def test_expected_improvement_matches_the_closed_form():
    # mean 1, std 1, best 0: 1 * Phi(1) + phi(1)
    assert expected_improvement(np.array([1.0]), np.array([1.0]), 0.0)[0] == pytest.approx(norm.cdf(1) + norm.pdf(1))
    # no uncertainty: the plain improvement (or nothing)
    np.testing.assert_allclose(expected_improvement(np.array([0.7, 0.2]), np.array([0.0, 0.0]), 0.5), [0.2, 0.0])
    # symmetric case: mean == best -> std * phi(0)
    assert expected_improvement(np.array([0.5]), np.array([0.2]), 0.5)[0] == pytest.approx(0.2 * norm.pdf(0))
    ei = expected_improvement(np.array([0.6]), np.array([0.1]), 0.5)
    assert cost_aware_expected_improvement(np.array([0.6]), np.array([0.1]), 0.5, np.array([4.0]), 0.5)[0] == (
        pytest.approx(ei[0] / 2)
    )
    assert upper_confidence_bound(np.array([0.5]), np.array([0.1]), 2.0)[0] == pytest.approx(0.7)


def test_expected_improvement_per_epoch_favours_configs_closer_to_their_final():
    ei = expected_improvement(np.array([0.6, 0.6]), np.array([0.1, 0.1]), 0.5)
    per_epoch = expected_improvement_per_epoch(np.array([0.6, 0.6]), np.array([0.1, 0.1]), 0.5, np.array([2, 8]))
    np.testing.assert_allclose(per_epoch, ei / [2, 8])
    # a config at its last epoch counts one epoch, not zero
    assert expected_improvement_per_epoch(np.array([0.6]), np.array([0.1]), 0.5, np.array([0]))[0] == ei[0]


def test_ei_remaining_takes_a_promising_config_to_its_end(task, surrogates):
    """Freeze-thaw with EI per remaining epoch: once a config is under way, its next epochs cost less of the
    budget per unit of expected final improvement than a fresh start, so the tuner finishes some configs."""
    evaluator, features = task
    perf, _, _ = surrogates
    history = run_tuning(
        Transfer(SPACE, evaluator.configs(), perf, features, acquisition="ei_remaining"), evaluator, Budget(24)
    )
    deepest = max(step.fidelity for step in history)
    plain = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features, acquisition="ei"), evaluator, Budget(24))
    started = len({step.config_key for step in history})
    # plain EI of the final value starts more configs with the same budget (here 6 against 3)
    assert deepest == SPACE.max_epochs and started < len({step.config_key for step in plain})


class _Forecasts:
    """A performance predictor whose forecasts are set by hand: a config with epochs ends 0.1 above its last
    value, give or take 0.05; a fresh config is 0.5 give or take 0.3 (nothing is known of it)."""

    def predict(self, configs, task_features, curves, fidelity, observed=()):
        mean = np.array([c[-1]["val/acc"] + 0.1 if c else 0.5 for c in curves])
        return mean, np.array([0.05 if c else 0.3 for c in curves])


def test_drop_below_keeps_a_config_while_it_can_win_or_is_on_track():
    configs = [dict(c.values) for c in SPACE.sample(3, seed=1)]
    a = PipelineConfig(configs[0]).key()

    def tuner(**kwargs):
        method = Transfer(SPACE, configs, _Forecasts(), {}, **kwargs)
        method.tell(Trial(configs[0], 1), [{"val/acc": 0.3}])
        method.last = a  # as if a's first epoch was the last ask
        return method

    # plain EI leaves a (0.4 +- 0.05) for a fresh config (0.5 +- 0.3); with drop_below it goes on with a
    assert tuner().ask().key != a
    assert tuner(drop_below=0.2).ask() == Trial(configs[0], 2)
    # once another config has reached 0.9, a cannot win: the acquisition chooses again (not a)
    method = tuner(drop_below=0.2)
    method.tell(Trial(configs[1], 1), [{"val/acc": 0.9}])
    method.last = a  # as if another worker's result had come in while a's next epoch was asked
    assert method.ask().key != a
    # unless it is on track: level with that config at the same epoch (0.3 against 0.2), however high it rose after
    method = tuner(drop_below=0.2)
    method.tell(Trial(configs[1], 2), [{"val/acc": 0.2}, {"val/acc": 0.9}])
    method.last = a
    assert method.ask() == Trial(configs[0], 2)
    with pytest.raises(ValueError, match="drop_below"):
        tuner(drop_below=1.5)


class _RatedByExperience(_Forecasts):
    """As ``_Forecasts``, but the experience rates a fresh config highly: 0.9 give or take 0.2."""

    def predict(self, configs, task_features, curves, fidelity, observed=()):
        mean, std = super().predict(configs, task_features, curves, fidelity, observed)
        return np.where([bool(c) for c in curves], mean, 0.9), np.where([bool(c) for c in curves], std, 0.2)


def test_transfer_keeps_a_slow_starter_the_experience_rates():
    """A config whose first epoch forecasts no win (0.4 against another's 0.9) but which the experience expects to
    end near 0.9 is a late riser: Transfer keeps training it; without keep_on_experience it is dropped."""
    configs = [dict(c.values) for c in SPACE.sample(3, seed=1)]
    a = PipelineConfig(configs[0]).key()

    def tuner(**kwargs):
        method = Transfer(SPACE, configs, _RatedByExperience(), {}, drop_below=0.2, **kwargs)
        method.tell(Trial(configs[0], 1), [{"val/acc": 0.3}])
        method.tell(Trial(configs[1], 1), [{"val/acc": 0.9}])
        method.last = a
        return method

    assert tuner().ask() == Trial(configs[0], 2)
    assert tuner(keep_on_experience=False).ask().key != a


def test_the_experience_keeps_a_slow_starter_not_a_flat_one():
    """Where another config has learned (0.9), a config still at the task's zero-shot value after two epochs of its
    own has shown that it does not learn here, however highly the experience rates it; after one epoch it is a slow
    start, and the experience keeps it."""
    configs = [dict(c.values) for c in SPACE.sample(3, seed=1)]
    a = PipelineConfig(configs[0]).key()

    def tuner(flat_epochs):
        method = Transfer(SPACE, configs, _RatedByExperience(), {"zero_shot_acc": 0.05}, drop_below=0.2)
        method.tell(Trial(configs[1], 1), [{"val/acc": 0.9}])
        method.tell(Trial(configs[0], flat_epochs), [{"val/acc": 0.05}] * flat_epochs)
        method.last = a
        return method

    assert tuner(1).ask() == Trial(configs[0], 2)
    assert tuner(2).ask().key != a


class _FlatReplay:
    """A task on which no config learns: every epoch of every config scores its zero-shot value, 0.05."""

    def run(self, trial):
        return [{"val/acc": 0.05}] * trial.fidelity, 1.0


def test_where_nothing_learns_the_rules_to_continue_fail_and_more_configs_are_probed():
    """On a new kind of task where every config stays at the zero-shot value, neither the experience's high
    rating (0.9 ± 0.2) nor "level with the best other" (all at 0.05) keeps a config: after two flat epochs each,
    the budget goes to configs not yet tried, instead of three configs trained to the end."""
    configs = [dict(c.values) for c in SPACE.sample(12, seed=1)]
    method = Transfer(SPACE, configs, _RatedByExperience(), {"zero_shot_acc": 0.05}, drop_below=0.2)
    history = run_tuning(method, _FlatReplay(), Budget(24))
    epochs = {}
    for step in history:
        epochs[step.config_key] = step.fidelity
    assert len(epochs) >= 10 and max(epochs.values()) <= 2  # probed, not trained to the end
    # where the task learns, the same method keeps its config going (the experience rates it, it is on track)
    learning = Transfer(SPACE, configs, _RatedByExperience(), {"zero_shot_acc": 0.05}, drop_below=0.2)
    learning.tell(Trial(configs[0], 2), [{"val/acc": 0.3}, {"val/acc": 0.4}])
    learning.last = PipelineConfig(configs[0]).key()
    assert learning.ask() == Trial(configs[0], 3)


def test_the_config_told_last_is_the_one_to_continue():
    """With steps in flight, the freed worker's ask considers continuing the config whose step just ended, not the
    one another worker was given meanwhile (in flight, so it cannot be continued)."""
    configs = [dict(c.values) for c in SPACE.sample(3, seed=1)]
    method = Transfer(SPACE, configs, _Forecasts(), {}, drop_below=0.2)
    first = method.ask()
    method.start(first)
    second = method.ask()  # another worker's, while the first is in flight
    method.start(second)
    assert second.key != first.key
    method.tell(first, [{"val/acc": 0.3}])
    assert method.ask() == Trial(first.config, 2)


def test_replay_serves_recorded_curves_and_epoch_costs(task):
    evaluator, _ = task
    config = evaluator.configs()[0]
    curve, seconds = evaluator.run(Trial(config, 3))
    run = evaluator.runs[Trial(config, 3).key]
    assert len(curve) == 3 and curve[-1] == run.curve[3]["metrics"]
    assert seconds == pytest.approx(run.curve[3]["seconds"] - run.curve[2]["seconds"])
    with pytest.raises(ValueError, match=r"epochs 1\.\.8"):
        evaluator.run(Trial(config, 9))


def test_portfolio_ranks_the_configs_every_other_task_ran(tmp_path):
    """Own configs have one result each, not an average, and the held-out task never ran them: the portfolio ranks
    the shared core only, so on a task with own configs it replays every choice it makes."""
    path = tmp_path / "own.sqlite"
    write_synthetic_metadataset(path, configs=6, own=4)
    ranked = portfolio(str(path), exclude="t3")
    with MetaDataset(str(path)) as store:
        finals = {}
        for run in store.runs():
            finals.setdefault(run.config_key, {})[run.task] = run.curve[-1]["metrics"]["val/acc"]
    shared = {k for k, by_task in finals.items() if {"t0", "t1", "t2"} <= set(by_task)}
    keys = [PipelineConfig(c).key() for c in ranked]
    assert len(shared) == 6 and set(keys) == shared
    means = [np.mean([finals[k][t] for t in ("t0", "t1", "t2")]) for k in keys]
    assert means == sorted(means, reverse=True)
    evaluator = ReplayEvaluator.from_store(str(path), "t3")
    history = run_tuning(Portfolio(SPACE, ranked), evaluator, Budget(64))
    assert {s.config_key for s in history} == shared and all(s.status == "ok" for s in history)


@pytest.mark.parametrize(
    "method",
    [
        "transfer",
        "transfer_next",
        "transfer_cost_ei",
        "transfer_ei_remaining",
        "transfer_experience",
        "quicktune",
        "dyhpo",
        "portfolio",
        "random",
        "optuna_tpe",
        "dehb",
    ],
)
def test_every_method_tunes_within_budget(method, task, surrogates, synthetic_metadataset, tmp_path):
    evaluator, features = task
    perf, cost, experience = surrogates
    candidates = evaluator.configs()
    common = {"perf": perf, "task_features": features}
    optimizer = {
        "transfer": lambda: Transfer(SPACE, candidates, **common),
        "transfer_next": lambda: Transfer(SPACE, candidates, acquisition="ei", horizon="next", **common),
        "transfer_cost_ei": lambda: Transfer(SPACE, candidates, cost=cost, acquisition="cost_ei", **common),
        "transfer_ei_remaining": lambda: Transfer(SPACE, candidates, acquisition="ei_remaining", **common),
        "transfer_experience": lambda: Transfer(
            SPACE, candidates, acquisition="ei_remaining", incumbent="predicted", **{**common, "perf": experience}
        ),
        "quicktune": lambda: QuickTune(SPACE, candidates, refit_steps=5, **common),
        "dyhpo": lambda: DyHPO(SPACE, candidates, refit_steps=10, **common),
        "portfolio": lambda: Portfolio(SPACE, portfolio(synthetic_metadataset, exclude="t3")),
        "random": lambda: RandomSearch(SPACE, candidates, seed=1),
        "optuna_tpe": lambda: OptunaTPE(SPACE, candidates, seed=1, storage=str(tmp_path / "optuna.journal")),
        "dehb": lambda: DEHB(SPACE, candidates, seed=1),
    }[method]()
    history = run_tuning(optimizer, evaluator, Budget(20, "epochs"))
    assert len(history) == 20 and history[-1].spent == 20
    assert all(b.incumbent >= a.incumbent for a, b in itertools.pairwise(history))
    # freeze-thaw: every step advances its config by exactly one epoch
    epochs: dict[str, int] = {}
    for step in history:
        assert step.fidelity == epochs.get(step.config_key, 0) + 1
        epochs[step.config_key] = step.fidelity


@pytest.mark.parametrize("surrogate", ["deep_kernel_gp", "experience"])
def test_transfer_finds_a_good_config_fast(task, surrogates, surrogate):
    evaluator, features = task
    perf, _, experience = surrogates
    if surrogate == "experience":  # the setting it is meant for: EI per remaining epoch over forecast finals
        options = {"acquisition": "ei_remaining", "incumbent": "predicted"}
        tuner = Transfer(SPACE, evaluator.configs(), experience, features, **options)
    else:
        tuner = Transfer(SPACE, evaluator.configs(), perf, features)
    transfer = run_tuning(tuner, evaluator, Budget(16, "epochs"))
    randoms = [
        incumbent_at(run_tuning(RandomSearch(SPACE, evaluator.configs(), seed=s), evaluator, Budget(16)), 16, 0.0)
        for s in range(5)
    ]
    assert incumbent_at(transfer, 16, 0.0) >= 0.95 * evaluator.best_value()
    assert incumbent_at(transfer, 16, 0.0) > np.median(randoms)


def test_horizon_is_the_epoch_candidates_are_scored_at(task, surrogates):
    """``final`` scores every candidate at the last epoch given its curve so far; ``next`` at its next epoch."""
    evaluator, features = task
    perf, _, _ = surrogates
    asked = []

    class Recording:
        encoding, hparams = perf.encoding, perf.hparams

        def predict(self, configs, task_features, curves, fidelity, observed=()):
            asked.append((list(fidelity), [len(c) for c in curves]))
            return perf.predict(configs, task_features, curves, fidelity, observed)

    for horizon, expected in (("final", lambda done: 8), ("next", lambda done: done + 1)):
        asked.clear()
        tuner = Transfer(SPACE, evaluator.configs(), Recording(), features, acquisition="ei", horizon=horizon)
        run_tuning(tuner, evaluator, Budget(4))
        assert len(asked) == 4 and max(max(done) for _, done in asked) >= 1
        for fidelity, done in asked:
            assert fidelity == [expected(d) for d in done]
    with pytest.raises(ValueError, match="horizon must be 'final' or 'next'"):
        Transfer(SPACE, evaluator.configs(), perf, features, horizon="last")


def test_seconds_budget_overspends_by_at_most_one_step(task):
    evaluator, _ = task
    history = run_tuning(RandomSearch(SPACE, evaluator.configs()), evaluator, Budget(60.0, "seconds"))
    assert history[-1].spent >= 60.0
    assert history[-2].spent < 60.0
    assert history[-1].spent - history[-1].seconds < 60.0


def test_resume_from_state_file_loses_and_repeats_nothing(task, surrogates, tmp_path):
    evaluator, features = task
    perf, _, _ = surrogates
    full = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(12))
    state = tmp_path / "state.json"
    first = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(5), state)
    assert len(load_state(state).history) == 5
    resumed = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(12), state)
    assert [s.config_key for s in resumed[:5]] == [s.config_key for s in first]
    assert [(s.config_key, s.fidelity) for s in resumed] == [(s.config_key, s.fidelity) for s in full]
    assert json.loads(state.read_text())["spent"] == 12


def test_optuna_prunes_and_resumes(task, tmp_path):
    evaluator, _ = task
    state, journal = tmp_path / "optuna.json", str(tmp_path / "optuna.journal")
    first = run_tuning(OptunaTPE(SPACE, evaluator.configs(), startup_trials=2, storage=journal), evaluator,
                       Budget(60), state)  # fmt: skip
    done = OptunaTPE(SPACE, evaluator.configs(), startup_trials=2, storage=journal).study.trials
    assert any(t.state.name == "PRUNED" for t in done)  # the median pruner stopped some trials early
    # TPE is told the point that was evaluated: every modelled trial's parameters are a candidate's
    keys = {c["learning_rate"] for c in evaluator.configs()}
    assert all(t.params["learning_rate"] in keys for t in done if t.state.name in ("COMPLETE", "PRUNED", "RUNNING"))
    resumed = OptunaTPE(SPACE, evaluator.configs(), startup_trials=2, storage=journal)
    history = run_tuning(resumed, evaluator, Budget(75), state)
    assert [s.config_key for s in history[:60]] == [s.config_key for s in first]
    assert len(history) == 75
    modelled = [t for t in resumed.study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(modelled) > len([t for t in done if t.state.name in ("COMPLETE", "PRUNED")])


def test_bad_inputs_give_clear_errors(task, surrogates, tmp_path):
    evaluator, features = task
    perf, _, _ = surrogates
    with pytest.raises(ValueError, match="budget must be > 0"):
        Budget(0)
    with pytest.raises(ValueError, match="not a duration: '5 hours'"):
        parse_duration("5 hours")
    assert (parse_duration("5h"), parse_duration("30m"), parse_duration("90s"), parse_duration("600")) == (
        18000,
        1800,
        90,
        600,
    )
    with pytest.raises(ValueError, match="unit must be"):
        Budget(5, "hours")
    with pytest.raises(ValueError, match="acquisition must be"):
        Transfer(SPACE, evaluator.configs(), perf, features, acquisition="pi")
    with pytest.raises(ValueError, match="use it with horizon 'final'"):
        Transfer(SPACE, evaluator.configs(), perf, features, acquisition="ei_remaining", horizon="next")
    with pytest.raises(ValueError, match="incumbent must be 'observed' or 'predicted'"):
        Transfer(SPACE, evaluator.configs(), perf, features, incumbent="best")
    with pytest.raises(ValueError, match="needs a cost surrogate"):
        Transfer(SPACE, evaluator.configs(), perf, features, acquisition="cost_ei")
    with pytest.raises(ValueError, match="no candidate configs"):
        Transfer(SPACE, [], perf, features)
    with pytest.raises(MetaDatasetError, match="no recorded runs"):
        ReplayEvaluator([])
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a tuning state file"):
        run_tuning(RandomSearch(SPACE, evaluator.configs()), evaluator, Budget(3), bad)
    state = tmp_path / "state.json"
    run_tuning(RandomSearch(SPACE, evaluator.configs()), evaluator, Budget(2), state)
    with pytest.raises(ValueError, match="state of 'random' cannot be loaded into 'transfer'"):
        run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(3), state)


@pytest.mark.slow
def test_evaluate_twice_gives_byte_identical_summaries(synthetic_metadataset, tmp_path):
    """One seeded surrogate-training path: the per-fold surrogates, and so the comparison, rebuild exactly."""
    from conftest import short_recipe

    from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate

    common = {
        "metadataset": synthetic_metadataset, "methods": ["transfer", "random"], "seeds": [0], "budget_epochs": 6,
        "tasks": ["t0", "t3"], "perf_config": short_recipe(tmp_path, "performance", 2),
        "cost_config": short_recipe(tmp_path, "cost", 20),
    }  # fmt: skip
    for name in ("a", "b"):
        evaluate(EvaluationPlan(**common, out=str(tmp_path / name)), progress=lambda message: None)
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute", "..", ".hidden", "a/b"])
def test_task_names_never_leave_the_output_folder(synthetic_metadataset, tmp_path, name):
    import shutil

    from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate

    path = tmp_path / "meta.sqlite"
    shutil.copy(synthetic_metadataset, path)
    with MetaDataset(path) as store:
        store.conn.execute("UPDATE tasks SET task=? WHERE task='t0'", (name,))
        store.conn.execute("UPDATE runs SET task=? WHERE task='t0'", (name,))
    plan = EvaluationPlan(
        metadataset=str(path), methods=["random"], seeds=[0], budget_epochs=2, tasks=[name], out=str(tmp_path / "out")
    )
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        evaluate(plan, progress=lambda message: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.sqlite", "out"]


def test_a_second_evaluation_in_the_same_folder_is_refused_at_once(synthetic_metadataset, tmp_path):
    from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate
    from lit_transfer.io import FolderLock, LockedError

    plan = EvaluationPlan(metadataset=synthetic_metadataset, methods=["random"], seeds=[0], budget_epochs=2,
                          tasks=["t0"], out=str(tmp_path / "out"))  # fmt: skip
    with FolderLock(tmp_path / "out"), pytest.raises(LockedError, match="in use by another process"):
        evaluate(plan, progress=lambda message: None)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_dehb_trains_its_jobs_to_hyperband_fidelities_and_resumes_where_it_was(task, tmp_path):
    evaluator, _ = task
    full = run_tuning(DEHB(SPACE, evaluator.configs(), seed=3), evaluator, Budget(30))
    state = tmp_path / "state.json"
    run_tuning(DEHB(SPACE, evaluator.configs(), seed=3), evaluator, Budget(13), state)
    resumed = run_tuning(DEHB(SPACE, evaluator.configs(), seed=3), evaluator, Budget(30), state)
    assert [(s.config_key, s.fidelity) for s in resumed] == [(s.config_key, s.fidelity) for s in full]
    events = json.loads(state.read_text())["method"]["events"]
    asked = {e["epochs"] for e in events if "ask" in e}
    assert asked <= {3, 8} and 8 in asked  # Hyperband's brackets over 8 epochs with eta 3
    assert sum("tell" in e for e in events) >= 4


def test_dyhpo_is_the_same_run_whatever_the_process_drew_before(task, surrogates):
    """DyHPO's fresh weights come from its seed, not from the process's random state: a resumed or rerun
    evaluation reproduces it."""
    evaluator, features = task
    perf, _, _ = surrogates
    runs = []
    for draws in (0, 5):
        torch.rand(draws)  # other work in the same process
        method = DyHPO(SPACE, evaluator.configs(), perf, features, refit_steps=5, seed=3)
        runs.append([(s.config_key, s.fidelity, s.value) for s in run_tuning(method, evaluator, Budget(8))])
    assert runs[0] == runs[1]
