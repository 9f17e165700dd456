"""The README's tables, generated from the result files in ``assets/`` — never typed by hand.

Each table sits between ``<!-- table: NAME -->`` and ``<!-- end table -->`` in README.md or docs/results.md.
``--write`` regenerates them all in place; ``tests/test_readme.py`` fails when a page no longer matches its files.

    python tools/readme_tables.py --write
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
PAGES = (ROOT / "README.md", ROOT / "docs" / "results.md")
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def _json(path: str) -> dict:
    return json.loads((ASSETS / path).read_text())


def _references(folder: str) -> dict:
    """The reference rows of an evaluation (``references.json``), if it recorded them."""
    path = ASSETS / folder / "references.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    return {name: row for name, row in found.items() if name != "neighbours"}


def evaluate_loto() -> str:
    """Leave-one-task-out on experience v2 (``configs/evaluate/loto.yaml``, recorded in assets/evaluate/loto/)."""
    from lit_transfer.evaluation.tuning import format_table

    return format_table(_json("evaluate/loto/summary.json"), _references("evaluate/loto"))


def evaluate_lofo() -> str:
    """Leave-one-family-out on experience v2 (``configs/evaluate/lofo.yaml``, recorded in assets/evaluate/lofo/):
    mean regret with its 95% bootstrap interval and mean rank per method, then Transfer's Wilcoxon tests."""
    summary, stats = _json("evaluate/lofo/summary.json"), _json("evaluate/lofo/stats.json")
    verdict = _json("evaluate/lofo/cd.json")
    fractions = list(next(iter(summary.values())))
    lines = [
        "| method | " + " | ".join(f"regret @{float(f):g} [95% CI]" for f in fractions) + " | rank @0.1 | rank @1 |",
        "|---|" + "---|" * (len(fractions) + 2),
    ]
    for method, row in sorted(summary.items(), key=lambda kv: kv[1][fractions[-1]]["rank"]):
        cells = [
            f"{row[f]['normalized_regret']:.3f} [{row[f]['regret_ci95'][0]:.3f}, {row[f]['regret_ci95'][1]:.3f}]"
            for f in fractions
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {row[fractions[0]]['rank']:.2f} "
                     f"| {row[fractions[-1]]['rank']:.2f} |")  # fmt: skip
    for reference, row in _references("evaluate/lofo").items():  # the held-out task's own results: not ranked
        cells = [
            f"{row[f]['normalized_regret']:.3f} [{row[f]['regret_ci95'][0]:.3f}, {row[f]['regret_ci95'][1]:.3f}]"
            for f in fractions
        ]
        lines.append(f"| {reference} (reference) | " + " | ".join(cells) + " | – | – |")
    lines += [
        "",
        "| Transfer against | " + " | ".join(f"p @{float(f):g}: tasks / pairs" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for method in sorted(stats[fractions[0]]):
        cells = [
            f"{stats[f][method]['p_value_tasks']:.2g} / {stats[f][method]['p_value']:.2g} "
            f"({'better' if stats[f][method]['transfer_better'] else 'worse'})"
            for f in fractions
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    cd = verdict["critical_difference"]
    lines += [
        "",
        *textwrap.wrap(
            "Intervals: bootstrap over tasks (each task's mean over its seeds). p: Wilcoxon signed-rank over the "
            f"{verdict['blocks']} tasks (each its mean over seeds) / over (task, seed) pairs. Transfer does not "
            "depend on the seed (nor do Portfolio, Default and Zero-shot): its one result per task repeats for every "
            "seed, so the pairs overstate the evidence and the test over tasks is the one to read. better/worse: "
            "Transfer's mean regret against the method's. "
            f"Critical differences at the full budget (autorank, {verdict['blocks']} tasks): {verdict['test']} "
            f"p = {verdict['p_value']:.3g}"
            + ("" if cd is None else f", critical difference {cd:.2f} in mean rank")
            + ".",
            116,
        ),
    ]
    return "\n".join(lines)


def run_overhead() -> str:
    result = _json("bench/run_overhead.json")
    before, after = result["overhead_share_before"], result["overhead_share_after"]
    return "\n".join(
        [
            "| path | seconds per build run | share of wall time outside training and validation steps |",
            "|---|---|---|",
            f"| cold (load and tokenize every run) | {result['seconds_per_run_before']:.1f} | {before:.1%} |",
            f"| warm (kept in the worker) | {result['seconds_per_run_after']:.1f} | {after:.1%} |",
            "",
            f"Measured by {result['note']}. Separately, {result['build_runs']}; {result['tune_steps']}.",
        ]
    )


def help_times() -> str:
    result = _json("bench/help.json")
    lines = ["| command | `--help` s | x `import torch` | first call s |", "|---|---|---|---|"]
    for name, seconds in result["commands"].items():
        first = f"{result['first'][name]:.2f}" if name in result["first"] else "–"
        lines.append(f"| {name} | {seconds:.2f} | {result['ratio_to_import_torch'][name]:.2f} | {first} |")
    verdict = "met" if result["goal_met"] else "missed"
    torch_seconds, slowest, goal = result["import_torch"], result["slowest"], result["goal_seconds"]
    lines += ["", f"Medians of {result['repeats']} interleaved rounds; `import torch` {torch_seconds:.2f} s; "
              f"slowest command {slowest:.2f} s (goal < {goal:g} s: {verdict})."]  # fmt: skip
    return "\n".join(lines)


def surrogate_speed() -> str:
    result = _json("bench/surrogate.json")
    lines = [
        "| data | runs | meta-training: performance / refit / cost | 1,000 predictions: performance / refit |",
        "|---|---|---|---|",
    ]
    for factor in (1, 2, 4):
        suffix = "" if factor == 1 else f"_{factor}x"
        if f"runs{suffix}" not in result:
            continue
        fit = " / ".join(f"{result[f'fit_seconds_{role}{suffix}']:.1f} s" for role in ("performance", "refit", "cost"))
        predict = " / ".join(
            f"{result[f'predict_seconds_1000_{role}{suffix}']:.2f} s" for role in ("performance", "refit")
        )
        data = f"`{result['metadataset']}`" if factor == 1 else f"{factor}x (resampled)"
        lines.append(f"| {data} | {result[f'runs{suffix}']:,} | {fit} | {predict} |")
    return "\n".join(lines)


def feature_correlations_v2() -> str:
    result = _json("metadata/v2.features.json")
    lines = [
        "| task feature | best learning rate (log) | best LoRA rank | best batch size |",
        "|---|---|---|---|",
    ]
    for name, row in result["correlations"].items():
        p = result["p_values"][name]
        cells = [
            "–" if row[k] is None else f"{row[k]:+.2f}" + (" *" if p[k] < 0.05 else "")
            for k in ("learning_rate", "lora_rank", "batch_size")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Spearman's rho across the {result['tasks']} tasks; * p < 0.05 (no correction for the "
              f"{3 * len(result['correlations'])} tests)."]  # fmt: skip
    return "\n".join(lines)


def metadata_v2() -> str:
    """Experience v2 per task, from ``metadata summary --json`` (assets/metadata/v2.summary.json), and its checks."""
    result = _json("metadata/v2.summary.json")
    lines = [
        "| task | family | train examples | runs | failures | best | median | default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["per_task"]:
        default = "–" if row["default"] is None else f"{row['default']:.3f}"
        lines.append(
            f"| {row['task']} | {row['family']} | {row['train_examples']} | {row['runs']} | {row['failures']} "
            f"| {row['best']:.3f} | {row['median']:.3f} | {default} |"
        )
    checks = ", ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in result["checks"].items())
    failures = f"{result['failures']} failure" + ("" if result["failures"] == 1 else "s")
    lines += [
        "",
        f"{result['tasks']} tasks of {result['families']} families, {result['runs']:,} runs, {failures}; "
        f"{result['shared_configs']} shared configs, at least {result['own_configs_min']} own per task; "
        f"{result['cpu_hours']:.1f} CPU-hours, {result['seconds_per_run']:.1f} s per run. Mean pairwise Spearman "
        f"{result['mean_rank_correlation']:.2f}; portfolio top-1 share {result['portfolio_top1_share']:.3f}; "
        f"{result['distinct_best']} distinct best shared configs; default best on {result['default_best_share']:.3f} "
        f"of tasks. Checks: {checks}.",
    ]
    return "\n".join(lines[:-1] + textwrap.wrap(lines[-1], 116))


def demo() -> str:
    """The README demo's outcome (``runs/demo/tune/result.json`` as recorded in assets/evaluate/demo.json)."""
    result = _json("evaluate/demo.json")
    from lit_transfer.space import PipelineConfig

    default = result["default"]
    chosen, usual = PipelineConfig(result["config"]).brief(), PipelineConfig(default["config"]).brief()
    return "\n".join(
        [
            "| config | epochs | val/acc | test/acc | test/loss |",
            "|---|---|---|---|---|",
            f"| chosen by Transfer: {chosen} | {result['epochs']} | {result['val']:.3f} "
            f"| {result['test']['test/acc']:.3f} | {result['test']['test/loss']:.3f} |",
            f"| default: {usual} | {default['epochs']} | {default['val']:.3f} "
            f"| {default['test']['test/acc']:.3f} | {default['test']['test/loss']:.3f} |",
            "",
            *textwrap.wrap(f"Why: {result['why']}.", 116),
        ]
    )


def _before_any_observation(r: dict) -> list[str]:
    """The coverage row before any observation, where the record has it (older records do not)."""
    if r.get("coverage_95_before") is None:
        return []
    return [f"| ... before any observation | {r['coverage_95_before']:.3f} | goal 0.85–0.99 |"]


def _surrogate_means(r: dict) -> list[str]:
    """The means over held-out tasks of a ``surrogate evaluate`` record, beside their baselines."""
    return [
        "| mean over tasks | surrogate | baseline |",
        "|---|---|---|",
        f"| tau zero-shot | {r['tau_zero_shot']:.3f} | kNN {r['baseline_tau_knn']:.3f} |",
        f"| Spearman zero-shot | {r['spearman_zero_shot']:.3f} | kNN {r['baseline_spearman_knn']:.3f} |",
        f"| tau zero-shot, shared configs | {r['tau_zero_shot_shared']:.3f} | per-config mean "
        f"{r['baseline_tau_mean_config']:.3f} |",
        f"| tau after 1 epoch of every config | {r['tau_after_1']:.3f} | last value {r['baseline_tau_last_1']:.3f} |",
        f"| tau after 3 epochs | {r['tau_after_3']:.3f} | last value {r['baseline_tau_last_3']:.3f} |",
        f"| coverage of the 95% interval (0, 1 and 3 epochs of every config seen) | {r['coverage_95']:.3f} | goal "
        "0.85–0.99 |",
        *_before_any_observation(r),
        f"| top-1's recorded final val/acc | {r['top1_final']:.3f} | portfolio's top-1 "
        f"{r['portfolio_top1_final']:.3f} |",
        f"| tasks where top-1 ≥ portfolio's | {r['top1_at_least_portfolio_share']:.3f} | goal ≥ 0.6 |",
        f"| cost error (mean absolute, as a fraction) | {r['cost_mape']:.3f} | |",
        *_recorded_once(r),
    ]


def _recorded_once(r: dict) -> list[str]:
    """The rows on configs recorded once, where the record has them (the experience surrogate's, from this
    version on): a real candidate list is mostly such configs."""
    if r.get("once_recorded_error") is None:
        return []
    return [
        f"| configs recorded once (kept on one training task): error of the final | {r['once_recorded_error']:.3f} | "
        f"the same configs recorded everywhere {r['once_recorded_error_known']:.3f} |",
        f"| ... coverage of the 95% interval | {r['once_recorded_coverage_95']:.3f} | recorded everywhere "
        f"{r['once_recorded_coverage_95_known']:.3f} |",
        f"| ... share of tasks whose top prediction is one of them | {r['once_recorded_top_share']:.3f} | |",
        f"| ... normalized regret of the top prediction | {r['once_recorded_top_regret']:.3f} | portfolio's first "
        f"recorded everywhere {r['once_recorded_portfolio_regret']:.3f} |",
    ]


def surrogate_loto_v2() -> str:
    """``surrogate evaluate --holdout task --json`` on v2 (assets/evaluate/surrogate_loto_v2.json): per family of
    the held-out tasks, and the means over tasks with their baselines."""
    result = _json("evaluate/surrogate_loto_v2.json")
    lines = ["| family of the held-out task | tau zero-shot | kNN tau | coverage 95% |", "|---|---|---|---|"]
    for family, row in result["per_family"].items():
        lines.append(
            f"| {family} | {row['tau_zero_shot']:.3f} | {row['baseline_tau_knn']:.3f} | {row['coverage_95']:.3f} |"
        )
    return "\n".join([*lines, "", *_surrogate_means(result)])


def surrogate_lofo_v2() -> str:
    """``surrogate evaluate --holdout family --json`` on v2 (assets/evaluate/surrogate_lofo_v2.json): per held-out
    family, and the means over tasks with their baselines."""
    result = _json("evaluate/surrogate_lofo_v2.json")
    lines = [
        "| held-out family | tau zero-shot | kNN tau | coverage 95% | on shared configs | on own configs |",
        "|---|---|---|---|---|---|",
    ]
    cell = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for family, row in result["per_family"].items():
        lines.append(
            f"| {family} | {cell(row['tau_zero_shot'])} | {cell(row['baseline_tau_knn'])} | "
            f"{cell(row['coverage_95'])} | {cell(row['coverage_95_shared'])} | {cell(row['coverage_95_own'])} |"
        )
    r = result
    lines += ["", *_surrogate_means(r)]
    if "tau_unobserved" in r:  # what the task's own epochs do to the configs it has not run
        lines += [
            "",
            "| portfolio's first n configs run k epochs each (n,k) | tau of the configs not run | zero-shot tau, same "
            "configs | shared ones: surrogate | shared ones: per-config mean | coverage 95% after |",
            "|---|---|---|---|---|---|",
        ]
        for setting in r["tau_unobserved"]:
            lines.append(
                f"| {setting} | {cell(r['tau_unobserved'][setting])} | {cell(r['tau_unobserved_zero_shot'][setting])} "
                f"| {cell(r['tau_unobserved_shared'][setting])} | {cell(r['tau_unobserved_mean_config'][setting])} "
                f"| {cell(r['coverage_95_after'][setting])} |"
            )
        per_family = r["coverage_95_per_family"]
        lines += [
            "",
            *textwrap.wrap(
                "Coverage of the 95% intervals per held-out family, before any observation / after the portfolio's "
                "first 3 configs ran 3 epochs each: "
                + "; ".join(f"{f} {v['before']:.3f} / {v['after']:.3f}" for f, v in per_family.items())
                + ".",
                116,
            ),
        ]
    if "coverage_95_before_one_width" in r:  # could one interval width serve every family before observations?
        one, width = r["coverage_95_before_one_width"], r["coverage_95_before_width_per_family"]
        lines += [
            "",
            *textwrap.wrap(
                "Before any observation, the multiples of the stated 95% intervals that would cover 85% and 99% of "
                "each family's results: "
                + "; ".join(f"{f} {w['for_0.85']:.2f}-{w['for_0.99']:.2f}" for f, w in width.items())
                + f". One multiple for all puts at most {one['families_inside']} of the {one['families']} families "
                f"within 0.85-0.99 ({one['multiple']:.2f}; as stated, {one['families_inside_as_stated']}).",
                116,
            ),
        ]
    return "\n".join(lines)


def tune_vs_default_v2() -> str:
    """Real tuning on new tasks (``tools/tune_vs_default.py --record``, assets/evaluate/tune_vs_default_v2.json)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tune_vs_default", ROOT / "tools" / "tune_vs_default.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    result = _json("evaluate/tune_vs_default_v2.json")
    pairs = len(result["tasks"])
    seeds = ", ".join(str(s) for s in result["seeds"])
    return "\n".join(
        [
            tool.format_table(result),
            "",
            *textwrap.wrap(
                f"Budget {result['budget_epochs']} epochs per method and (task, seed) pair, task seeds {seeds}, "
                f"holdout {result['holdout']}; Transfer's test accuracy at least Portfolio's on "
                f"{result['transfer_at_least_portfolio']} of {pairs} pairs.",
                116,
            ),
        ]
    )


def parallel_tuning(file: str = "bench/parallel.json") -> str:
    result = _json(file)
    seeded = ", ".join(m.title() for m in result["methods"] if m != "transfer")
    lines = [
        f"Replayed on `{result['metadataset']}`, leaving one {result['holdout']} out, {result['budget_epochs']}-epoch "
        "budget; Transfer once per task (the seed does not change it)"
        + (f", {seeded} over {result['seeds']} seeds per task." if seeded else "."),
        "",
        "| method | workers | speedup (ideal = workers) | time vs 1 worker | at most, had the winner never waited "
        "| (task, seed) pairs | not reached |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, by_workers in result["methods"].items():
        for workers, entry in by_workers.items():
            speedup = entry["speedup"]
            cells = ["–", "–"] if speedup is None else [f"{speedup:.2f}", f"{1 / speedup:.2f}x"]
            unpaused = (
                "–" if workers == "1" or entry["speedup_unpaused"] is None else f"{entry['speedup_unpaused']:.2f}"
            )
            lines.append(
                f"| {method} | {workers} | {cells[0]} | {cells[1]} | {unpaused} | {entry['pairs']} "
                f"| {entry['not_reached']} |"
            )
    bounds = ", ".join(f"{m} {by['1']['chain_bound']:.2f}" for m, by in result["methods"].items())
    lines += ["", f"Chain bound (one worker's winning configs alone, from the start, never paused): {bounds}."]
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "parallel-tuning": parallel_tuning,
    "parallel-tuning-lofo": lambda: parallel_tuning("bench/parallel_lofo.json"),
    "evaluate-loto": evaluate_loto,
    "evaluate-lofo": evaluate_lofo,
    "run-overhead": run_overhead,
    "help-times": help_times,
    "surrogate-speed": surrogate_speed,
    "feature-correlations-v2": feature_correlations_v2,
    "metadata-v2": metadata_v2,
    "demo": demo,
    "surrogate-lofo-v2": surrogate_lofo_v2,
    "surrogate-loto-v2": surrogate_loto_v2,
    "tune-vs-default-v2": tune_vs_default_v2,
}


def blocks(text: str) -> dict[str, str]:
    """The tables the README holds, by name."""
    return {m["name"]: m["body"].strip() for m in BLOCK.finditer(text)}


def rendered(text: str) -> str:
    """``text`` with every table regenerated from its files."""

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"README table {name!r} has no generator in tools/readme_tables.py")
        return f"{match.group(1)}{TABLES[name]()}\n{match.group(4)}"

    return BLOCK.sub(replace, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the pages' tables in place")
    args = parser.parse_args()
    for page in PAGES:
        text = page.read_text()
        new = rendered(text)
        if args.write:
            page.write_text(new)
        state = "up to date" if new == text else "rewritten" if args.write else "out of date (run with --write)"
        print(f"{page.relative_to(ROOT)}: {len(blocks(text))} tables, {state}")


if __name__ == "__main__":
    main()
