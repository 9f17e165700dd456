"""Asynchronous parallel freeze-thaw tuning, on replayed runs and a simulated clock: several steps in flight, never
one config twice at once, the budget counting work in flight, and a resume that reruns exactly what was in flight."""

import itertools

import lightning as L
import pytest
import torch
from conftest import fit

from lit_transfer.executors import InlineExecutor, SimulatedExecutor, WorkerLost
from lit_transfer.metadataset.portfolio import portfolio
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.surrogate import MetaDataModule, PerformanceSurrogate
from lit_transfer.tune.loop import Budget, load_state, run_tuning
from lit_transfer.tune.methods import DEHB, OptunaTPE, Portfolio, RandomSearch, Transfer
from lit_transfer.tune.methods.portfolio_halving import PortfolioHalving
from lit_transfer.tune.replay import ReplayEvaluator

SPACE = SearchSpace.from_yaml()


@pytest.fixture(scope="module")
def task(synthetic_metadataset):
    with MetaDataset(synthetic_metadataset) as store:
        return ReplayEvaluator.from_store(synthetic_metadataset, "t3"), store.tasks()["t3"]


@pytest.fixture(scope="module")
def perf(synthetic_metadataset):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    data = MetaDataModule(synthetic_metadataset, holdout_tasks=["t3"], batch_size=64)
    yield fit(PerformanceSurrogate(), data, {"max_epochs": 4})
    torch.set_num_threads(threads)


class Watched:
    """An evaluator that checks no config is in flight twice and counts how many are in flight at once."""

    def __init__(self, inner, fail=lambda trial, call: None):
        self.inner, self.fail, self.calls, self.in_flight, self.most = inner, fail, 0, set(), 0

    def start(self, trial):
        assert trial.key not in self.in_flight, "the same config was started twice at once"
        self.in_flight.add(trial.key)
        self.most = max(self.most, len(self.in_flight))

    def end(self, step):
        self.in_flight.remove(step.config_key)

    def run(self, trial):
        self.calls += 1
        self.fail(trial, self.calls)
        return self.inner.run(trial)


def simulated(workers):
    return SimulatedExecutor(workers, cost=lambda result: result[1])


def methods(evaluator, features, perf, synthetic_metadataset, tmp_path):
    candidates = evaluator.configs()
    return {
        "transfer": lambda: Transfer(SPACE, candidates, perf, features),
        "portfolio": lambda: Portfolio(SPACE, portfolio(synthetic_metadataset, exclude=["t3"])),
        "portfolio_halving": lambda: PortfolioHalving(SPACE, portfolio(synthetic_metadataset, exclude=["t3"])),
        "random": lambda: RandomSearch(SPACE, candidates, seed=1),
        "optuna_tpe": lambda: OptunaTPE(SPACE, candidates, seed=1, storage=str(tmp_path / "optuna.journal")),
        "dehb": lambda: DEHB(SPACE, candidates, seed=1),
    }


@pytest.mark.parametrize("name", ["transfer", "portfolio", "portfolio_halving", "random", "optuna_tpe", "dehb"])
def test_four_workers_spend_the_budget_exactly_with_distinct_configs_in_flight(
    name, task, perf, synthetic_metadataset, tmp_path
):
    evaluator, features = task
    method = methods(evaluator, features, perf, synthetic_metadataset, tmp_path)[name]()
    watched = Watched(evaluator)
    history = run_tuning(
        method, watched, Budget(24, "epochs"), on_step=watched.end, on_start=watched.start, executor=simulated(4)
    )
    assert len(history) == 24 and history[-1].spent == 24  # work in flight counted: no overspending
    assert watched.most == 4
    epochs: dict[str, int] = {}
    for step in history:  # freeze-thaw: each config advances one epoch at a time, in order
        assert step.fidelity == epochs.get(step.config_key, 0) + 1
        epochs[step.config_key] = step.fidelity
    assert all(b.clock >= a.clock for a, b in itertools.pairwise(history))
    assert history[-1].clock < sum(step.seconds for step in history)  # steps overlapped on the clock


def test_one_simulated_worker_is_the_sequential_loop(task, perf):
    evaluator, features = task
    inline = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(10))
    one = run_tuning(Transfer(SPACE, evaluator.configs(), perf, features), evaluator, Budget(10), executor=simulated(1))
    assert [(s.config_key, s.fidelity, s.value) for s in one] == [(s.config_key, s.fidelity, s.value) for s in inline]
    assert one[-1].clock == pytest.approx(sum(s.seconds for s in one))


def test_fantasies_spread_the_asks_of_transfer(task, perf):
    """With fantasized results for what is in flight, the surrogate's next asks are not the same config's
    neighbours at the top of the prior again and again: four asks at once are four different configs."""
    evaluator, features = task
    transfer = Transfer(SPACE, evaluator.configs(), perf, features)
    asked = []
    for _ in range(4):
        trial = transfer.ask()
        transfer.start(trial)
        asked.append(trial.key)
    assert len(set(asked)) == 4
    assert len(transfer.fantasies()) == 4


