"""Build a meta-dataset: every task x its pipeline configs, each trained to the maximum fidelity.

Each task runs a shared core of configs (the default among them; the same on every task, so tasks can be compared)
and configs of its own (sampled with the task's seed, so no method knows a candidate's exact results on other
tasks in advance). Every run goes through the one run path (``lit_transfer.finetune.run``), in worker processes
that stay warm (base model and tokenized task kept between runs).

Resumable by construction: a run is written to the store (with its whole curve, in one transaction) only when it
has ended, and the builder skips runs the store already has. So a build killed at any moment loses only the runs
in flight and, rerun, redoes exactly those. A NaN loss or an out-of-memory is the run's own outcome and is
recorded; any other error (I/O, our code) is not a result: the run is retried once, then the build stops with the
error, and the same command continues after the cause is fixed. A worker that dies outright is replaced and its
run retried once, then recorded as failed with the reason. Runs go to worker processes on this machine or to Ray
actors on a cluster (``lit_transfer.executors``); either way only this process writes the meta-dataset.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lit_transfer.executors import Executor, after_failure, make_executor
from lit_transfer.finetune.settings import RunSettings
from lit_transfer.io import FolderLock, inside
from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.tasks import SUITES, TaskSpec, suite_world
from lit_transfer.metadataset.world import World
from lit_transfer.resources import resolve
from lit_transfer.space import DEFAULT_SPACE, PipelineConfig, SearchSpace


class BuildError(RuntimeError):
    """The build stopped on an error that is not a run's outcome; rerun the same command once it is fixed."""


@dataclass(frozen=True)
class PlannedRun:
    """One (task, config, seed) of the plan, with everything the run path needs."""

    task: str
    data: str
    config: dict[str, Any]
    settings: RunSettings

    def failed(self, message: str) -> RunRecord:
        """A run that could not be finished for reasons outside it (its worker died twice)."""
        return RunRecord(
            task=self.task, config=self.config, seed=self.settings.seed, base_model=self.settings.base_model,
            max_epochs=self.settings.max_epochs, status="failed", message=message, versions=versions(),
        )  # fmt: skip

    def record(self, curve: dict[str, Any]) -> RunRecord:
        """The run record of a finished run from its ``curve.json``."""
        cost = curve["cost"]
        return RunRecord(
            task=self.task, config=self.config, seed=self.settings.seed, base_model=self.settings.base_model,
            max_epochs=self.settings.max_epochs, status=curve["status"], message=curve["message"],
            curve=curve["points"], seconds=cost["seconds"], tokens=cost["tokens"], device=cost["device"],
            versions=versions(),
        )  # fmt: skip


@dataclass
class BuildPlan:
    """What to build; mirrors ``configs/metadata/*.yaml``.

    Args:
        out: the meta-dataset file (SQLite); created if missing, extended if present.
        base_model: hub name or local path of the model every run finetunes.
        tasks_dir: where task data are (written there first when ``generate_tasks``).
        suite: the task suite (``v1``: eight tasks, ``v2``: 32 tasks of 14 families), unless ``tasks`` is given.
        tasks: the tasks (name, family, level, split sizes, seed); default: the suite's.
        generate_tasks: write the synthetic tasks into ``tasks_dir`` before building.
        world_seed: seed of the generated world the tasks ask about (its size is the suite's).
        space: search-space YAML.
        shared_space: search-space YAML the shared configs are sampled from (default: ``space``); a region inside
            ``space`` (every sampled config is checked against it).
        shared_configs: configs every task runs, the default config included.
        own_configs: configs each task runs besides, sampled with the task's own seed.
        sample_seed: seed of the quasi-random sample of shared configs.
        seeds: training seeds; each (task, config) is run once per seed.
        workers: runs in parallel (processes).
        threads_per_worker: torch CPU threads in each worker.
        max_length: token limit of one example.
        eval_batch_size: batch size for validation.
        accelerator: ``cpu`` or ``gpu``.
        prompt_template: plain prompt template (``qa``; ``qa-v1``: the first experience's, see ``PromptFormatter``).
        executor: ``local`` (worker processes on this machine) or ``ray`` (Ray actors on a cluster; the ``ray``
            extra); either way the workers stay warm and only this process writes the meta-dataset.
        address: the Ray cluster (``auto``, ``ray://host:10001``; default: a local Ray instance).
        num_cpus: CPUs each run reserves on Ray.
        num_gpus: GPUs each run reserves on Ray; fractions let several small runs share one GPU.
    """

    out: str = "assets/metadata/micro.sqlite"
    base_model: str = "assets/models/world-phi3-2m"
    tasks_dir: str = "runs/metadata/tasks"
    suite: str = "v1"
    tasks: list[TaskSpec] | None = None
    generate_tasks: bool = True
    world_seed: int = 0
    space: str = str(DEFAULT_SPACE)
    shared_space: str | None = None
    shared_configs: int = 64
    own_configs: int = 0
    sample_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2
    threads_per_worker: int = 1
    max_length: int = 256
    eval_batch_size: int = 64
    accelerator: str = "cpu"
    prompt_template: str = "qa"
    executor: Literal["local", "ray"] = "local"
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        self.space = resolve(self.space)
        self.shared_space = None if self.shared_space is None else resolve(self.shared_space)
        if self.suite not in SUITES:
            raise ValueError(f"unknown task suite {self.suite!r}; known: {', '.join(SUITES)}")
        if self.shared_configs < 1 or self.own_configs < 0:
            raise ValueError("shared_configs must be >= 1 (the default config) and own_configs >= 0")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', got {self.executor!r}")

    def task_specs(self) -> list[TaskSpec]:
        return list(self.tasks) if self.tasks is not None else list(SUITES[self.suite])

    def world(self) -> World:
        return suite_world(self.suite, self.world_seed)

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_yaml(self.space)

    def configs(self) -> list[PipelineConfig]:
        """The shared core: the default config first, then a scrambled-Sobol sample."""
        space = self.search_space()
        region = SearchSpace.from_yaml(self.shared_space) if self.shared_space else space
        sampled = region.sample(self.shared_configs - 1, seed=self.sample_seed)
        return [space.default(), *(space.config(c.values) for c in sampled)]

    def own(self, spec: TaskSpec) -> list[PipelineConfig]:
        """The configs only ``spec`` runs, sampled with its seed (a scramble no other task shares)."""
        return self.search_space().sample(self.own_configs, seed=10_007 * (spec.seed + 1)) if self.own_configs else []

    def max_epochs(self) -> int:
        return self.search_space().max_epochs

    def settings(self, seed: int) -> RunSettings:
        return RunSettings(
            base_model=self.base_model, max_epochs=self.max_epochs(), max_length=self.max_length,
            eval_batch_size=self.eval_batch_size, seed=seed, accelerator=self.accelerator,
            prompt_template=self.prompt_template,
        )  # fmt: skip


