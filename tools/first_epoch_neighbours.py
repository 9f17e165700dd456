"""Can a new kind of task's first epochs tell which remembered tasks rank the configs it has not run alike?

Each task of a meta-dataset in turn is new; its family's other tasks are left out. The portfolio's first ``n``
configs (the shared configs by their mean final over the remembered tasks) run ``k`` epochs. The configs not run
are then ranked by their mean final over remembered tasks chosen from what those epochs showed, and Kendall's tau
against the task's recorded finals is averaged over tasks, for each way of choosing:

- ``mean_config``: every remembered task alike (the portfolio's order);
- ``<signature>_top3``: the 3 remembered tasks whose signature is closest; ``<signature>_soft``: every remembered
  task weighted by exp(-distance / median distance / 0.5);
- signatures: ``acc`` (val/acc of the configs run at the epochs observed), ``loss`` (their validation loss over the
  task's zero-shot loss, log: continuous where exact-match accuracy is still flat), ``loss_spread`` (the same, less
  its mean over the configs run: how the configs differ, not how hard the task is);
- ``oracle_top3``: the 3 other-family tasks whose recorded finals correlate best with the task's, as the
  ``oracle_neighbours`` reference of ``evaluate`` chooses them (hindsight, and chosen on the very configs ranked);
- ``oracle_top3_cross_fitted``: as ``evaluate``'s ``oracle_neighbours_cross_fitted``, each config ranked by the
  3 tasks chosen from the finals of the other half of the task's configs: the headroom without the configs' own
  finals choosing the tasks that rank them.

A second comparison asks what more the task's own results could teach, given far more of them than its first
epochs: half of its recorded finals (alternate keys, as the cross-fitted reference splits them). Each half's shared
configs are ranked from the other half's finals, and tau is averaged over both halves and the tasks:
``mean_config``; ``oracle_top3_cross_fitted``; ``own_gp``, a GP over the encoded configs (the plain GP baseline's
Matérn kernel, one length scale per input) fitted to the other half's finals; ``mean_config_plus_own_gp``, the
per-config mean plus such a GP fitted to the other half's deviations from it.

    python tools/first_epoch_neighbours.py --metadataset assets/metadata/v2.sqlite
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import torch

from lit_transfer.evaluation.references import cross_fitted_means, nearest_tasks
from lit_transfer.evaluation.surrogate_baselines import fit_exact_gp, mean_config_scores
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.resources import SHIPPED_METADATASET
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate.metrics import tau

SETTINGS = ((1, 1), (1, 3), (2, 2), (3, 3))  # (configs run, epochs each), as ``surrogate evaluate`` measures
NEIGHBOURS = 3
SOFTNESS = 0.5


def load(path: str) -> tuple[dict, dict, dict, dict, dict]:
    """Per task: its family, final per config, val/acc and val/loss curves per config, and its zero-shot loss."""
    finals, acc, loss, zero_shot = {}, {}, {}, {}
    with MetaDataset(path) as store:
        families = store.families()
        for run in store.runs():
            if run.status != "ok":
                continue
            points = [p for p in run.curve if p["fidelity"] > 0]
            finals.setdefault(run.task, {})[run.config_key] = final_score(run)
            acc.setdefault(run.task, {})[run.config_key] = [p["metrics"].get("val/acc") or 0.0 for p in points]
            loss.setdefault(run.task, {})[run.config_key] = [p["metrics"]["val/loss"] for p in points]
            zero_shot[run.task] = next(p["metrics"]["val/loss"] for p in run.curve if p["fidelity"] == 0)
    return families, finals, acc, loss, zero_shot


def signature(kind: str, task: str, ran: list[str], k: int, acc: dict, loss: dict, zero_shot: dict) -> np.ndarray:
    """What the ``ran`` configs' first ``k`` epochs showed of ``task``, as ``kind`` (see the module's text)."""
    if kind == "acc":
        return np.array([acc[task][c][:k] for c in ran])
    relative = np.log(np.array([loss[task][c][:k] for c in ran]) / zero_shot[task])
    return relative - relative.mean(0) if kind == "loss_spread" else relative


def ranked(weights: dict[str, float], rest: list[str], finals: dict) -> list[float]:
    """The configs not run, as the weighted remembered tasks' mean final."""
    total = sum(weights.values())
    return [sum(w * finals[t][c] for t, w in weights.items()) / total for c in rest]


def choices(task: str, others: list[str], ran: list[str], k: int, data: tuple) -> dict[str, dict[str, float]]:
    """Each way of choosing remembered tasks from the ``ran`` configs' first ``k`` epochs (weights per task)."""
    _, _, acc, loss, zero_shot = data
    out = {}
    for kind in ("acc", "loss", "loss_spread"):
        if kind == "loss_spread" and len(ran) < 2:
            continue  # one config has nothing to differ from
        own = signature(kind, task, ran, k, acc, loss, zero_shot)
        distance = {t: float(((own - signature(kind, t, ran, k, acc, loss, zero_shot)) ** 2).sum()) for t in others}
        out[f"{kind}_top3"] = dict.fromkeys(sorted(others, key=lambda t: (distance[t], t))[:NEIGHBOURS], 1.0)
        scale = statistics.median(distance.values()) + 1e-12
        out[f"{kind}_soft"] = {t: float(np.exp(-distance[t] / scale / SOFTNESS)) for t in others}
    return out


