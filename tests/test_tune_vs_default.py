"""``tools/tune_vs_default.py``: Transfer, Portfolio and Default tuned for real at one epoch budget on a task the
experience never saw, its family held out of the experience."""

import json

import pytest
from conftest import load_tool, short_recipe

from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.resources import ASSETS

MICRO = str(ASSETS / "metadata" / "micro.sqlite")  # the first experience: suite v1's tasks, small and fast


@pytest.mark.slow
def test_methods_get_the_same_epoch_budget_on_a_held_out_family(tmp_path, capsys):
    tool = load_tool("tune_vs_default")
    out, record = tmp_path / "out", tmp_path / "result.json"
    argv = [
        "--tasks", "yes_no", "--suite", "v1", "--seeds", "1", "--budget", "2", "--holdout", "family",
        "--out", str(out), "--record", str(record), "--perf_config", short_recipe(tmp_path, "performance", 1),
        "--cost_config", short_recipe(tmp_path, "cost", 5), "--metadataset", MICRO,
    ]  # fmt: skip
    tool.main(argv)
    summary = json.loads(record.read_text())
    (row,) = summary["tasks"]
    assert row["task"] == "yes_no" and row["test_examples"] == 64
    for method in ("transfer", "portfolio", "default"):
        chosen = row[method]
        assert chosen["steps"] <= 2 and 1 <= chosen["epochs"] <= 2  # the same budget for every method
        assert 0.0 <= chosen["test_acc"] <= 1.0 and chosen["test_loss"] > 0
        assert chosen["correct"] == round(chosen["test_acc"] * 64)
    assert summary["correct_total"] == {m: row[m]["correct"] for m in ("transfer", "portfolio", "default")}
    assert summary["transfer_at_least_portfolio"] in (0, 1)
    with MetaDataset(out / "experience" / "without-yes_no.sqlite") as experience:
        assert "yes_no" not in experience.tasks() and len(experience.tasks()) == 7
    with MetaDataset(MICRO) as shipped:
        assert "yes_no" in shipped.tasks()  # the shipped experience is untouched
    assert "| correct answers |" in capsys.readouterr().out

    tool.main(argv)  # every method resumes from its finished result: nothing runs again
    assert json.loads(record.read_text()) == summary
    with pytest.raises(ValueError, match="seed 0"):
        tool.compare(["yes_no"], "v1", [1, 0], 2, out, MICRO)
