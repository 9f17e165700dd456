"""Where jobs (finetuning runs, trial steps) run: in this process, in warm worker processes on this machine, on Ray
actors across a cluster, or on a simulated clock for replayed runs. One interface, so the builder, the tuning loop
and the evaluation have one loop each whatever runs their jobs.

A job is a picklable function and its arguments. ``next()`` waits for any job to end and returns it as ``Done``:
its value, or the exception it raised. A worker that dies outright (killed, out of host memory) ends its job with
``WorkerLost``: the job's own code never saw an error, so the caller decides whether to retry (``RETRIES``).
Workers stay warm between jobs: the caches of ``lit_transfer.finetune.warm`` live as long as the worker process.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import multiprocessing
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

ExecutorKind = Literal["local", "ray"]
RETRIES = 1  # a job that fails for reasons outside it (worker lost, I/O) is tried once more


class WorkerLost(RuntimeError):
    """The process running a job died before the job ended."""


def after_failure(error: BaseException, attempts: dict[Hashable, int], key: Hashable) -> str:
    """The one rule for a job that ended in an error: ``retry`` (the first failure outside the job: a lost worker,
    or ``RunError``: I/O, an unreadable checkpoint), ``failed`` (a worker lost twice: recorded with the reason), or
    ``stop`` (a second ``RunError``: nothing recorded; the same command continues once the cause is fixed). Any
    other error is ours and is raised."""
    from lit_transfer.finetune.run import RunError

    if not isinstance(error, RunError | WorkerLost):
        raise error
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] <= RETRIES:
        return "retry"
    return "stop" if isinstance(error, RunError) else "failed"


@dataclass
class Done:
    """A job that ended: its ``key``, and its ``value`` or the ``error`` it raised."""

    key: Hashable
    value: Any = None
    error: BaseException | None = None


def warm_worker(threads: int) -> None:
    """Set up a worker process: its torch threads, no third-party noise, and its end with its parent's (Linux):
    a worker left training after its driver was killed would run on, orphaned, holding what it holds."""
    import torch

    from lit_transfer.quiet import silence

    _die_with_parent()
    torch.set_num_threads(threads)
    silence()


def _die_with_parent() -> None:
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Executor:
    """Runs jobs, ``workers`` at a time; ``clock`` is the seconds since it started (wall or simulated)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._started = time.perf_counter()

    @property
    def clock(self) -> float:
        return time.perf_counter() - self._started

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def next(self) -> Done:
        """Wait for a job to end (``running()`` must be > 0)."""
        raise NotImplementedError

    def running(self) -> int:
        raise NotImplementedError

    def _free_slot(self, running: Mapping[Any, tuple[int, Hashable]]) -> int:
        """The first worker slot no job in ``running`` (handle -> (slot, key)) holds."""
        busy = {slot for slot, _ in running.values()}
        slot = next((s for s in range(self.workers) if s not in busy), None)
        if slot is None:
            raise RuntimeError(f"all {self.workers} workers are busy")
        return slot

    def close(self) -> None:
        """Stop the workers; jobs still running are abandoned."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """One job at a time in this process: the embedded default (warm caches are this process's own).

    Args:
        threads: torch threads while it runs (restored when it closes), as a worker process would use; ``None``:
            the process's own setting.
    """

    def __init__(self, threads: int | None = None) -> None:
        super().__init__(1)
        self._queue: list[tuple[Hashable, Callable, tuple]] = []
        self.threads, self._threads_before = threads, None

    def __enter__(self) -> InlineExecutor:
        if self.threads is not None:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def close(self) -> None:
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.append((key, fn, args))

    def next(self) -> Done:
        key, fn, args = self._queue.pop(0)
        try:
            return Done(key, fn(*args))
        except Exception as err:  # handed to the caller, who decides
            return Done(key, error=err)

    def running(self) -> int:
        return len(self._queue)


class SimulatedExecutor(InlineExecutor):
    """``workers`` jobs at once on a simulated clock: a job runs in this process when submitted and ends at the
    clock of its submission plus the seconds ``cost(value)`` says it took (recorded costs, when replaying). Jobs end
    in the order of that clock, as they would on ``workers`` real workers."""

    def __init__(self, workers: int, cost: Callable[[Any], float]) -> None:
        Executor.__init__(self, workers)
        self.threads, self._threads_before = None, None  # replayed jobs: the process's own threads
        self.cost, self.now = cost, 0.0
        self._ends: list[tuple[float, int, Done]] = []
        self._order = itertools.count()

    @property
    def clock(self) -> float:
        return self.now

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        if len(self._ends) >= self.workers:
            raise RuntimeError(f"all {self.workers} simulated workers are busy")
        try:
            done, seconds = Done(key, fn(*args)), 0.0
            seconds = float(self.cost(done.value))
        except Exception as err:
            done = Done(key, error=err)
        heapq.heappush(self._ends, (self.now + seconds, next(self._order), done))

    def next(self) -> Done:
        self.now, _, done = heapq.heappop(self._ends)
        return done

    def running(self) -> int:
        return len(self._ends)


class ProcessExecutor(Executor):
    """Warm worker processes on this machine (``threads`` torch threads each), one per slot, so that a worker that
    dies ends only its own job with ``WorkerLost``; a fresh process takes its slot."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        super().__init__(workers)
        self.threads = threads
        self._pools = [self._new_pool() for _ in range(workers)]
        self._running: dict[Future, tuple[int, Hashable]] = {}  # future -> (slot, job key)

    def _new_pool(self) -> ProcessPoolExecutor:
        # forked from a clean server process, not from this one: a worker never inherits what the driver holds
        # (the output folder's lock), so a killed driver's folder is free again as soon as its workers end
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(1, mp_context=context, initializer=warm_worker, initargs=(self.threads,))

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        slot = self._free_slot(self._running)
        try:
            future = self._pools[slot].submit(fn, *args)
        except BrokenProcessPool:  # its process died between jobs
            self._replace(slot)
            future = self._pools[slot].submit(fn, *args)
        self._running[future] = (slot, key)

    def next(self) -> Done:
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        slot, key = self._running.pop(future)
        try:
            return Done(key, future.result())
        except BrokenProcessPool:
            self._replace(slot)
            return Done(key, error=WorkerLost("a worker process died"))
        except Exception as err:
            return Done(key, error=err)

    def _replace(self, slot: int) -> None:
        self._pools[slot].shutdown(wait=False, cancel_futures=True)
        self._pools[slot] = self._new_pool()

    def running(self) -> int:
        return len(self._running)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)


