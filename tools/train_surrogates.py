"""Meta-train both surrogates on a meta-dataset (all tasks) and write them beside it, where tuners load them.

    python tools/train_surrogates.py     # assets/metadata/micro.sqlite -> micro.perf.ckpt, micro.cost.ckpt

Settings come from configs/surrogate/{perf_dkgp,cost_mlp}.yaml, the same ``fit`` uses.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from lit_transfer.metadataset.store import SHIPPED_METADATASET
from lit_transfer.surrogate import CostSurrogate, MetaDataModule, PerformanceSurrogate
from lit_transfer.surrogate.evaluate import Recipe, fit
from lit_transfer.surrogate.pretrained import pretrained_paths, save_weights

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", default=SHIPPED_METADATASET)
    parser.add_argument("--perf-config", default=str(ROOT / "configs/surrogate/perf_dkgp.yaml"))
    parser.add_argument("--cost-config", default=str(ROOT / "configs/surrogate/cost_mlp.yaml"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["performance", "cost"], help="train one of them (default: both)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    perf_path, cost_path = pretrained_paths(args.metadata)
    for cls, target, config_path, out in (
        (PerformanceSurrogate, "performance", args.perf_config, perf_path),
        (CostSurrogate, "cost", args.cost_config, cost_path),
    ):
        if args.only not in (None, target):
            continue
        recipe = Recipe.from_yaml(config_path)
        L.seed_everything(recipe.seed, verbose=False)
        data = MetaDataModule(args.metadata, target=target, batch_size=recipe.batch_size)
        start = time.perf_counter()
        module = fit(cls(**recipe.model_args), data, {"max_epochs": recipe.max_epochs})
        seconds = time.perf_counter() - start
        print(f"{out}: meta-trained in {seconds:.0f} s, {save_weights(module, out).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
