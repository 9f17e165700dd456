"""The tuning loop: ask a method for a trial, run it with an evaluator, tell the result, until the budget is spent.

Trial steps run on an executor (``lit_transfer.executors``): one at a time in this process by default, or
``workers`` at once (worker processes, Ray actors, or a simulated clock when replaying), asynchronously: whenever
a step ends, its result is told and the freed worker gets the method's next ask, which knows what is in flight.

Budget is counted in epochs or in seconds of training, work in flight included (a step in flight counts one epoch,
or the mean seconds of the steps so far); a trial is started only while budget is left, so the loop overspends by
at most one step per worker. With ``state_path`` the loop writes its whole state (method, history, budget spent,
steps in flight) atomically whenever a step starts or ends; started again with the same path it resumes where it
stopped: steps that were in flight are run again first, and no finished step is lost or run twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lit_transfer.executors import Executor, InlineExecutor, after_failure
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
    """One trial step as it happened: what ran, what it scored, what it cost, the incumbent after it, and the
    tuning's clock when it ended (seconds since tuning started: wall time, or simulated when replaying). A step
    whose worker was lost twice has status ``failed`` and scores nothing."""

    config_key: str
    fidelity: int
    value: float
    seconds: float
    spent: float
    incumbent: float
    clock: float = 0.0
    status: str = "ok"
    message: str = ""


@dataclass
class TuningState:
    method: dict[str, Any]
    history: list[Step] = field(default_factory=list)
    spent: float = 0.0
    in_flight: list[dict[str, Any]] = field(default_factory=list)  # trials started and not ended: {config, fidelity}


def run_tuning(
    method: TuningMethod,
    evaluator: Evaluator,
    budget: Budget,
    state_path: str | Path | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_start: Callable[[Trial], None] | None = None,
    executor: Executor | None = None,
) -> list[Step]:
    """Tune until the budget is spent or the method stops; returns the history (resumed history included).

    A step that fails for a reason outside the run (``RunError``: I/O, an unreadable checkpoint; ``WorkerLost``)
    is tried once more. A second ``RunError`` stops the loop with nothing recorded, so the same command continues
    once the cause is fixed; a worker lost twice is recorded as the config's failure, and tuning goes on."""
    executor = executor or InlineExecutor()
    state = TuningState(method.state_dict())
    if state_path is not None and Path(state_path).exists():
        state = load_state(state_path)
        try:
            method.load_state_dict(state.method)
        except ValueError as err:
            raise ValueError(f"{state_path}: {err}") from None
    queue = [Trial(t["config"], t["fidelity"]) for t in state.in_flight]  # in flight when the driver stopped
    running: dict[str, Trial] = {}
    attempts: dict[str, int] = {}
    offset = max((step.clock for step in state.history), default=0.0)

    def save() -> None:
        state.method = method.state_dict()
        state.in_flight = [{"config": t.config, "fidelity": t.fidelity} for t in [*running.values(), *queue]]
        if state_path is not None:
            save_state(state, state_path)

    def in_flight_charge() -> float:
        if budget.unit == "epochs":
            return float(len(running))
        seconds = [step.seconds for step in state.history if step.status == "ok"]
        return len(running) * (sum(seconds) / len(seconds) if seconds else 0.0)

    with executor:
        while True:
            while executor.running() < executor.workers:
                if queue:
                    trial = queue.pop(0)
                elif state.spent + in_flight_charge() < budget.amount:
                    trial = method.ask()
                else:
                    trial = None
                if trial is None:
                    break
                method.start(trial)
                running[trial.key] = trial
                save()
                if on_start is not None:
                    on_start(trial)
                executor.submit(trial.key, evaluator.run, trial)
            if not executor.running():
                break
            done = executor.next()
            trial = running.pop(done.key)
            if done.error is not None:
                verdict = after_failure(done.error, attempts, trial.key)
                if verdict == "retry":
                    running[trial.key] = trial
                    executor.submit(trial.key, evaluator.run, trial)
                    continue
                if verdict == "stop":
                    running[trial.key] = trial  # still owed: the same command runs it again
                    save()
                    raise done.error
                method.fail(trial, str(done.error))
                best = method.best()[1] if method.observed else 0.0
                step = Step(trial.key, trial.fidelity, 0.0, 0.0, state.spent, best, offset + executor.clock,
                            "failed", f"{done.error}, twice")  # fmt: skip
            else:
                curve, seconds = done.value
                method.tell(trial, curve, seconds)
                state.spent += budget.charge(seconds)
                step = Step(trial.key, trial.fidelity, method.value(curve[-1]), seconds, state.spent,
                            method.best()[1], offset + executor.clock)  # fmt: skip
            attempts.pop(trial.key, None)
            state.history.append(step)
            save()
            if on_step is not None:
                on_step(step)
    return state.history


def save_state(state: TuningState, path: str | Path) -> None:
    write_json_atomic(path, asdict(state))


def load_state(path: str | Path) -> TuningState:
    try:
        raw = json.loads(Path(path).read_text())
        history = [Step(**s) for s in raw["history"]]
        return TuningState(raw["method"], history, raw["spent"], raw.get("in_flight", []))
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
