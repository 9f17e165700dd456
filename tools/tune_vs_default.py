"""End to end on a task no meta-dataset run has seen: ``tune`` with real finetuning under a time budget, killed
with SIGKILL part-way and resumed by the same command; then the default pipeline trained for as many epochs as
the chosen config had, and both tested on the task's test split.

    python tools/tune_vs_default.py --task yes_no --seed 1 --budget 600     # table, then one JSON line

The task is one of the shipped suite's families with its examples drawn with ``--seed`` (the shipped
meta-dataset used seed 0). The JSON line holds ``chosen_test_acc``, ``default_test_acc``, ``epochs``,
``steps_before_kill``, ``steps``, ``resumed_intact`` (the history before the kill is a prefix of the final one)
and ``repeated_steps`` (a config's epoch trained twice).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lit_transfer.metadataset.store import SHIPPED_METADATASET
from lit_transfer.metadataset.tasks import select_tasks, write_tasks
from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.tune.commands import experience_settings
from lit_transfer.tune.finetuning import FinetuneEvaluator
from lit_transfer.tune.loop import load_state
from lit_transfer.tune.methods.base import Trial

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the environment every tune run gets


def tune_command(data: Path, out: Path, budget: float, seed: int) -> list[str]:
    return [
        sys.executable, "-m", "lit_transfer", "tune", "--config", str(ROOT / "configs/tune/transfer.yaml"),
        "--data", str(data), "--budget", str(budget), "--out", str(out), "--seed", str(seed),
    ]  # fmt: skip


def tune_with_a_kill(command: list[str], state: Path, kill_at: float, log: Path) -> int:
    """Run ``command`` until its state has spent ``kill_at`` seconds, SIGKILL it, and return the steps it kept."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=OFFLINE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        while not (state.exists() and load_state(state).spent >= kill_at):
            if process.poll() is not None:
                raise RuntimeError(f"tune ended before the kill (exit {process.returncode}); see {log}")
            time.sleep(0.5)
        time.sleep(2.0)  # into the next trial: the kill lands mid-training
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return len(load_state(state).history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="yes_no", help="family of the shipped suite")
    parser.add_argument("--seed", type=int, default=1, help="seed drawing the task's examples (not 0)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training for tune")
    parser.add_argument("--kill_fraction", type=float, default=0.5, help="share of the budget spent at the kill")
    parser.add_argument("--out", default="runs/tune_vs_default")
    args = parser.parse_args()
    if args.seed == 0:
        parser.error("seed 0 draws the shipped meta-dataset's own tasks; use another seed")

    out = Path(args.out) / f"{args.task}-seed{args.seed}"
    (data,) = write_tasks(out / "tasks", select_tasks([args.task], args.seed))
    command = tune_command(data, out / "tune", args.budget, args.seed)
    state = out / "tune" / "state.json"
    before = load_state(state).history if state.exists() else []
    if not before:
        tune_with_a_kill(command, state, args.kill_fraction * args.budget, out / "tune_killed.log")
        before = load_state(state).history
    with open(out / "tune.log", "w") as log:
        subprocess.run(command, env=OFFLINE, stdout=log, stderr=subprocess.STDOUT,
                       check=True)  # fmt: skip
    after = load_state(state).history
    trained = [(s.config_key, s.fidelity) for s in after]
    chosen = json.loads((out / "tune" / "result.json").read_text())
    if chosen["config"] is None:
        sys.exit(f"tune chose nothing: {chosen['message']} (raise --budget)")

    space = SearchSpace.from_yaml()
    settings = experience_settings(SHIPPED_METADATASET, space, seed=args.seed)
    default = FinetuneEvaluator(str(data), settings, str(out / "default"))
    default_config = dict(space.default().values)
    default.run(Trial(default_config, chosen["epochs"]))
    default_test = default.test(default_config)

    result = {
        "task": args.task, "seed": args.seed, "budget_seconds": args.budget, "spent_seconds": chosen["spent"],
        "steps": len(after), "steps_before_kill": len(before), "resumed_intact": after[: len(before)] == before,
        "repeated_steps": len(trained) - len(set(trained)), "configs_tried": len({k for k, _ in trained}),
        "chosen_config": chosen["config"], "epochs": chosen["epochs"], "chosen_val_acc": chosen["val"],
        "chosen_test_acc": chosen["test"]["test/acc"], "default_test_acc": default_test["test/acc"],
        "default_is_chosen": PipelineConfig(chosen["config"]).key() == PipelineConfig(default_config).key(),
    }  # fmt: skip
    print(f"{args.task} (seed {args.seed}), {args.budget:.0f} s budget, {result['steps']} steps "
          f"({result['steps_before_kill']} before SIGKILL), {result['configs_tried']} configs")  # fmt: skip
    print(f"  chosen  : test/acc {result['chosen_test_acc']:.3f} after {result['epochs']} epochs")
    print(f"  default : test/acc {result['default_test_acc']:.3f} after {result['epochs']} epochs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
