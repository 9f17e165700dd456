import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lit_transfer.finetune.run import RunError, RunSettings
from lit_transfer.metadataset.build import BuildPlan, PlannedRun, build, run_planned
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import summarize
from lit_transfer.metadataset.tasks import TaskSpec
from lit_transfer.space import DEFAULT_SPACE

TASKS = [
    {"name": "sums", "family": "arithmetic", "train": 16, "validation": 8, "test": 8},
    {"name": "facts", "family": "closed_book", "train": 24, "validation": 8, "test": 8},
]


@pytest.fixture
def space(tmp_path):
    """The default space, but 2 epochs and no 4-bit runs, to keep the builds short."""
    spec = yaml.safe_load(DEFAULT_SPACE.read_text())
    spec["max_epochs"] = 2
    spec["hyperparameters"]["quantization"] = {"kind": "categorical", "choices": ["none"], "default": "none"}
    spec["hyperparameters"]["batch_size"] = {"kind": "ordinal", "choices": [8, 16], "default": 8}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _plan(tmp_path, tiny_model, space, configs=3) -> dict:
    return {
        "out": str(tmp_path / "meta.sqlite"), "base_model": tiny_model, "tasks_dir": str(tmp_path / "tasks"),
        "tasks": TASKS, "space": space, "shared_configs": configs, "workers": 2, "max_length": 96,
        "eval_batch_size": 8,
    }  # fmt: skip


def test_build_runs_every_task_and_config_to_max_fidelity(tmp_path, tiny_model, space):
    raw = _plan(tmp_path, tiny_model, space)
    plan = BuildPlan(**{**raw, "tasks": [TaskSpec(**t) for t in TASKS]})
    store = build(plan, progress=False)
    runs = list(store.runs())
    assert len(runs) == 6 and {r.task for r in runs} == {"sums", "facts"}
    for run in runs:
        assert run.status in ("ok", "diverged"), run.message
        if run.status == "ok":
            assert [p["fidelity"] for p in run.curve] == [0.0, 1.0, 2.0]
            assert run.seconds > 0 and run.tokens > 0 and run.versions["torch"]
    defaults = [r for r in runs if r.config_key == plan.configs()[0].key()]
    assert len(defaults) == 2  # the default pipeline is always in the build
    features = store.tasks()["sums"]
    assert features["log_train_size"] == pytest.approx(2.772588, rel=1e-5)
    assert 0 <= features["zero_shot_acc"] <= 1 and features["zero_shot_loss"] > 0
    summary = summarize(store, plan.configs()[0].key())
    assert summary["runs"] == 6 and summary["tasks"] == 2
    assert summary["per_task"][0]["default"] is not None

    again = build(plan, progress=False)  # a finished build has nothing left to do
    assert len(again) == 6


def test_an_error_that_is_not_the_runs_outcome_is_raised_not_recorded(tmp_path, tiny_model):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    settings = RunSettings(tiny_model, max_epochs=2, max_length=64, eval_batch_size=8)
    run = PlannedRun("broken", str(tmp_path / "broken"), {"batch_size": 8, "lora_rank": 4}, settings)
    with pytest.raises(RunError, match="no 'validation' split"):
        run_planned(run)


def test_shared_and_own_configs(tmp_path, tiny_model, space):
    plan = BuildPlan(**{**_plan(tmp_path, tiny_model, space, configs=3), "own_configs": 2,
                        "tasks": [TaskSpec(**t, seed=i) for i, t in enumerate(TASKS)]})  # fmt: skip
    specs = plan.task_specs()
    shared = [c.key() for c in plan.configs()]
    own = [[c.key() for c in plan.own(spec)] for spec in specs]
    assert shared[0] == plan.search_space().default().key() and len(set(shared)) == 3
    assert len(own[0]) == 2 and not set(own[0]) & set(own[1]) and not set(own[0]) & set(shared)
    assert own[0] == [c.key() for c in plan.own(specs[0])]  # the task's seed decides its own configs


@pytest.mark.slow
def test_build_resumes_after_sigkill_without_losing_or_duplicating_runs(tmp_path, tiny_model, space):
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump({"plan": _plan(tmp_path, tiny_model, space, configs=5)}))
    command = [
        sys.executable,
        "-m",
        "lit_transfer",
        "metadata",
        "build",
        "--config",
        str(config),
        "--progress",
        "false",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = tmp_path / "meta.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:
        if db.exists() and process.poll() is None:
            with MetaDataset(db) as store:
                if len(store) >= 3:
                    break
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the builder and its workers, mid-run
    process.wait()
    with MetaDataset(db) as store:
        before = {(r.task, r.config_key): r.curve for r in store.runs()}
    assert 3 <= len(before) < 10
    for curve in before.values():  # what is there is whole
        assert [p["fidelity"] for p in curve] in ([0.0, 1.0, 2.0], [])

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with MetaDataset(db) as store:
        runs = list(store.runs())
    keys = [(r.task, r.config_key) for r in runs]
    assert len(keys) == len(set(keys)) == 10  # nothing lost, nothing duplicated
    assert all({(r.task, r.config_key): r.curve for r in runs}[k] == c for k, c in before.items())


def test_a_second_build_of_the_same_file_is_refused_at_once(tmp_path, tiny_model, space):
    from lit_transfer.io import FolderLock, LockedError

    plan = BuildPlan(**{**_plan(tmp_path, tiny_model, space), "tasks": [TaskSpec(**t) for t in TASKS]})
    with FolderLock(tmp_path), pytest.raises(LockedError, match="in use by another process"):
        build(plan, progress=False)
    assert not (tmp_path / "meta.sqlite").exists()


def test_a_released_lock_stays_released_while_a_forked_worker_lives(tmp_path):
    """Worker processes forked while the build holds its lock inherit the descriptor; leaving the lock must
    release it all the same, or the next build of the folder is refused until those workers exit."""
    import multiprocessing
    import time

    from lit_transfer.io import FolderLock

    with FolderLock(tmp_path):
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
        worker.start()
    try:
        with FolderLock(tmp_path):
            pass
    finally:
        worker.kill()
        worker.join()
