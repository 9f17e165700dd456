"""Headroom beside the methods: three orders of a held-out task's configs that use its recorded results, which no
method may know. They bound what the methods could reach; they are references, not methods (never ranked, never
tested against).

- ``oracle``: the task's own configs, best recorded final first: what knowing the task gives.
- ``oracle_neighbours``: the configs the task shares with its three best-correlated tasks of other families (Spearman
  of the recorded finals over the configs they share), by their mean final over those three: what telling which
  remembered tasks behave like the new one would give. It overstates that: the tasks are chosen on the very
  configs they then rank, so a config's own final helps choose the tasks that rank it.
- ``oracle_neighbours_cross_fitted``: the same without the overstatement. The task's configs are split in two
  (alternate keys); each half is ordered by the three tasks chosen from the other half's finals, and the halves are
  merged by those mean finals: what knowing half of the task's finals tells about the other half.

Each config is trained to its last epoch in that order, as the portfolio's are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lit_transfer.surrogate.metrics import spearman

REFERENCES = ("oracle", "oracle_neighbours", "oracle_neighbours_cross_fitted")
NEIGHBOURS = 3


def own_order(finals: Mapping[str, float]) -> list[str]:
    """The task's config keys by their recorded final, best first (ties by key)."""
    return sorted(finals, key=lambda key: (-finals[key], key))


def nearest_tasks(
    task: str, finals: Mapping[str, Mapping[str, float]], families: Mapping[str, str], k: int = NEIGHBOURS
) -> list[str]:
    """The ``k`` tasks of other families whose recorded finals correlate best with ``task``'s over the configs both
    ran (ties by name); tasks sharing fewer than three configs with it say nothing and are left out."""
    scored = []
    for other, theirs in finals.items():
        if families[other] == families[task]:
            continue
        shared = sorted(set(finals[task]) & set(theirs))
        if len(shared) >= 3:
            rho = spearman([finals[task][key] for key in shared], [theirs[key] for key in shared])
            scored.append((-rho, other))
    return [other for _, other in sorted(scored)[:k]]


def neighbours_means(
    keys: Iterable[str], neighbours: Sequence[str], finals: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """The mean final over ``neighbours`` of each of ``keys`` that every one of them ran."""
    shared = set(keys).intersection(*(finals[n] for n in neighbours)) if neighbours else set()
    return {key: sum(finals[n][key] for n in neighbours) / len(neighbours) for key in shared}


def neighbours_order(task: str, neighbours: Sequence[str], finals: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The config keys ``task`` shares with every one of ``neighbours``, by their mean final over them, best first."""
    mean = neighbours_means(finals[task], neighbours, finals)
    return sorted(mean, key=lambda key: (-mean[key], key))


def cross_fitted_means(
    task: str, finals: Mapping[str, Mapping[str, float]], families: Mapping[str, str]
) -> dict[str, float]:
    """Each of ``task``'s config keys scored by the mean final of the neighbours chosen from the other half's
    finals (see the module); keys some neighbour did not run are left out."""
    keys = sorted(finals[task])
    halves = (keys[0::2], keys[1::2])
    mean: dict[str, float] = {}
    for half, other in (halves, halves[::-1]):
        seen = {**finals, task: {key: finals[task][key] for key in other}}
        mean |= neighbours_means(half, nearest_tasks(task, seen, families), finals)
    return mean


def cross_fitted_order(task: str, finals: Mapping[str, Mapping[str, float]], families: Mapping[str, str]) -> list[str]:
    """``task``'s config keys by their cross-fitted neighbours' mean final, best first (ties by key)."""
    mean = cross_fitted_means(task, finals, families)
    return sorted(mean, key=lambda key: (-mean[key], key))


def reference_orders(
    task: str, finals: Mapping[str, Mapping[str, float]], families: Mapping[str, str]
) -> dict[str, Any]:
    """Both references' orders of ``task``'s config keys, and the neighbours the second one used."""
    neighbours = nearest_tasks(task, finals, families)
    return {
        "oracle": own_order(finals[task]),
        "oracle_neighbours": neighbours_order(task, neighbours, finals),
        "oracle_neighbours_cross_fitted": cross_fitted_order(task, finals, families),
        "neighbours": neighbours,
    }
