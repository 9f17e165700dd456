"""Which task meta-features carry information about the best pipeline: across the tasks of a meta-dataset, the
Spearman correlation of each feature with the best config's learning rate (log), LoRA rank and batch size, with
its p-value.

A task's best config is its best final ``val/acc`` over all its configs (ties: lower final ``val/loss``).
Writes one JSON object (``--out``), whose table the README shows (``tools/readme_tables.py``).

    python tools/feature_correlations.py --metadataset assets/metadata/v2.sqlite --out assets/metadata/v2.features.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from scipy.stats import spearmanr

from lit_transfer.io import write_json_atomic
from lit_transfer.metadataset.features import EXTRA_FEATURES, TASK_FEATURES
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.resources import SHIPPED_METADATASET

TARGETS = {"learning_rate": lambda c: math.log10(c["learning_rate"]), "lora_rank": lambda c: c["lora_rank"],
           "batch_size": lambda c: c["batch_size"]}  # fmt: skip


def best_configs(store: MetaDataset) -> dict[str, dict]:
    best: dict[str, tuple] = {}
    for run in store.runs():
        loss = run.final("val/loss") if run.status == "ok" else None
        key = (final_score(run), -(loss if loss is not None and math.isfinite(loss) else math.inf))
        if run.task not in best or key > best[run.task][0]:
            best[run.task] = (key, run.config)
    return {task: config for task, (_, config) in best.items()}


def correlations(path: str) -> dict:
    """Per feature and target: Spearman's rho across tasks and its p-value. A feature with one value on every task
    (the validation size of v2) says nothing about any task; it is listed under ``constant``."""
    with MetaDataset(path) as store:
        features = store.tasks()
        best = best_configs(store)
    tasks = sorted(best)
    table, p_values, constant = {}, {}, []
    for name in [*TASK_FEATURES, *EXTRA_FEATURES]:
        values = [features[t].get(name) for t in tasks]
        if any(v is None for v in values):
            continue
        if len(set(values)) == 1:
            constant.append(name)
            continue
        table[name], p_values[name] = {}, {}
        for target, read in TARGETS.items():
            targets = [read(best[t]) for t in tasks]
            if len(set(targets)) == 1:
                table[name][target] = p_values[name][target] = None
                continue
            result = spearmanr(values, targets)
            table[name][target] = round(float(result.statistic), 3)
            p_values[name][target] = round(float(result.pvalue), 4)
    return {"metadataset": Path(path).name, "tasks": len(tasks), "correlations": table, "p_values": p_values,
            "constant": constant}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    parser.add_argument("--out", help="write the JSON object here (default: print it)")
    args = parser.parse_args()
    result = correlations(args.metadataset)
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
