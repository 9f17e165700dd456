"""Headroom beside the methods: two orders of a held-out task's configs that use its recorded results, which no
method may know. They bound what the methods could reach; they are references, not methods (never ranked, never
tested against).

- ``oracle``: the task's own configs, best recorded final first: what knowing the task gives.
- ``oracle_neighbours``: the configs the task shares with its three best-correlated tasks of other families (Spearman
  of the recorded finals over the configs they share), by their mean final over those three: what telling which
  remembered tasks behave like the new one would give.

Each config is trained to its last epoch in that order, as the portfolio's are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lit_transfer.surrogate.metrics import spearman

REFERENCES = ("oracle", "oracle_neighbours")
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


def neighbours_order(task: str, neighbours: Sequence[str], finals: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The config keys ``task`` shares with every one of ``neighbours``, by their mean final over them, best first."""
    shared = set(finals[task]).intersection(*(finals[n] for n in neighbours)) if neighbours else set()
    mean = {key: sum(finals[n][key] for n in neighbours) / len(neighbours) for key in shared}
    return sorted(shared, key=lambda key: (-mean[key], key))


def reference_orders(
    task: str, finals: Mapping[str, Mapping[str, float]], families: Mapping[str, str]
) -> dict[str, Any]:
    """Both references' orders of ``task``'s config keys, and the neighbours the second one used."""
    neighbours = nearest_tasks(task, finals, families)
    return {
        "oracle": own_order(finals[task]),
        "oracle_neighbours": neighbours_order(task, neighbours, finals),
        "neighbours": neighbours,
    }
