"""Scaling out: builds and tuning on Ray (a local instance and a two-node cluster, both on the loopback address
only, shut down by the test) and on worker processes; workers killed with SIGKILL mid-step."""

import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest
import ray
import yaml

from lit_transfer.executors import ProcessExecutor, RayExecutor
from lit_transfer.metadataset.build import BuildPlan, build
from lit_transfer.metadataset.tasks import TaskSpec
from lit_transfer.space import DEFAULT_SPACE, SearchSpace
from lit_transfer.tune.loop import Budget, load_state, run_tuning
from lit_transfer.tune.methods import RandomSearch
from lit_transfer.tune.replay import ReplayEvaluator

# one Ray instance at a time on this machine: the Ray modules share one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("ray")

TASKS = [TaskSpec("sums", "arithmetic", train=16, validation=8, test=8),
         TaskSpec("facts", "closed_book", train=16, validation=8, test=8)]  # fmt: skip
LOOPBACK = "127.0.0.1"

# the evaluator below is defined here: Ray workers get it by value, not by importing this test module
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}
    yield
    ray.shutdown()


def two_epoch_space(tmp_path):
    spec = yaml.safe_load(DEFAULT_SPACE.read_text())
    spec["max_epochs"] = 2
    spec["hyperparameters"]["quantization"] = {"kind": "categorical", "choices": ["none"], "default": "none"}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def space(tmp_path):
    return two_epoch_space(tmp_path)


def build_common(tmp_path, tiny_model, space):
    return {"base_model": tiny_model, "tasks_dir": str(tmp_path / "tasks"), "tasks": TASKS, "space": space,
            "shared_configs": 2, "workers": 2, "max_length": 96, "eval_batch_size": 8}  # fmt: skip


def assert_same_records(a, b):
    mine = {(r.task, r.config_key): r for r in a.runs()}
    theirs = {(r.task, r.config_key): r for r in b.runs()}
    assert len(mine) == 4 and set(mine) == set(theirs)
    for key, run in mine.items():
        assert run.status == theirs[key].status == "ok"
        for p, q in zip(run.curve, theirs[key].curve, strict=True):
            assert p["fidelity"] == q["fidelity"]
            for name, value in p["metrics"].items():
                assert q["metrics"][name] == pytest.approx(value, abs=1e-6), (key, name)


@pytest.mark.slow
def test_a_ray_build_records_what_the_local_build_records(tmp_path, tiny_model, space, local_ray):
    common = build_common(tmp_path, tiny_model, space)
    local = build(BuildPlan(out=str(tmp_path / "local" / "meta.sqlite"), **common), progress=False)
    remote = build(BuildPlan(out=str(tmp_path / "ray" / "meta.sqlite"), executor="ray", **common), progress=False)
    assert_same_records(local, remote)


class KillsItsWorker:
    """Replays recorded runs, but the worker process running a step of a doomed config SIGKILLs itself: ``doomed``
    maps a config to how many times (counted in files, which outlive the process)."""

    def __init__(self, inner, marks: str, doomed: dict[str, int]):
        self.inner, self.marks, self.doomed = inner, Path(marks), doomed

    def run(self, trial):
        name = hashlib.sha1(trial.key.encode()).hexdigest()
        done = len(list(self.marks.glob(f"{name}-*")))
        if done < self.doomed.get(trial.key, 0):
            (self.marks / f"{name}-{done}").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.run(trial)


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_a_worker_killed_mid_step_is_retried_once_then_recorded_failed(executor, synthetic_metadataset, tmp_path,
                                                                       request):  # fmt: skip
    if executor == "ray":
        request.getfixturevalue("local_ray")
    replay = ReplayEvaluator.from_store(synthetic_metadataset, "t1")
    order = RandomSearch(SearchSpace.from_yaml(), replay.configs(), seed=0)
    first, second = order.ask().key, order.continue_or_next([order.candidates[i] for i in order.order[1:]]).key
    marks = tmp_path / "marks"
    marks.mkdir()
    killer = KillsItsWorker(replay, str(marks), {first: 1, second: 2})  # killed once, killed twice
    runner = ProcessExecutor(2) if executor == "processes" else RayExecutor(2)
    method = RandomSearch(SearchSpace.from_yaml(), replay.configs(), seed=0)
    history = run_tuning(method, killer, Budget(12), tmp_path / "state.json", executor=runner)
    assert len(list(marks.iterdir())) == 3  # really killed, three times
    assert sum(s.status == "ok" for s in history) == 12  # the budget is spent on steps that ran
    assert first in {s.config_key for s in history if s.status == "ok"}  # its retry ran it
    failed = [s for s in history if s.status == "failed"]
    assert [s.config_key for s in failed] == [second] and "worker" in failed[0].message and "twice" in failed[0].message
    assert second in load_state(tmp_path / "state.json").method["failed"]


@pytest.mark.slow
def test_a_ray_tune_with_two_workers_respects_the_budget_and_resumes(tmp_path, tiny_model, qa_dir, local_ray):
    from conftest import write_synthetic_metadataset

    from lit_transfer.tune.commands import tune

    metadataset = str(write_synthetic_metadataset(tmp_path / "meta.sqlite", base_model=tiny_model, configs=8))
    storage = (tmp_path / "storage").as_uri()  # through fsspec, as an object store would be
    common = {"data": str(qa_dir), "budget_unit": "epochs", "method": "random", "metadataset": metadataset,
              "out": str(tmp_path / "tune"), "candidates": 0, "executor": "ray", "workers": 2,
              "storage": storage}  # fmt: skip
    first = tune(budget=3, **common)
    state = load_state(tmp_path / "tune" / "state.json")
    assert first["steps"] == 3 and state.spent == 3 and state.in_flight == []
    assert len({s.config_key for s in state.history}) == 2  # two configs at once
    resumed = tune(budget=5, **common)
    after = load_state(tmp_path / "tune" / "state.json")
    assert resumed["steps"] == 5 and after.history[:3] == state.history
    steps = [(s.config_key, s.fidelity) for s in after.history]
    assert len(set(steps)) == 5
    assert resumed["adapter"].startswith(storage) and "test/acc" in resumed["test"]
    trials = list((tmp_path / "storage" / "trials").glob("*/*"))  # <data fingerprint>/<trial id>
    assert trials and all((t / "curve.json").exists() and (t / "checkpoints" / "last.ckpt").exists() for t in trials)
    assert not (tmp_path / "tune" / "trials").exists()  # trials live in storage, the state in out


@pytest.mark.parametrize("asks", [{"num_cpus": 64}, {"num_gpus": 1}])
def test_a_trial_no_node_can_hold_is_refused_before_anything_waits(asks, local_ray):
    """64 CPUs, or a GPU, per trial on this 2-CPU instance: an actor that could never be placed waited for ever."""
    with pytest.raises(ValueError, match=r"no node of the local Ray instance has that many .*lower --num_cpus"):
        RayExecutor(1, **asks)


def test_an_address_that_does_not_answer_is_one_line_in_seconds(tmp_path, qa_dir):
    """``--address 127.0.0.1:1``: nothing listens there; Ray retried until killed. Now: exit 2 with one line, and no
    Ray process left behind."""
    import subprocess
    import time

    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lit_transfer", "tune", "--data", str(qa_dir), "--budget", "1", "--budget_unit",
         "epochs", "--out", str(tmp_path / "out"), "--executor", "ray", "--address", f"{LOOPBACK}:1"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"error: Ray address {LOOPBACK}:1: nothing answers there ([Errno 111] Connection refused)"
    ]
    assert time.perf_counter() - start < 60
