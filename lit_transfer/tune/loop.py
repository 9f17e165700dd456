"""The tuning loop: ask a method for a trial, run it with an evaluator, tell the result, until the budget is spent.

Budget is counted in epochs or in seconds of training; a trial is started only while budget is left, so the loop
overspends by at most one trial (one epoch). With ``state_path`` the loop writes its whole state (method, history,
budget spent) atomically after every ``tell``; started again with the same path it resumes where it stopped, and
no finished trial is lost or run twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lit_transfer.finetune.run import RunError
from lit_transfer.io import write_json_atomic
from lit_transfer.tune.methods.base import Trial, TuningMethod


class Evaluator(Protocol):
    def run(self, trial: Trial) -> tuple[list[dict[str, float]], float]:
        """Train ``trial.config`` to epoch ``trial.fidelity``; return its whole curve so far and the seconds
        this step took."""


_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``600``, ``"600s"``, ``"30m"``, ``"5h"`` or ``"1.5h"``."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].strip().replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (use e.g. 600, 600s, 30m, 5h)") from None


@dataclass(frozen=True)
class Budget:
    """How much tuning may cost: ``epochs`` (trial steps) or ``seconds`` (their measured or recorded time)."""

    amount: float
    unit: str = "epochs"

    def __post_init__(self) -> None:
        if self.unit not in ("epochs", "seconds"):
            raise ValueError(f"budget unit must be 'epochs' or 'seconds', got {self.unit!r}")
        if not self.amount > 0:
            raise ValueError(f"budget must be > 0, got {self.amount}")

    def charge(self, seconds: float) -> float:
        return 1.0 if self.unit == "epochs" else seconds


@dataclass
class Step:
    """One trial step as it happened: what ran, what it scored, what it cost, and the incumbent after it."""

    config_key: str
    fidelity: int
    value: float
    seconds: float
    spent: float
    incumbent: float


@dataclass
class TuningState:
    method: dict[str, Any]
    history: list[Step] = field(default_factory=list)
    spent: float = 0.0


def run_tuning(
    method: TuningMethod,
    evaluator: Evaluator,
    budget: Budget,
    state_path: str | Path | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_start: Callable[[Trial], None] | None = None,
) -> list[Step]:
    """Tune until the budget is spent or the method stops; returns the history (resumed history included)."""
    state = TuningState(method.state_dict())
    if state_path is not None and Path(state_path).exists():
        state = load_state(state_path)
        method.load_state_dict(state.method)
    while state.spent < budget.amount:
        trial = method.ask()
        if trial is None:
            break
        if on_start is not None:
            on_start(trial)
        curve, seconds = _run_with_retry(evaluator, trial)
        method.tell(trial, curve, seconds)
        state.spent += budget.charge(seconds)
        step = Step(trial.key, trial.fidelity, method.value(curve[-1]), seconds, state.spent, method.best()[1])
        state.history.append(step)
        state.method = method.state_dict()
        if state_path is not None:
            save_state(state, state_path)
        if on_step is not None:
            on_step(step)
    return state.history


def _run_with_retry(evaluator: Evaluator, trial: Trial) -> tuple[list[dict[str, float]], float]:
    """A step that fails for a reason that is not the run's outcome is tried once more; a second failure stops the
    loop (``RunError``) with nothing recorded, so the same command can continue once the cause is fixed."""
    try:
        return evaluator.run(trial)
    except RunError:
        return evaluator.run(trial)


def save_state(state: TuningState, path: str | Path) -> None:
    write_json_atomic(path, asdict(state))


def load_state(path: str | Path) -> TuningState:
    try:
        raw = json.loads(Path(path).read_text())
        return TuningState(raw["method"], [Step(**s) for s in raw["history"]], raw["spent"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a tuning state file ({err})") from None


def incumbent_at(history: Sequence[Step], spent: float, start: float) -> float:
    """The incumbent's value once ``spent`` budget had been used (``start`` before any step)."""
    value = start
    for step in history:
        if step.spent > spent:
            break
        value = max(value, step.incumbent)
    return value
