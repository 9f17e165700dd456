import json
import subprocess
import sys

import pytest

from lit_transfer.metadataset.store import MetaDataset, RunRecord
from lit_transfer.metadataset.summary import summarize
from lit_transfer.space import SearchSpace

SPACE = SearchSpace.from_yaml()
CONFIGS = [SPACE.default(), *SPACE.sample(4, seed=0)]
# final val/acc per task and config; task c ranks configs in the reverse order of a
ACC = {"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.1, 0.3, 0.2, 0.5, 0.4], "c": [0.5, 0.4, 0.3, 0.2, 0.1]}


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "meta.sqlite"
    with MetaDataset(path, create=True) as store:
        for task, accs in ACC.items():
            store.add_task(task, {"size": 1.0})
            for config, acc in zip(CONFIGS, accs, strict=True):
                curve = [{"fidelity": float(e), "metrics": {"val/acc": acc * e / 2}} for e in (0, 1, 2)]
                store.add_run(RunRecord(task, dict(config.values), 0, "m", 2, "ok", curve=curve, seconds=1.0))
        store.add_run(RunRecord("a", dict(CONFIGS[1].values), 1, "m", 2, "diverged", message="NaN"))
    return path


def test_summary_numbers(store_path):
    with MetaDataset(store_path) as store:
        summary = summarize(store, SPACE.default().key())
    a = summary["per_task"][0]
    assert (a["task"], a["runs"], a["failures"]) == ("a", 6, 1)
    assert a["best"] == pytest.approx(0.5) and a["default"] == pytest.approx(0.1)
    # config 1's failed seed counts as 0, so it scores (0.2 + 0) / 2 = 0.1: median of (0.1, 0.1, 0.3, 0.4, 0.5)
    assert a["median"] == pytest.approx(0.3)
    # spearman: a-b 0.8, a-c -1.0, b-c -0.8 -> mean -1/3
    assert summary["mean_rank_correlation"] == pytest.approx((0.8 - 1.0 - 0.8) / 3, abs=0.02)
    assert (summary["tasks"], summary["runs"], summary["failures"]) == (3, 16, 1)


def test_summary_cli_json_and_table(store_path):
    run = [sys.executable, "-m", "lit_transfer", "metadata", "summary", str(store_path)]
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert set(data) == {"tasks", "runs", "failures", "mean_rank_correlation", "per_task"}
    assert set(data["per_task"][0]) == {"task", "runs", "failures", "best", "median", "default"}
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "| a | 6 | 1 | 0.500 | 0.300 | 0.100 |" in table


def test_summary_of_a_foreign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_text("nope" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "lit_transfer", "metadata", "summary", str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not an SQLite meta-dataset" in result.stderr
