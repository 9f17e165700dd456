"""Every shipped YAML parses against the code, so a config cannot drift from the class it configures."""

from pathlib import Path

import pytest
from lightning.pytorch.cli import LightningCLI

from lit_transfer import cli

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


class ParseOnlyCLI(LightningCLI):
    """Parses and type-checks a config against the class signatures without loading any model."""

    def instantiate_classes(self) -> None:
        pass


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_parses_against_code(config, monkeypatch):
    monkeypatch.setattr(cli, "LightningCLI", ParseOnlyCLI)
    parsed = cli.trainer_cli(["--config", str(config)], run=False).config
    assert parsed.model.class_path.startswith("lit_transfer.")
    assert parsed.data.class_path.startswith("lit_transfer.")


def test_a_drifted_config_is_rejected(tmp_path, monkeypatch):
    config = tmp_path / "bad.yaml"
    text = (CONFIGS[0].parent / "tiny_lora.yaml").read_text().replace("lora_rank:", "lora_rnak:")
    config.write_text(text)
    monkeypatch.setattr(cli, "LightningCLI", ParseOnlyCLI)
    with pytest.raises(SystemExit):
        cli.trainer_cli(["--config", str(config)], run=False)


def test_configs_found():
    names = {p.name for p in CONFIGS}
    assert {"tiny_lora.yaml", "phi3_mini_lora.yaml"} <= names
