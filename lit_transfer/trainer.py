"""The Trainer commands (``fit``, ``validate``, ``test``): LightningCLI, with every checkpoint loaded as weights only.

A checkpoint is a pickle, and unpickling runs code. LightningCLI reads a local ``--ckpt_path`` with
``weights_only=True`` to find its hyperparameters, but the Trainer then loads it again, and a URL (which Lightning
loads with ``weights_only=False`` by default) executed whatever it carried. Here the Trainer's own load is always
``weights_only=True``, local or remote, and a checkpoint that is not plain weights is refused in one line.
"""

from __future__ import annotations

import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightning
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import lit_transfer.finetune.strategies  # noqa: F401  (registers ddp_adapter and fsdp_adapter for configs)

TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs"}},
}


class CheckpointRefused(ValueError):
    """A checkpoint that cannot be loaded as plain weights (it would run code, or it is not a checkpoint)."""


class TrainerCLI(LightningCLI):
    """LightningCLI whose Trainer loads ``--ckpt_path`` (a file or a URL) with ``weights_only=True`` only."""

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """LightningCLI's parser with ``--config`` found from any folder and ``--debug`` (``cli.main`` reads it)."""
        from jsonargparse import ActionYesNo

        from lit_transfer.resources import PackagedConfig

        kwargs.setdefault("dump_header", [f"lightning.pytorch=={lightning.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument("-c", "--config", action=PackagedConfig, help="a configuration file, YAML or JSON")
        parser.add_argument(
            "--debug",
            action=ActionYesNo(),
            nargs="?",
            default=False,
            help="show the traceback of an error instead of one line",
        )
        return parser

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if kwargs.get("weights_only") is False:
            raise CheckpointRefused("weights_only false is not allowed: checkpoints are loaded as plain weights only")
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            kwargs["weights_only"] = True
        return kwargs

    def _parse_ckpt_path(self) -> None:
        try:
            super()._parse_ckpt_path()
        except pickle.UnpicklingError as err:
            raise _refused(self._ckpt_path(), err) from None

    def _run_subcommand(self, subcommand: str) -> None:
        given = self.config_init[subcommand].get("ckpt_path")
        with tempfile.TemporaryDirectory(prefix="ckpt-") as folder:
            if given is not None and "://" in str(given):  # fetched here, checked, and loaded from the copy
                self.config_init[subcommand]["ckpt_path"] = _fetch(str(given), Path(folder))
            try:
                super()._run_subcommand(subcommand)
            except pickle.UnpicklingError as err:
                raise _refused(str(given), err) from None
            finally:
                self.config_init[subcommand]["ckpt_path"] = given

    def _ckpt_path(self) -> str:
        subcommand = self.config.get("subcommand")
        return str(self.config[subcommand].get("ckpt_path")) if subcommand else "the checkpoint"


def _fetch(url: str, folder: Path) -> str:
    """A remote checkpoint copied into ``folder`` (not into a cache another run would trust), then checked: only
    plain weights go on to the Trainer."""
    import fsspec
    import torch

    local = folder / (Path(url.split("?")[0]).name or "checkpoint.ckpt")
    try:
        with fsspec.open(url, "rb") as remote, open(local, "wb") as copy:
            shutil.copyfileobj(remote, copy)
    except (OSError, ImportError, ValueError) as err:
        raise CheckpointRefused(f"{url}: cannot fetch the checkpoint ({err})") from None
    try:
        torch.load(local, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refused(url, err) from None
    return str(local)


def _refused(path: str, err: Exception) -> CheckpointRefused:
    # torch names what it would have had to import and call to unpickle it ("... GLOBAL posix.system ...")
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    reason = f"loading it would call {found.group(1)}" if found else type(err).__name__
    return CheckpointRefused(f"{path}: not a checkpoint of plain weights, refused ({reason})")


def trainer_cli(
    args: list[str] | None = None, run: bool = True, cli_class: type[LightningCLI] = TrainerCLI,
    prog: str | None = None,
) -> Any:  # fmt: skip
    """Run a Lightning Trainer command from a YAML config (``--help`` and ``--print_config`` included); ``prog``: the
    program name usage lines show."""
    from lit_transfer.quiet import silence

    silence()  # again: importing Lightning set its loggers back to INFO ("GPU available: ...", tips)
    return cli_class(
        LightningModule,
        LightningDataModule,
        parser_kwargs={"exit_on_error": False, **({"prog": prog} if prog else {})},
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults=TRAINER_DEFAULTS,
        args=args,
        run=run,
    )
