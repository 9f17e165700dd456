"""Parallel tuning, measured: how much sooner N workers reach what one worker reaches.

    python tools/bench_parallel.py                       # the shipped meta-dataset, Transfer and Random
    python tools/bench_parallel.py --holdout family --methods transfer --workers 1 4 8 --out runs/bench/parallel-lofo
    python tools/bench_parallel.py --metadataset assets/metadata/v2.sqlite --out runs/bench/parallel-v2

Every held-out task of a meta-dataset (each task left out in turn, or with ``--holdout family`` its whole family) is
tuned (replayed) by Transfer (deterministic given its fold's surrogates: one run per task) and by Random search
(``--seeds`` runs per task) with 1, 2, 4 and 8 trial steps in flight, on a simulated clock that advances by each
step's recorded seconds (``evaluate`` with ``workers``). For each (task, seed), the target is the normalized regret
one worker has at the end of the budget; t1 is when one worker first reaches it and tN when N workers do. Speedup =
sum t1 / sum tN (ideal: N). Beside it, what a config's epochs, which run one after another, allow: the chain bound
(sum t1 / the seconds of one worker's winning config's epochs) and the speedup had N workers never taken longer than
those epochs (``evaluation.stats.parallel_summary``). Writes ``<out>/parallel.json`` and, with ``--record``,
``assets/bench/parallel.json`` (``parallel_lofo.json`` with ``--holdout family``); the last line is one JSON object,
``{"speedup_2": s2, "speedup_4": s4, "speedup_8": s8}`` for Transfer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lit_transfer.evaluation.tuning import EvaluationPlan, evaluate
from lit_transfer.io import write_json_atomic
from lit_transfer.metadataset.store import SHIPPED_METADATASET
from lit_transfer.quiet import silence
from lit_transfer.resources import ASSETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    parser.add_argument("--out", default="runs/bench/parallel", help="evaluation folder (its fold surrogates and "
                        "states are reused when rerun)")  # fmt: skip
    parser.add_argument("--holdout", choices=["task", "family"], default="task")
    parser.add_argument("--methods", nargs="+", default=["transfer", "random"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget_epochs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="write assets/bench/parallel.json "
                        "(parallel_lofo.json with --holdout family)")  # fmt: skip
    args = parser.parse_args()
    if "transfer" not in args.methods:
        parser.error("--methods must include transfer: its speedups are the benchmark's result")
    torch.set_num_threads(args.threads)
    silence()

    plan = EvaluationPlan(
        metadataset=args.metadataset, methods=args.methods, seeds=list(range(args.seeds)),
        budget_epochs=args.budget_epochs, workers=args.workers, holdout=args.holdout, out=args.out,
    )  # fmt: skip
    evaluate(plan, progress=lambda line: print(line, flush=True))
    parallel = json.loads((Path(args.out) / "parallel.json").read_text())
    print(f"{'method':>10} {'workers':>7} {'speedup':>8} {'unpaused':>8} {'chain bound':>11} {'ideal':>6} "
          f"{'pairs':>6} {'not reached':>12}")  # fmt: skip
    for method, by_workers in parallel.items():
        for workers, entry in by_workers.items():
            speedup, unpaused, bound = ("-" if entry[k] is None else f"{entry[k]:.2f}"
                                        for k in ("speedup", "speedup_unpaused", "chain_bound"))  # fmt: skip
            print(f"{method:>10} {workers:>7} {speedup:>8} {unpaused:>8} {bound:>11} {workers:>6} {entry['pairs']:>6} "
                  f"{entry['not_reached']:>12}")  # fmt: skip
    line = {f"speedup_{n}": parallel["transfer"][str(n)]["speedup"] for n in args.workers if n > 1}
    if args.record:
        name = {"task": "parallel.json", "family": "parallel_lofo.json"}[args.holdout]
        write_json_atomic(
            ASSETS / "bench" / name,
            {"metadataset": Path(args.metadataset).name, "holdout": plan.holdout, "budget_epochs": args.budget_epochs,
             "seeds": args.seeds, "methods": parallel, **line},
        )  # fmt: skip
    print(json.dumps(line))


if __name__ == "__main__":
    main()
