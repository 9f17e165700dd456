"""How surrogate cost grows with the meta-dataset: meta-training time of each shipped surrogate and the time to
score 1,000 candidates.

    python tools/bench_surrogate.py            # table
    python tools/bench_surrogate.py --json     # one JSON line
    python tools/bench_surrogate.py --record   # also assets/bench/surrogate.json (run on a quiet machine)

The shipped recipes (``surrogate.recipes.DEFAULT_RECIPES``): ``performance`` (the experience surrogate Transfer and
``suggest`` predict with), ``refit`` (the deep-kernel GP QuickTune and DyHPO refit) and ``cost``. At 1x the shipped
meta-dataset is used as it is; at 2x and 4x its runs are resampled with replacement (each copy a new seed, every
task in its own family) into a temporary meta-dataset of that size. Fitting uses the recipes' settings; prediction
scores 1,000 sampled configs, each with a random observed prefix of a real curve, conditioned on 200 observed runs
of the task, and is the median of 5 repeats. The JSON holds, per factor (suffix ``_2x``, ``_4x``; none at 1x),
``runs``, ``fit_seconds_<role>`` and ``predict_seconds_1000_<role>`` for the two performance surrogates.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lit_transfer.io import write_json_atomic
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset
from lit_transfer.quiet import silence
from lit_transfer.resources import ASSETS
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate.recipes import DEFAULT_RECIPES
from lit_transfer.surrogate.training import train_surrogate

PREDICTING = ("performance", "refit")  # the surrogates a tuner asks about candidates


def resampled(source: str, factor: int, out: Path, seed: int = 0) -> str:
    """A meta-dataset ``factor`` times the size of ``source``: its runs drawn with replacement, one seed per copy."""
    if factor == 1:
        return source
    rng = random.Random(seed)
    with MetaDataset(source) as store:
        tasks, families, runs = store.tasks(), store.families(), list(store.runs())
    with MetaDataset(out, create=True) as store:
        for task, features in tasks.items():
            store.add_task(task, features, families[task])
        for copy in range(len(runs) * factor):
            store.add_run(replace(rng.choice(runs), seed=copy, run_id=None))
    return str(out)


def time_predict(perf, path: str, candidates: int = 1000, repeats: int = 5) -> float:
    rng = random.Random(0)
    with MetaDataset(path) as store:
        task, features = next(iter(store.tasks().items()))
        curves = [[p["metrics"] for p in r.curve if p["fidelity"] > 0] for r in store.runs(task)]
    epochs = perf.encoding.max_epochs
    configs = SearchSpace.from_dict(perf.hparams.space).sample(candidates, seed=1)
    prefixes = [rng.choice(curves)[: rng.randrange(epochs)] for _ in configs]
    observed = [(c, rng.choice(curves)[: rng.randrange(1, epochs + 1)]) for c in configs[:200]]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        perf.predict(configs, features, prefixes, observed=observed)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    parser.add_argument("--factors", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--roles", nargs="+", default=list(DEFAULT_RECIPES), choices=list(DEFAULT_RECIPES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--record", action="store_true", help="write assets/bench/surrogate.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    silence()

    result: dict = {"metadataset": Path(args.metadataset).name, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for factor in args.factors:
            path = resampled(args.metadataset, factor, Path(tmp) / f"x{factor}.sqlite")
            suffix = "" if factor == 1 else f"_{factor}x"
            with MetaDataset(path) as store:
                result[f"runs{suffix}"] = len(store)
            for role in args.roles:
                start = time.perf_counter()
                module = train_surrogate(DEFAULT_RECIPES[role], path)
                result[f"fit_seconds_{role}{suffix}"] = time.perf_counter() - start
                if role in PREDICTING:
                    result[f"predict_seconds_1000_{role}{suffix}"] = time_predict(module, path)
                if not args.json:
                    predict = result.get(f"predict_seconds_1000_{role}{suffix}")
                    print(
                        f"{factor}x ({result[f'runs{suffix}']} runs) {role}: meta-training "
                        f"{result[f'fit_seconds_{role}{suffix}']:.1f} s"
                        + ("" if predict is None else f", 1,000 predictions {predict:.3f} s"),
                        flush=True,
                    )  # fmt: skip
    if args.record:
        write_json_atomic(ASSETS / "bench" / "surrogate.json", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
