"""Real tuning on tasks the experience never saw: Transfer against Portfolio and Default, each with the same
budget in epochs, each choice tested on the task's test split.

    python tools/tune_vs_default.py --suite v2 --seeds 1,2 --budget 24 --holdout family \
        --tasks dates_units-l1-n64,entity_type-l1-n64,sentence-l1-n64,string_ops-l1-n64,word_edit-l2-n64,\
arithmetic-l3-n128,closed_book-l1-n128,counting-l1-n128 \
        --record assets/evaluate/tune_vs_default_v2.json

Each task is one of the suite's, its examples drawn with each of ``--seeds`` (the experience used the suite's own
seeds, so these are tasks no recorded run has seen): one (task, seed) pair per draw. With ``--holdout family`` each
task is tuned with a copy of the experience that lacks its whole family, and surrogates meta-trained on that copy: a
new kind of task. Every method's ``tune`` resumes from its own folder, so an interrupted comparison continues where
it stopped. Prints a table and one JSON line (``--record`` also writes it): per (task, seed) and method the chosen
config, its epochs, test accuracy, correct answers and test loss; totals; and on how many pairs Transfer's test
accuracy was at least Portfolio's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lit_transfer.quiet import silence

# before the imports below (bitsandbytes logs on import), and again in main: importing Lightning resets
# its logging level
silence()

from lit_transfer.finetune.data import load_split  # noqa: E402
from lit_transfer.io import write_json_atomic  # noqa: E402
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset  # noqa: E402
from lit_transfer.metadataset.tasks import select_tasks, suite_world  # noqa: E402
from lit_transfer.surrogate.recipes import DEFAULT_RECIPES  # noqa: E402

METHODS = ("transfer", "portfolio", "default")


def experience_without(metadataset: str, family: str, out: Path, perf_config: str, cost_config: str) -> str:
    """A copy of the experience without ``family``'s tasks, with surrogates meta-trained on it (made once)."""
    from lit_transfer.surrogate.pretrained import pretrained_paths, save_weights
    from lit_transfer.surrogate.training import train_surrogate

    path = out / f"without-{family}.sqlite"
    paths = pretrained_paths(path)  # the methods compared need Transfer's surrogates, not QuickTune's
    if not path.exists():
        with MetaDataset(metadataset) as store:
            store.copy_without([t for t, f in store.families().items() if f == family], path)
    for recipe, target in ((perf_config, paths["performance"]), (cost_config, paths["cost"])):
        if not target.exists():
            save_weights(train_surrogate(recipe, str(path)), target)
    return str(path)


def compare(
    tasks: list[str], suite: str, seeds: list[int], budget: int, out: Path, metadataset: str = SHIPPED_METADATASET,
    holdout: str = "none", methods: tuple[str, ...] = METHODS, perf_config: str = DEFAULT_RECIPES["performance"],
    cost_config: str = DEFAULT_RECIPES["cost"],
) -> dict[str, Any]:  # fmt: skip
    """Tune each (task, seed) pair with each method at ``budget`` epochs; the comparison as one JSON-ready dict.

    Pairs run task by task, each task's seeds together, so a held-out family's surrogates are trained once."""
    from lit_transfer.tune.commands import tune

    if 0 in seeds:
        raise ValueError("seed 0 draws the experience's own tasks; use other seeds")
    if holdout not in ("none", "family"):
        raise ValueError(f"holdout must be 'none' or 'family', got {holdout!r}")
    world = suite_world(suite)
    rows = []
    for name in tasks:
        for seed in seeds:
            (spec,) = select_tasks([name], seed, suite)
            folder = out / f"seed-{seed}" if len(seeds) > 1 else out
            data = folder / "tasks" / spec.name
            if not (data / "test.jsonl").exists():
                spec.write(world, data)
            experience = metadataset
            if holdout == "family":
                experience = experience_without(metadataset, spec.family, out / "experience", perf_config, cost_config)
            row: dict[str, Any] = {"task": spec.name, "seed": seed, "family": spec.family,
                                   "test_examples": len(load_split(data, "test"))}  # fmt: skip
            for method in methods:
                done = folder / spec.name / method / "result.json"
                result = json.loads(done.read_text()) if done.exists() else tune(
                    str(data), budget, "epochs", method, metadataset=experience, out=str(done.parent), seed=seed
                )  # fmt: skip
                test = result.get("test") or {}
                accuracy = test.get("test/acc")
                row[method] = {
                    "config": result.get("config"), "epochs": result.get("epochs"), "steps": result["steps"],
                    "test_acc": accuracy, "test_loss": test.get("test/loss"),
                    "correct": None if accuracy is None else round(accuracy * row["test_examples"]),
                }  # fmt: skip
                print(f"{spec.name} seed {seed} {method}: test/acc {accuracy} after {result.get('epochs')} epochs, "
                      f"{result['steps']} steps", flush=True)  # fmt: skip
            rows.append(row)
    totals = {m: sum(r[m]["correct"] or 0 for r in rows) for m in methods}
    summary: dict[str, Any] = {"suite": suite, "seeds": seeds, "budget_epochs": budget, "holdout": holdout,
                               "families": len({r["family"] for r in rows}), "pairs": len(rows),
                               "tasks": rows, "correct_total": totals}  # fmt: skip
    if "transfer" in methods and "portfolio" in methods:
        summary["transfer_at_least_portfolio"] = sum(
            (r["transfer"]["test_acc"] or 0.0) >= (r["portfolio"]["test_acc"] or 0.0) for r in rows
        )
    return summary


def format_table(summary: dict[str, Any], methods: tuple[str, ...] = METHODS) -> str:
    head = ["task", "seed", *(f"{m} test/acc (loss)" for m in methods)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["tasks"]:
        cells = [
            "-" if row[m]["test_acc"] is None else f"{row[m]['test_acc']:.3f} ({row[m]['test_loss']:.3f})"
            for m in methods
        ]
        lines.append("| " + " | ".join([row["task"], str(row["seed"]), *cells]) + " |")
    lines.append("| correct answers | | " + " | ".join(str(summary["correct_total"][m]) for m in methods) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", required=True, help="comma-separated task names of the suite")
    parser.add_argument("--suite", default="v2", choices=["v1", "v2"])
    parser.add_argument("--seeds", default="1", help="comma-separated seeds drawing the tasks' examples (not 0)")
    parser.add_argument("--budget", type=int, default=24, help="epochs (trial steps) every method may train")
    parser.add_argument("--holdout", default="none", choices=["none", "family"])
    parser.add_argument("--metadataset", default=SHIPPED_METADATASET)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--perf_config", default=DEFAULT_RECIPES["performance"])
    parser.add_argument("--cost_config", default=DEFAULT_RECIPES["cost"])
    parser.add_argument("--out", default="runs/tune_vs_default")
    parser.add_argument("--record", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    silence()
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    summary = compare(
        [t.strip() for t in args.tasks.split(",") if t.strip()], args.suite,
        [int(s) for s in args.seeds.split(",") if s.strip()], args.budget, Path(args.out),
        args.metadataset, args.holdout, methods, args.perf_config, args.cost_config,
    )  # fmt: skip
    print(format_table(summary, methods))
    if args.record:
        write_json_atomic(args.record, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
