"""How surrogate cost grows with the meta-dataset: meta-training time and the time to score 1,000 candidates.

    python tools/bench_surrogate.py            # table
    python tools/bench_surrogate.py --json     # {"fit_seconds", "predict_seconds_1000", ... "_2x", "_4x"}

At 1x the shipped meta-dataset is used as it is; at 2x and 4x its runs are resampled with replacement (each copy a
new seed) into a temporary meta-dataset of that size. Fitting uses the YAML configs' settings (epochs over the
data, so fit time grows with data); prediction scores 1,000 sampled configs, each with a random observed prefix
of a real curve, conditioned on 256 observations of the task (the bound), and is the median of 5 repeats.
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

from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset
from lit_transfer.quiet import silence
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate import PerformanceSurrogate
from lit_transfer.surrogate.training import train_surrogate

ROOT = Path(__file__).resolve().parents[1]


def resampled(source: str, factor: int, out: Path, seed: int = 0) -> str:
    """A meta-dataset ``factor`` times the size of ``source``: its runs drawn with replacement, one seed per copy."""
    if factor == 1:
        return source
    rng = random.Random(seed)
    with MetaDataset(source) as store:
        tasks, runs = store.tasks(), list(store.runs())
    with MetaDataset(out, create=True) as store:
        for task, features in tasks.items():
            store.add_task(task, features)
        for copy in range(len(runs) * factor):
            store.add_run(replace(rng.choice(runs), seed=copy, run_id=None))
    return str(out)


def time_fit(path: str, perf: str, cost: str) -> tuple[float, PerformanceSurrogate]:
    start = time.perf_counter()
    perf_module = train_surrogate(perf, path)
    train_surrogate(cost, path)
    return time.perf_counter() - start, perf_module


def time_predict(perf: PerformanceSurrogate, path: str, candidates: int = 1000, repeats: int = 5) -> float:
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
    parser.add_argument("--perf-config", default=str(ROOT / "configs/surrogate/perf_dkgp.yaml"))
    parser.add_argument("--cost-config", default=str(ROOT / "configs/surrogate/cost_mlp.yaml"))
    parser.add_argument("--factors", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    silence()
    perf_recipe, cost_recipe = args.perf_config, args.cost_config

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for factor in args.factors:
            path = resampled(args.metadataset, factor, Path(tmp) / f"x{factor}.sqlite")
            fit_seconds, perf = time_fit(path, perf_recipe, cost_recipe)
            suffix = "" if factor == 1 else f"_{factor}x"
            with MetaDataset(path) as store:
                result[f"runs{suffix}"] = len(store)
            result[f"fit_seconds{suffix}"] = fit_seconds
            result[f"predict_seconds_1000{suffix}"] = time_predict(perf, path)
            if not args.json:
                print(
                    f"{factor}x ({result[f'runs{suffix}']} runs): meta-training {fit_seconds:.1f} s, "
                    f"1,000 predictions {result[f'predict_seconds_1000{suffix}']:.3f} s",
                    flush=True,
                )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