def remembered(task: str, finals: dict, families: dict) -> tuple[list[str], list[str], dict[str, float]]:
    """What a new ``task`` may draw on: the tasks of other families, the configs every one of them and the task ran,
    and each of those configs' mean final over them (the portfolio's score)."""
    others = [t for t in finals if families[t] != families[task]]
    shared = sorted(k for k in finals[task] if others and all(k in finals[t] for t in others))
    scores = mean_config_scores({t: finals[t] for t in [task, *others]}, task, shared)
    return others, shared, dict(zip(shared, scores, strict=True))


def compare(path: str = SHIPPED_METADATASET) -> dict[str, dict[str, float]]:
    """Mean tau of the configs not run, per way of choosing remembered tasks and per setting "n,k"."""
    data = load(path)
    families, finals = data[0], data[1]
    scores: dict[str, dict[str, list[float]]] = {}
    for task in sorted(finals):
        others, shared, mean = remembered(task, finals, families)
        if not others or len(shared) < max(n for n, _ in SETTINGS) + 2:
            continue
        order = sorted(shared, key=lambda c: (-mean[c], c))
        fixed = {"mean_config": dict.fromkeys(others, 1.0),  # the same for every setting
                 "oracle_top3": dict.fromkeys(nearest_tasks(task, finals, families, NEIGHBOURS), 1.0)}  # fmt: skip
        cross_fitted = cross_fitted_means(task, finals, families)
        for n, k in SETTINGS:
            ran = order[:n]
            rest = [c for c in shared if c not in ran]
            actual = [finals[task][c] for c in rest]
            for name, weights in {**fixed, **choices(task, others, ran, k, data)}.items():
                predicted = ranked(weights, rest, finals)
                scores.setdefault(name, {}).setdefault(f"{n},{k}", []).append(tau(predicted, actual))
            predicted = [cross_fitted[c] for c in rest]
            scores.setdefault("oracle_top3_cross_fitted", {}).setdefault(f"{n},{k}", []).append(tau(predicted, actual))
    return {name: {s: statistics.mean(v) for s, v in by.items()} for name, by in scores.items()}


def own_gp(train: dict[str, float], query: list[str], encoded: dict[str, np.ndarray]) -> list[float]:
    """A GP over the encoded configs fitted to ``train`` (config key -> value), its mean at the ``query`` keys."""
    x = torch.tensor(np.array([encoded[c] for c in train]), dtype=torch.float64)
    y = torch.tensor(list(train.values()), dtype=torch.float64)
    model = fit_exact_gp(x, y)
    with torch.no_grad():
        return model(torch.tensor(np.array([encoded[c] for c in query]), dtype=torch.float64)).mean.tolist()


def halves(path: str = SHIPPED_METADATASET, space: SearchSpace | None = None) -> dict[str, float]:
    """Mean tau of each half's shared configs ranked from the other half of the task's recorded finals."""
    space = space or SearchSpace.from_yaml()
    with MetaDataset(path) as store:
        encoded = {run.config_key: space.encode(run.config) for run in store.runs() if run.status == "ok"}
    families, finals = load(path)[:2]
    scores: dict[str, list[float]] = {}
    for task in sorted(finals):
        _, shared, mean = remembered(task, finals, families)  # the task's own family is not remembered
        cross_fitted = cross_fitted_means(task, finals, families)
        keys = sorted(finals[task])
        for half, other in ((keys[0::2], keys[1::2]), (keys[1::2], keys[0::2])):
            query = [k for k in half if k in shared]
            if len(query) < 2:
                continue
            seen = {k: finals[task][k] for k in other}
            actual = [finals[task][k] for k in query]
            deviations = {k: v - mean[k] for k, v in seen.items() if k in shared}
            predicted = {
                "mean_config": [mean[k] for k in query],
                "oracle_top3_cross_fitted": [cross_fitted[k] for k in query],
                "own_gp": own_gp(seen, query, encoded),
                "mean_config_plus_own_gp": [
                    mean[k] + g for k, g in zip(query, own_gp(deviations, query, encoded), strict=True)
                ],
            }
            for name, values in predicted.items():
                scores.setdefault(name, []).append(tau(values, actual))
    return {name: statistics.mean(values) for name, values in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    args = parser.parse_args()
    result = compare(args.metadataset)
    settings = [f"{n},{k}" for n, k in SETTINGS]
    print(f"{'chosen by':>24} " + " ".join(f"{s:>6}" for s in settings))
    for name, by in result.items():
        print(f"{name:>24} " + " ".join(f"{by[s]:6.3f}" if s in by else f"{'-':>6}" for s in settings))
    half = halves(args.metadataset)
    print("\nfrom half of the task's finals, tau of the other half's shared configs:")
    for name, value in half.items():
        print(f"{name:>24} {value:6.3f}")
    print(json.dumps({"first_epochs": result, "halves": half}))


if __name__ == "__main__":
    main()
