"""The portfolio with successive halving stops configs by their first epochs, bracket by bracket, and resumes."""

import pytest

from lit_transfer.space import SearchSpace, config_key
from lit_transfer.tune.methods import method_spec
from lit_transfer.tune.methods.portfolio_halving import PortfolioHalving

SPACE = SearchSpace.from_yaml()
CONFIGS = [dict(c.values) for c in SPACE.sample(10, seed=0)]
INDEX = {config_key(c): i for i, c in enumerate(CONFIGS)}  # a trial's config, as its position in the portfolio


def curve_of(i: int) -> list[float]:
    """Config i's val/acc per epoch: config 7 starts last and ends best (a late riser); the others are flat at
    their rank in the portfolio (config 0 best)."""
    if i == 7:
        return [0.0, 0.05, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99]
    return [0.6 - 0.05 * i] * 8


def tell(method: PortfolioHalving, trial) -> None:
    method.tell(trial, [{"val/acc": v} for v in curve_of(INDEX[trial.key])[: trial.fidelity]])


def schedule(method: PortfolioHalving, steps: int) -> list[tuple[int, int]]:
    """(config index, epoch) of the next ``steps`` trials, one worker."""
    out = []
    for _ in range(steps):
        trial = method.ask()
        if trial is None:
            break
        method.start(trial)
        tell(method, trial)
        out.append((INDEX[trial.key], trial.fidelity))
    return out


def test_a_bracket_halves_its_configs_at_each_rung_and_stops_a_late_riser():
    method = PortfolioHalving(SPACE, CONFIGS, bracket=8, eta=2)
    assert method.rungs() == [(8, 1), (4, 2), (2, 4), (1, 8)]
    steps = schedule(method, 20)
    assert steps[:8] == [(i, 1) for i in range(8)]  # every config of the bracket: one epoch
    assert steps[8:12] == [(0, 2), (1, 2), (2, 2), (3, 2)]  # the best half by epoch 1: a second epoch
    assert steps[12:16] == [(0, 3), (0, 4), (1, 3), (1, 4)]  # the best two: to epoch 4
    assert steps[16:20] == [(0, e) for e in range(5, 9)]  # the best: to the last epoch
    assert (7, 2) not in steps  # the late riser is stopped after its first epoch
    # the next bracket (configs 8 and 9 here: a short one, so both pass the rungs that keep 4), then the stopped
    # configs resumed, best value first
    rest = schedule(method, 200)
    assert rest[:8] == [(8, 1), (9, 1), (8, 2), (9, 2), (8, 3), (8, 4), (9, 3), (9, 4)]
    assert rest[8:12] == [(8, e) for e in range(5, 9)]
    assert rest[12] == (1, 5)  # config 1 stood at 0.55 when stopped: the best of the stopped ones
    assert method.ask() is None and all(method.epochs_done(c) == 8 for c in CONFIGS)


def test_a_rung_waiting_on_a_trial_in_flight_lets_the_next_bracket_start_and_resumes_nothing():
    method = PortfolioHalving(SPACE, CONFIGS, bracket=4, eta=2)
    first = []
    for _ in range(4):  # four workers: each asks, and starts what it was given
        first.append(method.ask())
        method.start(first[-1])
    for trial in first[1:]:
        tell(method, trial)  # config 0 is still in flight: its bracket cannot rank its first rung
    nxt = method.ask()
    assert config_key(nxt.config) == config_key(CONFIGS[4]) and nxt.fidelity == 1  # the next bracket
    for _ in range(6):  # the other brackets run out; the first one's stopped configs are not resumed
        trial = method.ask()
        if trial is None:
            break
        method.start(trial)
        tell(method, trial)
    assert all(method.epochs_done(CONFIGS[i]) <= 1 for i in (1, 2, 3))


def test_the_schedule_resumes_from_the_observations_and_is_run_by_name():
    method = PortfolioHalving(SPACE, CONFIGS)
    schedule(method, 11)
    again = PortfolioHalving(SPACE, CONFIGS)
    again.load_state_dict(method.state_dict())
    assert again.ask() == method.ask()
    spec = method_spec("portfolio_halving")
    assert spec.randomness == "none" and (spec.bracket, spec.eta, spec.min_epochs) == (8, 2, 1)
    with pytest.raises(ValueError, match="eta >= 2"):
        PortfolioHalving(SPACE, CONFIGS, eta=1)
