"""Leave-one-task-out quality of the surrogates on a meta-dataset (see lit_transfer.surrogate.evaluate).

    python tools/eval_surrogates.py                # the shipped meta-dataset, Markdown table
    python tools/eval_surrogates.py --json         # one JSON object: means over held-out tasks + per_task

Hyperparameters come from the same YAML files ``fit`` uses (model init_args, trainer max_epochs, batch size).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import torch

from lit_transfer.metadataset.store import SHIPPED_METADATASET
from lit_transfer.surrogate.evaluate import Recipe, format_table, leave_one_task_out

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", default=SHIPPED_METADATASET)
    parser.add_argument("--perf-config", default=str(ROOT / "configs/surrogate/perf_dkgp.yaml"))
    parser.add_argument("--cost-config", default=str(ROOT / "configs/surrogate/cost_mlp.yaml"))
    parser.add_argument("--tasks", nargs="*", help="tasks to hold out in turn (default: every task)")
    parser.add_argument("--perf-epochs", type=int, help="override the perf YAML's trainer.max_epochs")
    parser.add_argument("--cost-epochs", type=int, help="override the cost YAML's trainer.max_epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (small models: 1 is fastest)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    perf, cost = Recipe.from_yaml(args.perf_config), Recipe.from_yaml(args.cost_config)
    start = time.perf_counter()
    summary = leave_one_task_out(
        args.metadata,
        perf_args=perf.model_args,
        cost_args=cost.model_args,
        perf_trainer={"max_epochs": args.perf_epochs or perf.max_epochs},
        cost_trainer={"max_epochs": args.cost_epochs or cost.max_epochs},
        batch_size=perf.batch_size,
        cost_batch_size=cost.batch_size,
        tasks=args.tasks,
        seed=args.seed,
        progress=(lambda message: None) if args.json else print,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary))
        print(f"\n{len(summary['per_task'])} held-out tasks in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
