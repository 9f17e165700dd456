"""Every shipped YAML parses against the code, so a config cannot drift from the class it configures."""

from pathlib import Path

import pytest
from jsonargparse import ArgumentError, ArgumentParser

from lit_transfer import cli
from lit_transfer.metadataset.build import BuildPlan
from lit_transfer.space import SearchSpace
from lit_transfer.trainer import TrainerCLI, trainer_cli
from lit_transfer.tune.methods import method_spec, registry

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FINETUNE = sorted((CONFIGS / "finetune").glob("*.yaml"))
METADATA = sorted((CONFIGS / "metadata").glob("*.yaml"))
SPACES = sorted((CONFIGS / "space").glob("*.yaml"))
SURROGATE = sorted((CONFIGS / "surrogate").glob("*.yaml"))
TUNE = sorted((CONFIGS / "tune").glob("*.yaml"))
EVALUATE = sorted((CONFIGS / "evaluate").glob("*.yaml"))


class ParseOnlyCLI(TrainerCLI):
    """Parses and type-checks a config against the class signatures without loading any model."""

    def instantiate_classes(self) -> None:
        pass


def test_every_config_is_checked():
    assert set(CONFIGS.rglob("*.yaml")) == set(FINETUNE + METADATA + SPACES + SURROGATE + TUNE + EVALUATE)
    assert {p.name for p in SURROGATE} == {"perf_experience.yaml", "perf_dkgp.yaml", "cost_mlp.yaml"}
    assert {"tiny_lora.yaml", "phi3_mini_lora.yaml"} <= {p.name for p in FINETUNE}


@pytest.mark.parametrize("config", FINETUNE + SURROGATE, ids=lambda p: p.name)
def test_trainer_config_parses_against_code(config):
    parsed = trainer_cli(["--config", str(config)], run=False, cli_class=ParseOnlyCLI).config
    assert parsed.model.class_path.startswith("lit_transfer.")
    assert parsed.data.class_path.startswith("lit_transfer.")


def test_a_drifted_config_is_rejected(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text((CONFIGS / "finetune" / "tiny_lora.yaml").read_text().replace("lora_rank:", "lora_rnak:"))
    with pytest.raises(ArgumentError, match="lora_rnak"):  # the command line turns it into one line, exit code 2
        trainer_cli(["--config", str(config)], run=False, cli_class=ParseOnlyCLI)


@pytest.mark.parametrize("config", METADATA, ids=lambda p: p.name)
def test_metadata_config_parses_against_build_plan(config):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_argument("--plan", type=BuildPlan)
    plan = parser.instantiate_classes(parser.parse_args(["--config", str(config)])).plan
    assert isinstance(plan, BuildPlan) and plan.shared_configs + plan.own_configs >= 32
    assert len(plan.task_specs()) >= 8


@pytest.mark.parametrize("config", SPACES, ids=lambda p: p.name)
def test_space_config_loads(config):
    space = SearchSpace.from_yaml(config)
    assert len(space) >= 10 and space.max_epochs >= 1


@pytest.mark.parametrize("config", TUNE, ids=lambda p: p.name)
def test_tune_config_parses_against_the_command(config):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_function_arguments(cli.tune)
    parsed = parser.instantiate_classes(parser.parse_args(["--config", str(config), "--data", "d", "--budget", "60"]))
    assert method_spec(parsed.method).name in registry()


@pytest.mark.parametrize("config", EVALUATE, ids=lambda p: p.name)
def test_evaluate_config_parses_against_the_plan(config):
    from lit_transfer.evaluation.tuning import EvaluationPlan

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_argument("--plan", type=EvaluationPlan)
    plan = parser.instantiate_classes(parser.parse_args(["--config", str(config)])).plan
    assert isinstance(plan, EvaluationPlan) and "transfer" in [m.name for m in plan.methods]


def test_paths_inside_shipped_configs_resolve_from_any_folder(tmp_path, monkeypatch):
    """A shipped recipe names ``configs/space/...`` and ``assets/metadata/...``; run from another folder, those are
    the packaged files (``fit --config configs/surrogate/perf_dkgp.yaml`` from anywhere)."""
    from pathlib import Path

    from lit_transfer.surrogate import MetaDataModule

    monkeypatch.chdir(tmp_path)
    assert len(SearchSpace.from_yaml("configs/space/default.yaml")) >= 10
    assert Path(MetaDataModule("assets/metadata/micro.sqlite").path).is_file()
