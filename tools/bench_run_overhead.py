"""How much of a run's wall time is setup rather than training and validation: cold runs against warm ones.

On the shipped base model and one shipped task, a build of N runs (each to the last epoch, no checkpoints) and a
``tune`` of M freeze-thaw steps (round robin over a few configs, one more epoch each, with checkpoints), each done
two ways in this process, interleaved run by run:
- cold: every run loads the base model and tokenizer from disk and tokenizes the task again (a fresh process, as
  every run and step did before warm workers);
- warm: the worker keeps the base model, tokenizer and tokenized task (``lit_transfer.finetune.warm``).
Overhead share = the share of wall seconds outside training and validation steps (``StepTimer``), over all build
runs and tune steps of a kind; seconds per run are medians. The last line is one JSON object.

    python tools/bench_run_overhead.py            # 8 build runs and 16 tune steps of each kind
    python tools/bench_run_overhead.py --record   # also write assets/bench/run_overhead.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lit_transfer.quiet import silence

# before the imports below (bitsandbytes logs on import), and again in main: importing Lightning resets
# its logging level
silence()

from lit_transfer.finetune import warm  # noqa: E402
from lit_transfer.finetune.run import RunSettings, train  # noqa: E402
from lit_transfer.finetune.timing import StepTimer  # noqa: E402
from lit_transfer.metadataset.tasks import select_tasks, suite_world, write_tasks  # noqa: E402
from lit_transfer.space import SearchSpace  # noqa: E402
from lit_transfer.tune.finetuning import FinetuneEvaluator  # noqa: E402
from lit_transfer.tune.methods.base import Trial  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> tuple[float, float]:
    """(wall seconds, share of them outside training and validation steps) of ``fn(timer)``."""
    timer = StepTimer()
    start = time.perf_counter()
    fn(timer)
    wall = time.perf_counter() - start
    return wall, 1.0 - timer.step_seconds / wall


def build_run(config, data: str, settings: RunSettings, root: Path, cold: bool):
    def go(timer: StepTimer) -> None:
        folder = Path(tempfile.mkdtemp(dir=root))
        try:
            train(config, data, settings, folder, checkpoints=False, callbacks=[timer])
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    if cold:
        with warm.cold():
            return timed(go)
    return timed(go)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_model", default=str(ROOT / "assets/models/world-phi3-v2"))
    parser.add_argument("--suite", default="v2")
    parser.add_argument("--task", default="entity_type-l1-n64", help="a task of --suite (the smallest v2 ones: n64)")
    parser.add_argument("--runs", type=int, default=8, help="build runs of each kind")
    parser.add_argument("--steps", type=int, default=16, help="tune steps of each kind")
    parser.add_argument("--trials", type=int, default=4, help="configs the tune steps go round")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of a build run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="write assets/bench/run_overhead.json")
    args = parser.parse_args()
    silence()
    torch.set_num_threads(args.threads)

    root = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    (data,) = write_tasks(root / "tasks", select_tasks([args.task], suite=args.suite), world=suite_world(args.suite))
    space = SearchSpace.from_yaml()
    space.max_epochs = args.epochs
    configs = [space.default(), *space.sample(max(args.runs, args.trials) - 1, seed=1)]
    settings = RunSettings(args.base_model, max_epochs=args.epochs)

    build: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    warm.clear()
    build_run(configs[0], str(data), settings, root, cold=False)  # a warm worker has done one run before
    for i in range(args.runs):
        order = ("cold", "warm") if i % 2 == 0 else ("warm", "cold")  # which goes first alternates
        for kind in order:
            build[kind].append(build_run(configs[i], str(data), settings, root, cold=kind == "cold"))
            print(f"build run {i + 1}/{args.runs} {kind}: {build[kind][-1][0]:.1f} s, "
                  f"overhead {build[kind][-1][1]:.1%}", flush=True)  # fmt: skip

    tune: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    evaluators = {kind: FinetuneEvaluator(str(data), settings, str(root / f"tune-{kind}")) for kind in tune}
    for step in range(args.steps):
        config = configs[step % args.trials]
        trial = Trial(dict(config.values), step // args.trials + 1)
        order = ("cold", "warm") if step % 2 == 0 else ("warm", "cold")
        for kind in order:

            def go(timer: StepTimer, kind=kind, trial=trial) -> None:
                evaluators[kind].callbacks = [timer]
                evaluators[kind].run(trial)

            if kind == "cold":
                with warm.cold():
                    tune[kind].append(timed(go))
            else:
                tune[kind].append(timed(go))
            print(f"tune step {step + 1}/{args.steps} {kind}: {tune[kind][-1][0]:.1f} s, "
                  f"overhead {tune[kind][-1][1]:.1%}", flush=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)

    def median(values: list[tuple[float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    def pooled(values: list[tuple[float, float]]) -> float:
        """Share of all wall seconds spent outside steps (each run or step weighted by its length)."""
        return sum(wall * share for wall, share in values) / sum(wall for wall, _ in values)

    lines = {}
    for name, runs, unit in (("build_runs", build, "run"), ("tune_steps", tune, "step")):
        seconds = f"{median(runs['cold'], 0):.1f} s -> {median(runs['warm'], 0):.1f} s per {unit} (medians)"
        shares = f"outside steps {pooled(runs['cold']):.1%} -> {pooled(runs['warm']):.1%}"
        lines[name] = f"{name.replace('_', ' ')}: {seconds}; {shares}"
        print(lines[name])
    result = {
        "overhead_share_before": round(pooled(build["cold"] + tune["cold"]), 4),
        "overhead_share_after": round(pooled(build["warm"] + tune["warm"]), 4),
        "seconds_per_run_before": round(median(build["cold"], 0), 3),
        "seconds_per_run_after": round(median(build["warm"], 0), 3),
    }
    if args.record:
        from lit_transfer.io import write_json_atomic
        from lit_transfer.resources import ASSETS

        note = (
            f"tools/bench_run_overhead.py on {Path(args.base_model).name} and task {args.task} ({args.suite}): "
            f"{args.runs} build runs of {args.epochs} epochs and {args.steps} tune steps each way, interleaved"
        )
        write_json_atomic(ASSETS / "bench" / "run_overhead.json", {**result, "note": note, **lines})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
