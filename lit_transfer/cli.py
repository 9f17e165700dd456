"""Command line: LightningCLI for the Trainer commands (fit/validate/test/predict).

Model and data are given by ``class_path`` in the YAML, so the same ``fit`` trains a finetuning run or, later, a
surrogate.
"""

from __future__ import annotations

import sys

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def trainer_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Run a Lightning Trainer command from a YAML config (``--help`` and ``--print_config`` included)."""
    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs"},
            }
        },
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in (*TRAINER_COMMANDS, "-h", "--help"):
        trainer_cli(argv)
        return
    sys.exit(f"unknown command {argv[0]!r}; commands: {', '.join(TRAINER_COMMANDS)}")
