"""Every benchmark runs on today's shipped assets with its own code paths, at tiny sizes: a benchmark whose default
task left the suite, or whose interface drifted, fails here, not when someone needs its numbers. (What they
measure is measured by running them with their defaults, not by these tests.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "bench_help": ["--repeats", "1", "--commands", "tune", "fit", "--json"],
    "bench_finetune": ["--hidden", "32", "--layers", "1", "--heads", "2", "--seq", "32", "--batch", "2",
                       "--steps", "2", "--warmup", "1", "--repeats", "1"],
    "bench_precision": ["--device", "cpu", "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64",
                        "--vocab", "128", "--seq", "32", "--steps", "2", "--warmup", "1", "--rounds", "1"],
    "bench_run_overhead": ["--runs", "1", "--steps", "2", "--trials", "1", "--epochs", "1"],
    "bench_tune": ["--candidates", "40", "--observed", "2", "--repeats", "1", "--methods", "transfer", "--json"],
    "bench_surrogate": ["--factors", "1", "--json"],
}  # fmt: skip


def test_every_benchmark_is_smoke_tested():
    assert {p.stem for p in (REPO / "tools").glob("bench_*.py")} == {*TINY, "bench_parallel"}


def _run(tool: str, *args: str, cwd: Path = REPO) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / f"{tool}.py"), *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # every benchmark ends with one JSON line


@pytest.mark.slow
@pytest.mark.parametrize("tool", sorted(TINY))
def test_a_benchmark_runs_on_the_shipped_assets(tool):
    assert _run(tool, *TINY[tool])


@pytest.mark.slow
def test_the_parallel_benchmark_runs_on_a_small_experience(tmp_path):
    from conftest import write_synthetic_metadataset

    metadataset = write_synthetic_metadataset(tmp_path / "m.sqlite", tasks=("a-1", "b-1", "c-1"), configs=8)
    line = _run(
        "bench_parallel", "--metadataset", str(metadataset), "--out", str(tmp_path / "out"), "--workers", "1", "2",
        "--seeds", "1", "--budget_epochs", "8",
    )  # fmt: skip
    assert set(line) == {"speedup_2"}
