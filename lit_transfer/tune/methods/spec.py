"""Tuning methods as specs: each method's options in one typed class that also declares what the evaluation and
``tune`` need to know of it (what its seed changes, which surrogate it predicts with) and builds the method for a
task from one ``MethodContext``.

A spec is given like any other object in a config, ``class_path`` + ``init_args``
(``{class_path: lit_transfer.tune.methods.TransferSpec, init_args: {drop_below: 0.3}}``), or, for a method of this
package, by its plain name (``transfer``) with its defaults. A spec class with a ``name`` registers itself when its
module is imported; every module of this package is imported by ``registry()``, so a new method is one module here
(or anywhere, given by ``class_path``).
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from lit_transfer.space import SearchSpace
    from lit_transfer.surrogate.pretrained import Surrogates
    from lit_transfer.tune.methods.base import TuningMethod

RANDOMNESS = ("none", "refit", "random")
SURROGATES = (None, "performance", "refit")
_REGISTRY: dict[str, type[MethodSpec]] = {}


def task_seed(seed: int, task: str) -> int:
    """The seed one run of a method on ``task`` uses, derived from (``seed``, ``task``). Every task's configs come in
    the same order, so one seed on every task would draw the same positions everywhere, and the runs of a seed
    would not be independent across tasks: seeds would not average out."""
    digest = hashlib.sha256(f"{seed}\0{task}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class MethodContext:
    """What a method is built from for one task.

    Args:
        space: the search space.
        candidates: the configs it may choose from.
        task_features: the task's meta-features.
        surrogates: loads the pretrained surrogates (called only by a method whose spec declares one).
        metadataset: the experience (where a portfolio is ranked).
        exclude_tasks: tasks of the experience the method must not know (the held-out ones of an evaluation).
        seed: the seed of the method's own randomness.
        state_file: the tuning state's file: a method that keeps a history of its own (Optuna's journal) keeps it
            beside it (``None``: in memory).
    """

    space: SearchSpace
    candidates: Sequence[Mapping[str, Any]]
    task_features: Mapping[str, float]
    surrogates: Callable[[], Surrogates]
    metadataset: str
    exclude_tasks: Sequence[str] = ()
    seed: int = 0
    state_file: Path | None = None


class MethodSpec:
    """A tuning method's options. A subclass that sets ``name`` is registered under it and must declare
    ``randomness`` (what its seed changes: ``none``, its ``refit``, or its choices: ``random``; the evaluation
    runs a method one seed, ``refit_seeds`` or every seed accordingly) and ``surrogate`` (the pretrained
    performance surrogate it uses: ``performance``, ``refit`` or ``None``). A method without options of its own
    only names the class it builds (``method``)."""

    name: ClassVar[str]
    randomness: ClassVar[str]
    surrogate: ClassVar[str | None] = None
    method: ClassVar[type[TuningMethod]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # a group of shared options, not a method
        if getattr(cls, "randomness", None) not in RANDOMNESS:
            raise TypeError(f"method spec {cls.__name__} must declare randomness, one of {', '.join(RANDOMNESS)}")
        if cls.surrogate not in SURROGATES:
            raise TypeError(f"method spec {cls.__name__}: surrogate must be one of {SURROGATES}, got {cls.surrogate!r}")
        known = _REGISTRY.get(cls.name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"method name {cls.name!r} is taken by {known.__module__}.{known.__qualname__}")
        _REGISTRY[cls.name] = cls

    def build(self, context: MethodContext) -> TuningMethod:
        return self.method(context.space, context.candidates, seed=context.seed)


def registry() -> dict[str, type[MethodSpec]]:
    """Every method of this package (and any other spec imported so far), by name."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")
    return dict(_REGISTRY)


def method_spec(method: MethodSpec | str) -> MethodSpec:
    """A spec as given, or the registered method of that name with its defaults."""
    if isinstance(method, MethodSpec):
        return method
    known = registry()
    if method not in known:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(known)} or give class_path and init_args")
    return known[method]()
