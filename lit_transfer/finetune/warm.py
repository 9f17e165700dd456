"""Warm runs: what a process keeps between finetuning runs, so setup is paid once per base model and task.

A builder worker or a tuning driver runs many short runs of the same base model on the same task. Loading the
model and tokenizer and tokenizing the task again for each would cost more than training a small run. Here the
frozen base model (a pristine copy: every run gets its own deep copy to wrap with its adapter), the tokenizer and
the tokenized splits are kept per process; results are the same as a cold start (tested).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
MAX_TASKS = 8  # tokenized tasks kept (least recently used dropped first)

_lock = threading.Lock()
_models: dict[Hashable, Any] = {}
_tokenizers: dict[Hashable, Any] = {}
_tasks: OrderedDict[Hashable, Any] = OrderedDict()
_enabled = True


def _once(cache: dict[Hashable, Any], key: Hashable, load: Callable[[], T]) -> T:
    with _lock:
        if key not in cache:
            cache[key] = load()
        return cache[key]


def model(key: Hashable, load: Callable[[], T]) -> T:
    """A fresh copy of the model ``load`` gives for ``key``; loaded once per process."""
    return copy.deepcopy(_once(_models, key, load)) if _enabled else load()


def tokenizer(key: Hashable, load: Callable[[], T]) -> T:
    """The tokenizer for ``key``, loaded once per process (tokenizers are read-only once loaded)."""
    return _once(_tokenizers, key, load) if _enabled else load()


def task(key: Hashable, load: Callable[[], T]) -> T:
    """Tokenized splits for ``key`` (data files with their modification times, tokenizer, length limit)."""
    if not _enabled:
        return load()
    with _lock:
        if key in _tasks:
            _tasks.move_to_end(key)
            return _tasks[key]
    value = load()
    with _lock:
        _tasks[key] = value
        while len(_tasks) > MAX_TASKS:
            _tasks.popitem(last=False)
    return value


def clear() -> None:
    with _lock:
        _models.clear()
        _tokenizers.clear()
        _tasks.clear()


@contextmanager
def cold() -> Iterator[None]:
    """Every load inside goes to disk, as a fresh process would (for benchmarks and equivalence tests)."""
    global _enabled
    clear()
    _enabled = False
    try:
        yield
    finally:
        _enabled = True