def versions() -> dict[str, str]:
    import lightning
    import peft
    import torch
    import transformers

    import lit_transfer

    return {
        "lit_transfer": lit_transfer.__version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def run_planned(run: PlannedRun) -> RunRecord:
    """Finetune one pipeline on one task to the last epoch (no checkpoints: only the curve is kept)."""
    from lit_transfer.finetune.run import train

    workdir = Path(tempfile.mkdtemp(prefix="lit_transfer_run_"))
    try:
        curve = train(PipelineConfig(run.config), run.data, run.settings, workdir, checkpoints=False)
        return run.record(curve)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def plan_runs(plan: BuildPlan, store: MetaDataset) -> list[PlannedRun]:
    """Every (task, config, seed) the store does not have yet: the shared core first, then each task's own
    configs, interleaved over tasks so a partial build covers all tasks evenly."""
    specs = plan.task_specs()
    max_epochs = plan.max_epochs()
    shared = plan.configs()
    own = {spec.name: plan.own(spec) for spec in specs}
    rounds = [[(spec, config) for spec in specs] for config in shared]
    rounds += [[(spec, own[spec.name][i]) for spec in specs] for i in range(plan.own_configs)]
    runs = []
    for pairs in rounds:
        for seed in plan.seeds:
            for spec, config in pairs:
                if not store.has_run(spec.name, config.key(), seed, plan.base_model, max_epochs):
                    data = str(inside(plan.tasks_dir, spec.name))
                    runs.append(PlannedRun(spec.name, data, dict(config.values), plan.settings(seed)))
    return runs


def build(plan: BuildPlan, progress: bool = True) -> MetaDataset:
    """Run the plan; returns the (open) meta-dataset."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from lit_transfer.metadataset.features import task_features

    out = Path(plan.out)
    with FolderLock(out.parent, f"another build (lock of {out.name})"):
        store = MetaDataset(out, create=True)
        store.check_run_settings(plan.settings(plan.seeds[0]).to_dict(), ignore=("seed",))
        specs = plan.task_specs()
        if plan.generate_tasks:
            world = plan.world()
            for spec in specs:
                if not (inside(plan.tasks_dir, spec.name) / "train.jsonl").exists():
                    spec.write(world, inside(plan.tasks_dir, spec.name))
        known = store.tasks()
        for spec in specs:
            if spec.name not in known:
                data = str(inside(plan.tasks_dir, spec.name))
                features = task_features(
                    data, plan.base_model, plan.max_length, plan.eval_batch_size, plan.prompt_template
                )
                store.add_task(spec.name, features, spec.family)
        runs = plan_runs(plan, store)
        columns = [
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
        ]  # fmt: skip
        with Progress(*columns, disable=not progress) as bar:
            job = bar.add_task("finetuning runs", total=len(runs))
            done = [0]

            def advance(record: RunRecord) -> None:
                bar.advance(job)
                done[0] += 1
                if not progress:  # one line per run, for logs
                    final = record.final()
                    score = "-" if final is None else f"{final:.3f}"
                    print(f"[{done[0]}/{len(runs)}] {record.task} {record.config_key[:60]}... {record.status} "
                          f"val/acc {score} in {record.seconds:.0f} s", flush=True)  # fmt: skip

            with make_executor(plan.executor, plan.workers, plan.threads_per_worker, plan.address, plan.num_cpus,
                               plan.num_gpus) as executor:  # fmt: skip
                _run_all(executor, store, runs, advance)
        return store


def _run_all(executor: Executor, store: MetaDataset, runs: list[PlannedRun], advance) -> None:
    """Keep every worker busy until all runs are recorded. A run that fails for a reason outside it is tried once
    more; then a lost worker is recorded as the run's failure, and any other error stops the build."""
    queue = list(range(len(runs)))
    attempts: dict[int, int] = {}
    while queue or executor.running():
        while queue and executor.running() < executor.workers:
            i = queue.pop(0)
            executor.submit(i, run_planned, runs[i])
        done = executor.next()
        run, record = runs[done.key], done.value
        if done.error is not None:
            verdict = after_failure(done.error, attempts, done.key)
            if verdict == "retry":
                queue.insert(0, done.key)
                continue
            if verdict == "stop":
                raise BuildError(
                    f"run of {run.task} failed twice, the build stops (nothing recorded): {done.error}"
                ) from done.error
            record = run.failed(f"{done.error}, twice")
        store.add_run(record)
        advance(record)
