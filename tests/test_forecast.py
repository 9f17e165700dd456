"""How a config's later epochs are forecast from the experience and the task's own epochs, and how sure that is."""

import torch

from lit_transfer.surrogate.forecast import Forecast, HeldOut, task_ratio


def tasks(n_tasks: int = 40, configs: int = 12, epochs: int = 4, seed: int = 0) -> list[HeldOut]:
    """Each task: the experience's curves plus a level the experience misses (shared by its configs), a config
    deviation that persists over epochs, and noise."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_tasks):
        expected = torch.rand(configs, 1, generator=generator) * torch.linspace(0.4, 1.0, epochs)
        level = 0.2 * torch.randn(1, generator=generator)
        own = 0.1 * torch.randn(configs, 1, generator=generator)
        actual = expected + level + own + 0.02 * torch.randn(configs, epochs, generator=generator)
        out.append(HeldOut(expected, torch.full((configs, epochs), 0.01), torch.full((configs,), 5.0), actual))
    return out


def final(forecast: Forecast, task: HeldOut, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The forecast of every config's last epoch after ``k`` epochs of every config of the task."""
    n = len(task.actual)
    last = task.actual[:, k - 1] if k else torch.zeros(n)
    shift = (task.actual[:, k - 1] - task.expected[:, k - 1]).mean().expand(n) if k else torch.zeros(n)
    ratio = task_ratio(task.actual[:, k - 1], task.expected[:, k - 1]).expand(n) if k else torch.zeros(n)
    runs, epochs = torch.full((n,), n if k else 0), torch.full((n,), task.actual.shape[1])
    return forecast(task.expected, task.spread, task.mass, last, torch.full((n,), k), shift, ratio, runs, epochs)


def coverage(forecast: Forecast, held: list[HeldOut], k: int) -> float:
    hits = []
    for task in held:
        mean, var = final(forecast, task, k)
        hits.append(((mean - task.actual[:, -1]).abs() <= 1.96 * var.sqrt()).float())
    return torch.cat(hits).mean().item()


def test_unfitted_it_is_the_experience():
    held = tasks(n_tasks=1)
    task = held[0]
    mean, var = Forecast(4)(task.expected, task.spread, task.mass, torch.zeros(12), torch.zeros(12), torch.zeros(12),
                            torch.zeros(12), torch.zeros(12), torch.full((12,), 3))  # fmt: skip
    assert torch.allclose(mean, task.expected[:, 2]) and (var > 0).all()


def test_the_tasks_own_epochs_correct_the_level_and_the_interval_holds_on_new_tasks():
    forecast = Forecast(4)
    forecast.fit(tasks(seed=0))
    fresh = tasks(seed=1)
    error = {}
    for k in (0, 2):
        errors = [(final(forecast, task, k)[0] - task.actual[:, -1]).abs() for task in fresh]
        error[k] = torch.cat(errors).mean().item()
    assert error[2] < 0.5 * error[0]  # two epochs of the task tell its level and each config's deviation
    assert 0.88 <= coverage(forecast, fresh, 0) <= 0.99 and 0.88 <= coverage(forecast, fresh, 2) <= 0.99
    # a config not started yet on a task that ran others: the task's shift carries over to it, the more the more
    # configs it ran; before any run there is no shift to use
    assert forecast.coef[4, 0, 3, 2] > forecast.coef[1, 0, 3, 2] > 0.3 and forecast.coef[0, 0, 3, 2] == 0


def test_the_state_travels_in_the_state_dict():
    forecast = Forecast(4)
    forecast.fit(tasks(n_tasks=10))
    copy = Forecast(4)
    copy.load_state_dict(forecast.state_dict())
    assert torch.equal(copy.coef, forecast.coef) and torch.equal(copy.variance, forecast.variance)
