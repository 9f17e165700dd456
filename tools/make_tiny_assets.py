"""Regenerate the shipped demo assets: ``assets/data/toy_qa`` and ``assets/models/tiny-phi3``."""

from __future__ import annotations

import argparse

from lit_transfer.finetune.demo import make_tiny_assets

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="assets")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, model = make_tiny_assets(args.root, args.seed)
    print(f"wrote {data} and {model}")
