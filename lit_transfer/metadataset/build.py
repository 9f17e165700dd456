"""Build a meta-dataset: every task x the same set of pipeline configs, each trained to the maximum fidelity.

Resumable by construction: a run is written to the store (with its whole curve, in one transaction) only when it
has ended, and the builder skips runs the store already has. So a build killed at any moment loses only the
runs in flight and, rerun, redoes exactly those. Trials run in worker processes (``concurrent.futures``); an
error inside a trial, an out-of-memory or a NaN loss becomes a recorded failure, and a worker that dies outright
is replaced and its trial retried once before it is recorded as failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.tasks import DEFAULT_TASKS, TaskSpec
from lit_transfer.metadataset.world import World
from lit_transfer.space import DEFAULT_SPACE, PipelineConfig, SearchSpace


@dataclass(frozen=True)
class Trial:
    task: str
    data: str
    config: dict[str, Any]
    seed: int
    base_model: str
    max_epochs: int
    max_length: int
    eval_batch_size: int

    def record(self, status: str, message: str | None = None, **measured: Any) -> RunRecord:
        """The run record of this trial, with whatever was measured (curve, seconds, tokens, device)."""
        return RunRecord(
            task=self.task, config=self.config, seed=self.seed, base_model=self.base_model,
            max_epochs=self.max_epochs, status=status, message=message, versions=versions(), **measured,
        )  # fmt: skip


@dataclass
class BuildPlan:
    """What to build; mirrors ``configs/metadata/*.yaml``.

    Args:
        out: the meta-dataset file (SQLite); created if missing, extended if present.
        base_model: hub name or local path of the model every run finetunes.
        tasks_dir: where task data are (written there first when ``generate_tasks``).
        tasks: the task suite (name, family, split sizes, seed); default: one task per family.
        generate_tasks: write the synthetic tasks into ``tasks_dir`` before building.
        world_seed: seed of the generated world the tasks ask about.
        space: search-space YAML.
        configs_per_task: pipelines per task, the default config included; the same pipelines on every task.
        sample_seed: seed of the quasi-random sample of pipelines.
        seeds: training seeds; each (task, config) is run once per seed.
        workers: trials in parallel (processes).
        threads_per_worker: torch CPU threads in each worker.
        max_length: token limit of one example.
        eval_batch_size: batch size for validation.
        accelerator: ``cpu`` or ``gpu`` (then each worker takes one device in turn).
    """

    out: str = "assets/metadata/micro.sqlite"
    base_model: str = "assets/models/world-phi3-2m"
    tasks_dir: str = "runs/metadata/tasks"
    tasks: list[TaskSpec] = field(default_factory=lambda: list(DEFAULT_TASKS))
    generate_tasks: bool = True
    world_seed: int = 0
    space: str = str(DEFAULT_SPACE)
    configs_per_task: int = 64
    sample_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2
    threads_per_worker: int = 1
    max_length: int = 256
    eval_batch_size: int = 64
    accelerator: str = "cpu"

    def configs(self) -> list[PipelineConfig]:
        space = SearchSpace.from_yaml(self.space)
        return [space.default(), *space.sample(self.configs_per_task - 1, seed=self.sample_seed)]

    def max_epochs(self) -> int:
        return SearchSpace.from_yaml(self.space).max_epochs


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


def _quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("lightning", "lightning.pytorch", "transformers", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _quiet()


def run_trial(trial: Trial, accelerator: str = "cpu") -> RunRecord:
    """Finetune one pipeline on one task to ``max_epochs``; any error is returned as a failed run."""
    import lightning as L

    from lit_transfer.finetune import FinetuneModule, LearningCurve, QADataModule
    from lit_transfer.finetune.curves import read_curve

    config = PipelineConfig(trial.config)
    workdir = Path(tempfile.mkdtemp(prefix="lit_transfer_trial_"))
    curve_path = workdir / "curve.json"
    try:
        module = FinetuneModule(
            model=trial.base_model, **config.module_args(), schedule_epochs=trial.max_epochs, seed=trial.seed
        )
        data = QADataModule(
            trial.data,
            **config.data_args(),
            eval_batch_size=trial.eval_batch_size,
            max_length=trial.max_length,
            seed=trial.seed,
        )
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            max_epochs=trial.max_epochs,
            **config.trainer_args(),
            default_root_dir=str(workdir),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[LearningCurve(path=str(curve_path))],
        )
        with contextlib.suppress(Exception):  # the curve file records failed/oom with the message
            trainer.fit(module, data)
        result = read_curve(curve_path)
        status, message = result["status"], result["message"]
        if status == "running":
            status, message = "failed", "the run ended without a final status"
        cost = result["cost"]
        return trial.record(
            status,
            message,
            curve=result["points"],
            seconds=cost["seconds"],
            tokens=cost["tokens"],
            device=cost["device"],
        )
    except Exception as err:
        return trial.record("failed", f"{type(err).__name__}: {err}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# what ``task_features`` measures, in the order surrogates read them
TASK_FEATURES = (
    "log_train_size", "log_validation_size", "mean_prompt_tokens", "mean_answer_tokens", "answer_diversity",
    "context_share", "zero_shot_loss", "zero_shot_acc", "zero_shot_token_acc",
)  # fmt: skip


def task_features(data: str, base_model: str, max_length: int, eval_batch_size: int) -> dict[str, float]:
    """Cheap descriptors of a task, computed before any finetuning: size, lengths, answer diversity, and how the
    untouched base model does on the validation split (zero-shot loss and accuracy)."""
    import math

    import lightning as L

    from lit_transfer.finetune import FinetuneModule, QADataModule
    from lit_transfer.finetune.data import IGNORE_INDEX, load_split

    module = FinetuneModule(model=base_model)  # a fresh LoRA adapter is zero: the model equals the base
    datamodule = QADataModule(data, tokenizer=base_model, eval_batch_size=eval_batch_size, max_length=max_length)
    datamodule.setup("fit")
    train = datamodule.splits["train"]
    prompt = [sum(1 for t in r["labels"] if t == IGNORE_INDEX) for r in train]
    answer = [len(r["labels"]) - p for r, p in zip(train, prompt, strict=True)]
    examples = load_split(data, "train")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return {
        "log_train_size": math.log(len(train)),
        "log_validation_size": math.log(len(datamodule.splits["validation"])),
        "mean_prompt_tokens": sum(prompt) / len(prompt),
        "mean_answer_tokens": sum(answer) / len(answer),
        "answer_diversity": len({e.answer for e in examples}) / len(examples),
        "context_share": sum(e.context is not None for e in examples) / len(examples),
        "zero_shot_loss": metrics["val/loss"],
        "zero_shot_acc": metrics["val/acc"],
        "zero_shot_token_acc": metrics["val/token_acc"],
    }


def plan_trials(plan: BuildPlan, store: MetaDataset) -> list[Trial]:
    """Every (task, config, seed) the store does not have yet, interleaved over tasks so a partial build covers
    all tasks evenly."""
    max_epochs = plan.max_epochs()
    trials = []
    for config in plan.configs():
        for seed in plan.seeds:
            for spec in plan.tasks:
                if not store.has_run(spec.name, config.key(), seed, plan.base_model, max_epochs):
                    trials.append(
                        Trial(
                            spec.name,
                            str(Path(plan.tasks_dir) / spec.name),
                            dict(config.values),
                            seed,
                            plan.base_model,
                            max_epochs,
                            plan.max_length,
                            plan.eval_batch_size,
                        )
                    )
    return trials


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

    _quiet()
    store = MetaDataset(plan.out, create=True)
    if plan.generate_tasks:
        world = World(seed=plan.world_seed)
        for spec in plan.tasks:
            if not (Path(plan.tasks_dir) / spec.name / "train.jsonl").exists():
                spec.write(world, Path(plan.tasks_dir) / spec.name)
    known = store.tasks()
    for spec in plan.tasks:
        if spec.name not in known:
            data = str(Path(plan.tasks_dir) / spec.name)
            store.add_task(spec.name, task_features(data, plan.base_model, plan.max_length, plan.eval_batch_size))
    trials = plan_trials(plan, store)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress) as bar:
        job = bar.add_task("finetuning runs", total=len(trials))
        attempts: dict[tuple, int] = {}
        pending = list(trials)
        while pending:
            pending = _run_pool(plan, store, pending, attempts, lambda: bar.advance(job))
    return store


def _run_pool(plan: BuildPlan, store: MetaDataset, trials: list[Trial], attempts: dict, advance) -> list[Trial]:
    """Run trials until done or the pool breaks; returns the trials to retry in a fresh pool."""
    retry: list[Trial] = []
    queue = list(trials)
    with ProcessPoolExecutor(plan.workers, initializer=_init_worker, initargs=(plan.threads_per_worker,)) as pool:
        running: dict[Future, Trial] = {}
        while queue or running:
            while queue and len(running) < plan.workers:
                trial = queue.pop(0)
                running[pool.submit(run_trial, trial, plan.accelerator)] = trial
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                trial = running.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:
                    key = (trial.task, PipelineConfig(trial.config).key(), trial.seed)
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] < 2:
                        retry.append(trial)
                        continue
                    record = trial.record("failed", "the worker process died twice")
                except Exception as err:
                    record = trial.record("failed", "".join(traceback.format_exception_only(err)).strip())
                store.add_run(record)
                advance()
            if retry:  # the pool is broken: hand the rest to a new one
                return retry + queue + list(running.values())
    return retry
