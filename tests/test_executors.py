"""Worker processes: a worker that dies costs only its own job."""

import os
import signal
import time

from lit_transfer.executors import ProcessExecutor, WorkerLost


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def slow_square(x: int) -> int:
    time.sleep(1.0)
    return x * x


def test_a_dying_worker_ends_only_its_own_job_and_its_slot_gets_a_fresh_process():
    with ProcessExecutor(2) as executor:
        executor.submit("bystander", slow_square, 3)
        executor.submit("doomed", die)
        ended = {}
        while executor.running():
            done = executor.next()
            ended[done.key] = done
        assert isinstance(ended["doomed"].error, WorkerLost)
        assert ended["bystander"].error is None and ended["bystander"].value == 9
        executor.submit("after", slow_square, 4)  # the dead worker's slot works again
        executor.submit("other", slow_square, 5)
        assert sorted(executor.next().value for _ in range(2)) == [16, 25]


def test_one_local_worker_in_this_process_uses_the_threads_asked_for():
    """``tune --threads N`` with one local worker runs trials in this process: they use N torch threads, and the
    process's own setting is back once tuning ends."""
    import torch

    from lit_transfer.executors import make_executor

    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    executor = make_executor("local", 1, wanted, processes=False)
    with executor:
        executor.submit("k", torch.get_num_threads)
        assert executor.next().value == wanted
    assert torch.get_num_threads() == before
