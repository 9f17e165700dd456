"""Overhead of a suggestion: how long ``ask()`` takes with 1,000 candidate configs, for each surrogate method.

    python tools/bench_tune.py            # table
    python tools/bench_tune.py --json     # {"<method>": seconds per ask, ...}

Uses the pretrained surrogates of the shipped meta-dataset on one of its tasks, after ``--observed`` replayed
steps (so the GP conditions on real observations); the median of ``--repeats`` asks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset
from lit_transfer.quiet import silence
from lit_transfer.space import SearchSpace
from lit_transfer.surrogate import load_pretrained
from lit_transfer.tune.commands import candidate_configs
from lit_transfer.tune.loop import Budget, run_tuning
from lit_transfer.tune.methods import MethodContext, method_spec
from lit_transfer.tune.replay import ReplayEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    parser.add_argument("--task", default=None, help="task of the meta-dataset to replay (default: the first)")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--observed", type=int, default=32, help="replayed steps before timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=["transfer", "quicktune", "dyhpo", "optuna_tpe"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    silence()

    space = SearchSpace.from_yaml()
    with MetaDataset(args.metadataset) as store:
        task = args.task or next(iter(store.tasks()))
        features = store.tasks()[task]
    evaluator = ReplayEvaluator.from_store(args.metadataset, task)
    known = evaluator.configs()
    candidates = [*known, *candidate_configs(space, args.metadataset, args.candidates, seed=1)][: args.candidates]
    surrogates = load_pretrained(args.metadataset)
    result = {}
    for method in args.methods:
        context = MethodContext(space, candidates, features, lambda: surrogates, args.metadataset)
        optimizer = method_spec(method).build(context)
        # the replay can only answer for recorded configs: warm up on those, then time asks over all candidates
        optimizer.candidates = known
        run_tuning(optimizer, evaluator, Budget(args.observed))
        optimizer.candidates = candidates
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            optimizer.ask()
            seconds.append(time.perf_counter() - start)
        result[method] = statistics.median(seconds)
        if not args.json:
            print(f"{method:>10}: {result[method] * 1000:7.1f} ms per ask, {len(candidates)} candidates, "
                  f"{len(optimizer.observed)} configs observed", flush=True)  # fmt: skip
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
