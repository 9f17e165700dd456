"""How long ``--help`` takes for every command, against importing torch alone (the floor of any command that trains).

    python tools/bench_help.py            # table
    python tools/bench_help.py --json     # {"commands": {"tune": seconds, ...}, "import_torch": seconds, ...}

Each measurement is a fresh interpreter (``python -m lit_transfer COMMAND --help``); commands and the baseline are
interleaved, ``--repeats`` rounds, medians. The goal is under 2 s for every command but the Trainer commands
(``fit``, ``validate``, ``test``), whose options are Lightning's own and need Lightning imported to be listed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = [
    [], ["metadata", "build"], ["metadata", "tasks"], ["metadata", "summary"], ["surrogate", "train"],
    ["surrogate", "evaluate"], ["suggest"], ["tune"], ["evaluate"], ["fit"],
]  # fmt: skip
GOAL_SECONDS = 2.0
TRAINER_COMMANDS = ("fit", "validate", "test")


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--commands", nargs="*", default=None, help="e.g. tune 'metadata build' (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    commands = COMMANDS if args.commands is None else [c.split() for c in args.commands]
    times: dict[str, list[float]] = {" ".join(c) or "(top level)": [] for c in commands}
    baseline: list[float] = []
    for _ in range(args.repeats):
        baseline.append(seconds(["-c", "import torch"]))
        for command in commands:
            times[" ".join(command) or "(top level)"].append(seconds(["-m", "lit_transfer", *command, "--help"]))
    torch_seconds = statistics.median(baseline)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ours = [value for name, value in medians.items() if name.split(" ")[0] not in TRAINER_COMMANDS]
    result = {
        "commands": medians,
        "import_torch": torch_seconds,
        "ratio_to_import_torch": {name: value / torch_seconds for name, value in medians.items()},
        "slowest_non_trainer": max(ours) if ours else None,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": bool(ours) and max(ours) < GOAL_SECONDS,
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'command':<20} {'--help s':>9} {'x import torch':>15}")
    for name, value in medians.items():
        print(f"{name:<20} {value:>9.2f} {value / torch_seconds:>15.2f}")
    print(f"{'import torch':<20} {torch_seconds:>9.2f}")
    verdict = "met" if result["goal_met"] else "missed"
    print(f"slowest command besides fit/validate/test: {result['slowest_non_trainer']:.2f} s (goal < 2 s: {verdict})")


if __name__ == "__main__":
    main()