CONNECT_SECONDS = 10.0  # how long a Ray address may take to answer before it is reported unreachable


def _reachable(address: str | None) -> None:
    """A cluster address that does not answer is reported at once, not retried until the user gives up."""
    if address in (None, "auto", "local"):
        return
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise ValueError(f"Ray address {address}: nothing answers there ({err})") from None


def _check_resources(nodes: list[dict[str, Any]], num_cpus: float, num_gpus: float, address: str | None) -> None:
    """A trial must fit on one node of the cluster: one that asks for more CPUs or GPUs than any node has would
    wait for ever for a place to run."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    if any(r.get("CPU", 0.0) >= num_cpus and r.get("GPU", 0.0) >= num_gpus for r in alive):
        return
    most_cpus = max((r.get("CPU", 0.0) for r in alive), default=0.0)
    most_gpus = max((r.get("GPU", 0.0) for r in alive), default=0.0)
    where = address or "the local Ray instance"
    raise ValueError(
        f"each trial asks for {num_cpus:g} CPUs and {num_gpus:g} GPUs, but no node of {where} has that many (at "
        f"most {most_cpus:g} CPUs and {most_gpus:g} GPUs on one node): lower --num_cpus / --num_gpus"
    )


class RayExecutor(Executor):
    """Ray actors, each reserving ``num_cpus`` and ``num_gpus`` (fractions let small jobs share a GPU) and staying
    warm between jobs. Results come back to this process: the only writer of what it records. An actor that dies
    is replaced. Connects to ``address`` (``auto``, ``ray://host:10001``), or starts a local Ray instance, unless
    Ray is already initialized (then that one is used and left running)."""

    def __init__(
        self, workers: int, threads: int = 1, address: str | None = None, num_cpus: float = 1.0,
        num_gpus: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(workers)
        try:
            import ray
        except ImportError as err:
            raise ImportError("executor 'ray' needs Ray: pip install 'lit_transfer[ray]'") from err
        from ray.exceptions import RayActorError, WorkerCrashedError

        self.ray, self._lost_errors = ray, (RayActorError, WorkerCrashedError)
        self._own = not ray.is_initialized()
        if self._own:
            _reachable(address)
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        try:
            _check_resources(ray.nodes(), num_cpus, num_gpus, address)
        except ValueError:
            if self._own:
                ray.shutdown()  # what was started for nothing does not stay behind
            raise
        self._worker = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(_RayWorker)
        self.threads = threads
        self._actors = [self._worker.remote(threads) for _ in range(workers)]
        self._running: dict[Any, tuple[int, Hashable]] = {}  # object ref -> (actor slot, job key)

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        slot = self._free_slot(self._running)
        self._running[self._actors[slot].call.remote(fn, *args)] = (slot, key)

    def next(self) -> Done:
        ready, _ = self.ray.wait(list(self._running), num_returns=1)
        slot, key = self._running.pop(ready[0])
        try:
            return Done(key, self.ray.get(ready[0]))
        except self._lost_errors as err:
            self._actors[slot] = self._worker.remote(self.threads)
            return Done(key, error=WorkerLost(f"the Ray worker died ({type(err).__name__})"))
        except self.ray.exceptions.RayTaskError as err:  # the job's own exception, as raised on the worker
            return Done(key, error=err.cause if isinstance(err.cause, Exception) else err)
        except Exception as err:
            return Done(key, error=err)

    def running(self) -> int:
        return len(self._running)

    def close(self) -> None:
        for actor in self._actors:
            self.ray.kill(actor)
        if self._own:
            self.ray.shutdown()


class _RayWorker:
    """A Ray actor that runs jobs one at a time, warm between them."""

    def __init__(self, threads: int) -> None:
        warm_worker(threads)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def make_executor(
    kind: ExecutorKind = "local", workers: int = 1, threads: int = 1, address: str | None = None,
    num_cpus: float = 1.0, num_gpus: float = 0.0, processes: bool = True,
) -> Executor:  # fmt: skip
    """``local``: worker processes (or, with ``processes=False`` and one worker, this process); ``ray``: actors."""
    if kind == "ray":
        return RayExecutor(workers, threads, address, num_cpus, num_gpus)
    if kind != "local":
        raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
    if workers == 1 and not processes:
        return InlineExecutor(threads)
    return ProcessExecutor(workers, threads)