def test_a_resumed_run_reruns_what_was_in_flight_and_repeats_nothing(task, perf, tmp_path):
    evaluator, features = task
    state = tmp_path / "state.json"

    class DriverKilled(BaseException):
        pass

    def killed_at_call_9(trial, call):
        if call == 9:
            raise DriverKilled

    with pytest.raises(DriverKilled):
        run_tuning(
            Transfer(SPACE, evaluator.configs(), perf, features), Watched(evaluator, killed_at_call_9), Budget(16),
            state, executor=simulated(3),
        )  # fmt: skip
    before = load_state(state)
    assert len(before.in_flight) >= 1 and len(before.history) < 16
    rerun = Watched(evaluator)
    history = run_tuning(
        Transfer(SPACE, evaluator.configs(), perf, features), rerun, Budget(16), state, rerun.end, rerun.start,
        executor=simulated(3),
    )  # fmt: skip
    steps = [(s.config_key, s.fidelity) for s in history]
    assert len(steps) == len(set(steps)) == 16
    assert steps[: len(before.history)] == [(s.config_key, s.fidelity) for s in before.history]
    resumed = {(s.config_key, s.fidelity) for s in history[len(before.history) :]}
    assert {(PipelineConfig(t["config"]).key(), t["fidelity"]) for t in before.in_flight} <= resumed
    assert load_state(state).in_flight == []


def test_a_worker_lost_twice_is_recorded_as_failed_and_tuning_goes_on(task):
    evaluator, _ = task
    lost = []

    def lose_the_first_config(trial, call):
        if not lost or trial.key == lost[0]:
            lost[:1] = [trial.key]
            raise WorkerLost("a worker process died")

    method = RandomSearch(SPACE, evaluator.configs(), seed=0)
    history = run_tuning(method, Watched(evaluator, lose_the_first_config), Budget(10), executor=InlineExecutor())
    failed = [s for s in history if s.status == "failed"]
    assert len(failed) == 1 and failed[0].config_key == lost[0] and "twice" in failed[0].message
    assert lost[0] in method.failed
    assert sum(s.status == "ok" for s in history) == 10 and lost[0] not in {s.config_key for s in history[1:]}


def test_evaluate_with_workers_reports_how_much_sooner_n_workers_get_there(synthetic_metadataset, tmp_path):
    import json

    from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate

    plan = EvaluationPlan(
        metadataset=synthetic_metadataset, methods=["random", "portfolio"], seeds=[0, 1], budget_epochs=16,
        tasks=["t0", "t3"], workers=[1, 4], out=str(tmp_path / "out"),
    )  # fmt: skip
    summary = evaluate(plan, progress=lambda line: None)
    parallel = json.loads((tmp_path / "out" / "parallel.json").read_text())
    assert set(parallel) == {"random", "portfolio"} and set(parallel["random"]) == {"1", "4"}
    for method in parallel:
        assert parallel[method]["1"]["speedup"] == pytest.approx(1.0)
        # a config's epochs run one after another whatever the workers: the configs first in line get there as
        # soon as with one worker, the others sooner
        assert parallel[method]["4"]["pairs"] >= 1 and parallel[method]["4"]["speedup"] >= 1.0 - 1e-9
    four = parallel["portfolio"]["4"]
    assert four["not_reached"] == 0 and four["speedup"] <= 4.0, four
    # the main comparison is the sequential one, as without workers
    sequential = evaluate(
        EvaluationPlan(**{**plan.__dict__, "workers": [1], "out": str(tmp_path / "seq")}), progress=lambda line: None
    )
    assert sequential == summary
    with pytest.raises(ValueError, match="include 1"):
        EvaluationPlan(metadataset=synthetic_metadataset, workers=[2, 4])


def test_time_to_regret_is_the_clock_of_the_first_step_that_gets_there():
    from lit_transfer.evaluation.stats import time_to_regret
    from lit_transfer.tune.loop import Step

    history = [Step("a", 1, 0.2, 5, 1, 0.2, clock=5), Step("b", 1, 0.6, 5, 2, 0.6, clock=7),
               Step("a", 2, 0.9, 5, 3, 0.9, clock=12)]  # fmt: skip
    # regret = (1.0 - incumbent) / (1.0 - 0.0)
    assert time_to_regret(history, 0.4, start=0.0, best=1.0, worst=0.0) == 7
    assert time_to_regret(history, 0.1, start=0.0, best=1.0, worst=0.0) == 12
    assert time_to_regret(history, 0.05, start=0.0, best=1.0, worst=0.0) is None
    assert time_to_regret(history, 0.5, start=0.6, best=1.0, worst=0.0) == 0.0


def test_the_parallel_summary_says_what_the_winners_own_epochs_allow():
    from lit_transfer.evaluation.stats import parallel_summary
    from lit_transfer.tune.loop import Step

    one = [Step("a", 1, 0.2, 5, 1, 0.2, clock=5), Step("b", 1, 0.6, 5, 2, 0.6, clock=10),
           Step("b", 2, 0.0, 4, 3, 0.6, clock=14, status="failed"), Step("b", 2, 0.9, 5, 3, 0.9, clock=19)]  # fmt: skip
    # two workers start a and b together, then c; b's second epoch waits for c: the winner was paused
    two = [Step("a", 1, 0.2, 5, 1, 0.2, clock=5), Step("b", 1, 0.6, 5, 1, 0.6, clock=5),
           Step("c", 1, 0.3, 5, 2, 0.6, clock=10), Step("b", 2, 0.9, 5, 3, 0.9, clock=20)]  # fmt: skip
    histories = {("t", "m", 0, 1): one, ("t", "m", 0, 2): two}
    summary = parallel_summary(histories, {"t": (0.0, 1.0, 0.0)}, ["m"], {"m": [0]}, [1, 2])
    entry = summary["m"]["2"]
    assert entry["speedup"] == pytest.approx(19 / 20)
    # b's two epochs take 10 s (the lost attempt is not one of them): no number of workers gets there sooner
    assert entry["seconds_chain"] == pytest.approx(10) and entry["chain_bound"] == pytest.approx(1.9)
    assert entry["speedup_unpaused"] == pytest.approx(1.9)
    assert summary["m"]["1"]["speedup"] == pytest.approx(1.0)
