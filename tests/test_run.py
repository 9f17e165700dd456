"""The one run path: warm runs equal cold ones, and the fit YAML of a recorded config reproduces its record."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from lit_transfer.finetune import warm
from lit_transfer.finetune.run import RunSettings, fit_config, train
from lit_transfer.metadataset.build import BuildPlan, build
from lit_transfer.metadataset.tasks import TaskSpec
from lit_transfer.space import PipelineConfig, SearchSpace
from lit_transfer.tune.commands import experience_settings

PIPELINE = {"lora_rank": 4, "lora_alpha_ratio": 2.0, "learning_rate": 3e-3, "batch_size": 8, "lora_dropout": 0.1}


def _values(points):
    return [(p["fidelity"], p["metrics"]) for p in points]


def test_warm_runs_train_exactly_like_cold_ones(tmp_path, tiny_model, qa_dir):
    settings = RunSettings(tiny_model, max_epochs=2, max_length=96, eval_batch_size=8)
    pipeline = PipelineConfig(PIPELINE)
    with warm.cold():
        cold = train(pipeline, str(qa_dir), settings, tmp_path / "cold", checkpoints=False)
    warm.clear()
    first = train(pipeline, str(qa_dir), settings, tmp_path / "warm1", checkpoints=False)
    second = train(pipeline, str(qa_dir), settings, tmp_path / "warm2", checkpoints=False)  # from the caches
    assert cold["status"] == first["status"] == second["status"] == "ok"
    assert _values(cold["points"]) == _values(first["points"]) == _values(second["points"])


def test_a_changed_data_file_is_tokenized_again(tmp_path, tiny_model, qa_dir):
    import shutil

    from lit_transfer.finetune import QADataModule

    data = tmp_path / "qa"
    shutil.copytree(qa_dir, data)
    first = QADataModule(str(data), tokenizer=tiny_model, max_length=96)
    first.setup("fit")
    lines = (data / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[:3]) + "\n")
    second = QADataModule(str(data), tokenizer=tiny_model, max_length=96)
    second.setup("fit")
    assert len(second.splits["train"]) == 3 < len(first.splits["train"])


@pytest.mark.slow
def test_the_fit_yaml_of_a_recorded_config_reproduces_its_curve(tmp_path, tiny_model):
    """What ``suggest`` writes for a config is what the builder measured: same curve to 1e-5 via ``fit``."""
    space = SearchSpace.from_yaml().to_dict()
    space["max_epochs"] = 2
    space["hyperparameters"]["quantization"] = {"kind": "categorical", "choices": ["none"], "default": "none"}
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    plan = BuildPlan(
        out=str(tmp_path / "meta.sqlite"), base_model=tiny_model, tasks_dir=str(tmp_path / "tasks"),
        tasks=[TaskSpec("sums", "arithmetic", train=24, validation=8, test=8)], space=str(space_path),
        shared_configs=2, workers=1, max_length=96, eval_batch_size=8,
    )  # fmt: skip
    with build(plan, progress=False) as store:
        (record,) = [r for r in store.runs() if r.status == "ok"][:1]
    settings = experience_settings(plan.out, SearchSpace.from_yaml(space_path), tiny_model)
    fit = fit_config(PipelineConfig(record.config), str(tmp_path / "tasks" / "sums"), settings, str(tmp_path / "fit"))
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(fit, sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "lit_transfer", "fit", "--config", str(tmp_path / "fit.yaml")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    points = json.loads((tmp_path / "fit" / "curve.json").read_text())["points"]
    assert [p["fidelity"] for p in points] == [p["fidelity"] for p in record.curve]
    for mine, recorded in zip(points, record.curve, strict=True):
        for name, value in recorded["metrics"].items():
            assert mine["metrics"][name] == pytest.approx(value, abs=1e-5), name


def test_experience_recorded_before_the_prompt_template_setting_is_read_as_qa_v1(tmp_path):
    """The first experience was trained with the space in the prompt; its recorded settings, which name no
    template, must reproduce that, while new runs use ``qa``."""
    from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError

    assert RunSettings("m").prompt_template == "qa"
    assert RunSettings.from_dict({"base_model": "m"}).prompt_template == "qa-v1"
    assert RunSettings.from_dict({"base_model": "m", "prompt_template": "qa"}).prompt_template == "qa"
    config = fit_config(SearchSpace.from_yaml().default(), "d", RunSettings("m"), "r")
    assert config["data"]["init_args"]["prompt_template"] == "qa"
    with MetaDataset(tmp_path / "old.sqlite", create=True) as store:
        legacy = {k: v for k, v in RunSettings("m").to_dict().items() if k not in ("seed", "prompt_template")}
        store.check_run_settings(legacy)
        store.check_run_settings({**legacy, "prompt_template": "qa-v1"})  # what it was trained with
        with pytest.raises(MetaDatasetError, match="prompt_template: recorded 'qa-v1', planned 'qa'"):
            store.check_run_settings({**legacy, "prompt_template": "qa"})
