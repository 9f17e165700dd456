"""Which task meta-features carry information about the best pipeline: across the tasks of a meta-dataset, the
Spearman correlation of each feature with the best config's learning rate (log), LoRA rank and batch size.

A task's best config is its best final ``val/acc`` over all its configs (ties: lower final ``val/loss``).
Writes one JSON object (``--out``), whose table the README shows (``tools/readme_tables.py``).

    python tools/feature_correlations.py assets/metadata/v2.sqlite --out assets/metadata/v2.features.json
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
    with MetaDataset(path) as store:
        features = store.tasks()
        best = best_configs(store)
    tasks = sorted(best)
    table = {}
    for name in [*TASK_FEATURES, *EXTRA_FEATURES]:
        values = [features[t].get(name) for t in tasks]
        if any(v is None for v in values):
            continue
        row = {}
        for target, read in TARGETS.items():
            rho = spearmanr(values, [read(best[t]) for t in tasks]).statistic
            row[target] = None if rho is None or math.isnan(rho) else round(float(rho), 3)
        table[name] = row
    return {"metadataset": Path(path).name, "tasks": len(tasks), "correlations": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metadataset")
    parser.add_argument("--out", help="write the JSON object here (default: print it)")
    args = parser.parse_args()
    result = correlations(args.metadataset)
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
