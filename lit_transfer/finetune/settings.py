"""What a run needs besides its pipeline (``RunSettings``), kept apart from the finetuning code so that plans and the
command line can name it without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# what run settings recorded before a setting existed meant: the first experience's prompt template
LEGACY_SETTINGS = {"prompt_template": "qa-v1"}


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides its pipeline; stored with the experience so every later run matches it.

    Args:
        base_model: hub name or local path of the model every run finetunes.
        max_epochs: the space's largest fidelity: the learning-rate schedule is laid over it, so a run stopped
            early and continued later trains exactly like one run straight through.
        max_length: token limit of one example.
        eval_batch_size: batch size for validation and test.
        seed: training seed (adapter initialisation, data order, dropout).
        accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
        devices: devices per run.
        precision: Lightning precision of the run.
        prompt_template: plain prompt template (``PromptFormatter``); settings recorded before it existed mean
            ``qa-v1``, the template of the first experience.
    """

    base_model: str
    max_epochs: int = 8
    max_length: int = 256
    eval_batch_size: int = 64
    seed: int = 0
    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"
    prompt_template: str = "qa"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> RunSettings:
        merged = {**LEGACY_SETTINGS, **values, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**{k: v for k, v in merged.items() if k in cls.__dataclass_fields__})
