"""StepTimer: how much of a run's wall time is spent in training and validation steps, and how much around them.

Setup (loading, tokenizing, building the Trainer), checkpointing and bookkeeping are what warm runs cut; this
callback measures the part that is left to cut (``tools/bench_run_overhead.py``).
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback


class StepTimer(Callback):
    """Sums the seconds spent inside training batches (forward, backward, optimizer step) and validation batches."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.validation_seconds = 0.0
        self._started = 0.0

    def _start(self, *args, **kwargs) -> None:
        self._started = time.perf_counter()

    def on_train_batch_start(self, *args, **kwargs) -> None:
        self._start()

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.train_seconds += time.perf_counter() - self._started

    def on_validation_batch_start(self, *args, **kwargs) -> None:
        self._start()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self.validation_seconds += time.perf_counter() - self._started

    @property
    def step_seconds(self) -> float:
        return self.train_seconds + self.validation_seconds
