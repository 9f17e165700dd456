"""What an evaluation of the tuning methods compares (``EvaluationPlan``, mirroring ``configs/evaluate/*.yaml``), apart
from the code that runs it, so the command line reads a plan without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lit_transfer.resources import SHIPPED_METADATASET, resolve
from lit_transfer.space import DEFAULT_SPACE
from lit_transfer.surrogate.recipes import DEFAULT_RECIPES
from lit_transfer.tune.loop import Budget
from lit_transfer.tune.methods.spec import MethodSpec, method_spec, registry


@dataclass
class EvaluationPlan:
    """What to compare; mirrors ``configs/evaluate/*.yaml``.

    Args:
        metadataset: the meta-dataset whose tasks are held out in turn.
        methods: the tuning methods compared: specs (``class_path`` and ``init_args``, each method's options) or
            the names of this package's methods (with their defaults); their names must differ.
        seeds: seeds of the randomized methods (random search, Optuna's TPE, DEHB) per task.
        refit_seeds: how many of ``seeds`` the refitting methods (QuickTune, DyHPO) run (default: all).
        holdout: ``task`` (leave one task out) or ``family`` (all tasks of a family out together: no method
            knows anything of the held-out kind of task).
        budget_epochs: tuning budget per task, in epochs (trial steps).
        tasks: tasks held out (default: all).
        perf_config: YAML the performance surrogate of each fold is meta-trained with (Transfer's).
        cost_config: YAML of the cost surrogate.
        refit_config: YAML of the performance surrogate QuickTune and DyHPO refit on the task.
        space: the search space.
        workers: trial steps in flight at once, each replayed on a simulated clock (1 must be among them: the
            main comparison is sequential tuning).
        parallel_budget: budget of the runs with more than one worker, as a multiple of ``budget_epochs``: they
            are timed until they reach what one worker reached, which can take more epochs than one worker spent.
        out: folder for surrogates, tuning states, results and plots.
    """

    metadataset: str = SHIPPED_METADATASET
    methods: list[MethodSpec | str] = field(default_factory=lambda: list(registry()))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    refit_seeds: int | None = None
    holdout: Literal["task", "family"] = "task"
    budget_epochs: int = 64
    tasks: list[str] | None = None
    perf_config: str = DEFAULT_RECIPES["performance"]
    cost_config: str = DEFAULT_RECIPES["cost"]
    refit_config: str = DEFAULT_RECIPES["refit"]
    space: str = str(DEFAULT_SPACE)
    workers: list[int] = field(default_factory=lambda: [1])
    parallel_budget: float = 2.0
    out: str = "runs/evaluate/loto"

    def __post_init__(self) -> None:
        self.metadataset, self.space = resolve(self.metadataset), resolve(self.space)
        self.perf_config, self.cost_config = resolve(self.perf_config), resolve(self.cost_config)
        self.refit_config = resolve(self.refit_config)
        self.methods = [method_spec(m) for m in self.methods]
        names = [m.name for m in self.methods]
        if len(set(names)) < len(names):
            raise ValueError(f"methods must have different names, got {', '.join(names)}")
        Budget(self.budget_epochs)  # validates > 0
        if self.holdout not in ("task", "family"):
            raise ValueError(f"holdout must be 'task' or 'family', got {self.holdout!r}")
        if not self.seeds or (self.refit_seeds is not None and self.refit_seeds < 1):
            raise ValueError("seeds must not be empty and refit_seeds must be >= 1")
        if 1 not in self.workers or min(self.workers) < 1:
            raise ValueError(f"workers must be >= 1 and include 1 (sequential tuning), got {self.workers}")

    @property
    def recipes(self) -> dict[str, str]:
        """The YAML each surrogate role of a fold is meta-trained with."""
        return {"performance": self.perf_config, "cost": self.cost_config, "refit": self.refit_config}

    def method_seeds(self, method: MethodSpec | str) -> list[int]:
        """The seeds ``method`` runs: all, the refit seeds, or one (a method the seed does not change)."""
        kind = method_spec(method).randomness
        if kind == "none":
            return self.seeds[:1]
        if kind == "refit" and self.refit_seeds is not None:
            return self.seeds[: self.refit_seeds]
        return list(self.seeds)

    def folds(self, tasks: list[str], families: dict[str, str]) -> dict[str, list[str]]:
        """Held-out groups by name: each task, or each family's tasks (named ``family-<name>``; ``families``: each
        task's, as the meta-dataset records it)."""
        if self.holdout == "task":
            return {task: [task] for task in tasks}
        groups: dict[str, list[str]] = {}
        for task in tasks:
            groups.setdefault(f"family-{families[task]}", []).append(task)
        return groups
