"""Command line: LightningCLI for the Trainer commands (fit/validate/test/predict), jsonargparse for the rest.

Model and data are given by ``class_path`` in the YAML, so the same ``fit`` trains a finetuning run or a
surrogate. Commands that are not Trainer runs are plain functions; their docstrings are their ``--help``.
"""

from __future__ import annotations

import sys

from jsonargparse import CLI
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lit_transfer.metadataset.build import BuildPlan, build
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset, MetaDatasetError
from lit_transfer.metadataset.summary import format_table, summarize
from lit_transfer.metadataset.tasks import write_tasks
from lit_transfer.space import DEFAULT_SPACE, SearchSpace

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


def metadata_build(plan: BuildPlan, progress: bool = True) -> None:
    """Build or extend a meta-dataset of finetuning runs (resumable: rerun the same command to continue).

    Args:
        plan: what to build (``--config configs/metadata/micro.yaml``).
        progress: show a progress bar with ETA.
    """
    store = build(plan, progress=progress)
    print(f"{plan.out}: {len(store)} runs")


def metadata_tasks(out: str, world_seed: int = 0) -> None:
    """Write the synthetic QA task suite (one folder of train/validation/test JSONL per task).

    Args:
        out: folder to write into.
        world_seed: seed of the generated world the tasks ask about.
    """
    for path in write_tasks(out, world_seed=world_seed):
        print(path)


def metadata_summary(path: str = SHIPPED_METADATASET, json: bool = False, space: str = str(DEFAULT_SPACE)) -> None:
    """Per task: runs, failures, best / median / default-config final val/acc; and how much tasks agree.

    Args:
        path: the meta-dataset (default: the shipped one).
        json: print one JSON object instead of a table.
        space: the search space whose default config is reported as "default".
    """
    import json as json_module

    with MetaDataset(path) as store:
        summary = summarize(store, SearchSpace.from_yaml(space).default().key())
    print(json_module.dumps(summary) if json else format_table(summary))


def _summary_args(argv: list[str]) -> list[str]:
    """Accept ``metadata summary [PATH] [--json]`` as well as jsonargparse's ``--path P --json true``."""
    out = argv[:2]
    rest = argv[2:]
    for i, arg in enumerate(rest):
        if arg == "--json" and (i + 1 == len(rest) or rest[i + 1].startswith("-")):
            out += ["--json", "true"]
        elif i == 0 and not arg.startswith("-"):
            out += ["--path", arg]
        else:
            out.append(arg)
    return out


COMMANDS = {"metadata": {"build": metadata_build, "tasks": metadata_tasks, "summary": metadata_summary}}


USAGE = """usage: python -m lit_transfer COMMAND ...

  fit | validate | test | predict    a Lightning Trainer run from a YAML config (--help for its options)
  metadata build | tasks | summary   build a meta-dataset, write the QA tasks, summarise a meta-dataset
"""


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    if argv[0] in TRAINER_COMMANDS:
        trainer_cli(None if from_command_line else argv)  # LightningCLI reads sys.argv itself
        return
    if argv[0] not in COMMANDS:
        sys.exit(f"unknown command {argv[0]!r}; commands: {', '.join([*TRAINER_COMMANDS, *COMMANDS])}")
    if argv[:2] == ["metadata", "summary"]:
        argv = _summary_args(argv)
    try:
        CLI(COMMANDS, args=argv, as_positional=True)
    except MetaDatasetError as err:
        sys.exit(f"error: {err}")
