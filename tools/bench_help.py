"""How long ``--help`` takes for every command, against importing torch alone (the floor of any command that trains).

    python tools/bench_help.py            # table
    python tools/bench_help.py --json     # {"commands": {"tune": seconds, ...}, "import_torch": seconds, ...}
    python tools/bench_help.py --record   # also write assets/bench/help.json

Each measurement is a fresh interpreter (``python -m lit_transfer COMMAND --help``); commands and the baseline are
interleaved, ``--repeats`` rounds, medians. The goal is under 2 s for every command. The Trainer commands (``fit``,
``validate``, ``test``) list Lightning's own options, which takes importing Lightning the first time; the text is
then kept in the user's cache (``lit_transfer.trainer_help``). Both are measured, each in a cache folder of its own:
``first`` with an empty cache every time, the ``commands`` figure as every later call finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [
    [], ["metadata", "build"], ["metadata", "tasks"], ["metadata", "summary"], ["surrogate", "train"],
    ["surrogate", "evaluate"], ["suggest"], ["tune"], ["evaluate"], ["fit"], ["validate"], ["test"],
]  # fmt: skip
GOAL_SECONDS = 2.0
TRAINER_COMMANDS = ("fit", "validate", "test")


def seconds(argv: list[str], cache: str | None = None) -> float:
    """Wall seconds of ``python ARGV``, with ``cache`` as the user's cache folder (default: a fresh, empty one)."""
    with tempfile.TemporaryDirectory(prefix="bench-help-") as empty:
        env = {**os.environ, "XDG_CACHE_HOME": cache or empty}
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env)  # fmt: skip
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--commands", nargs="*", default=None, help="e.g. tune 'metadata build' (default: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--record", action="store_true", help="write assets/bench/help.json")
    args = parser.parse_args()
    commands = COMMANDS if args.commands is None else [c.split() for c in args.commands]
    times: dict[str, list[float]] = {" ".join(c) or "(top level)": [] for c in commands}
    first: dict[str, list[float]] = {" ".join(c): [] for c in commands if c and c[0] in TRAINER_COMMANDS}
    baseline: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-help-kept-") as kept:
        for _ in range(args.repeats):
            baseline.append(seconds(["-c", "import torch"]))
            for command in commands:
                name, argv = " ".join(command) or "(top level)", ["-m", "lit_transfer", *command, "--help"]
                if name in first:
                    first[name].append(seconds(argv))  # an empty cache: Lightning imported
                    if len(first[name]) == 1:
                        seconds(argv, kept)  # keep this command's text once, outside the measurements
                times[name].append(seconds(argv, kept))
    torch_seconds = statistics.median(baseline)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "commands": medians,
        "first": {name: statistics.median(values) for name, values in first.items()},
        "import_torch": torch_seconds,
        "ratio_to_import_torch": {name: value / torch_seconds for name, value in medians.items()},
        "slowest": max(medians.values()) if medians else None,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": bool(medians) and max(medians.values()) < GOAL_SECONDS,
        "repeats": args.repeats,
    }
    if args.record:
        from lit_transfer.io import write_json_atomic
        from lit_transfer.resources import ASSETS

        write_json_atomic(ASSETS / "bench" / "help.json", result)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'command':<20} {'--help s':>9} {'x import torch':>15} {'first call s':>13}")
    for name, value in medians.items():
        once = f"{result['first'][name]:>13.2f}" if name in result["first"] else f"{'':>13}"
        print(f"{name:<20} {value:>9.2f} {value / torch_seconds:>15.2f} {once}")
    print(f"{'import torch':<20} {torch_seconds:>9.2f}")
    verdict = "met" if result["goal_met"] else "missed"
    print(f"slowest command: {result['slowest']:.2f} s (goal < 2 s: {verdict})")


if __name__ == "__main__":
    main()
