"""Quiet output: what a command prints is for the user, so known third-party noise is filtered at the entry point.

Called once by the command line (and by worker processes it starts), never on import of library code, so using
lit_transfer as a library leaves the caller's warning and logging settings alone.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# (category, message regex) of warnings that say nothing to a user of these commands
_WARNINGS = [
    (UserWarning, r".*does not have many workers.*"),
    (UserWarning, r".*The number of training batches.*"),
    (UserWarning, r".*GPU available but not used.*"),
    (UserWarning, r".*silently incorrect behavior.*"),
    (UserWarning, r".*Trying to infer the `batch_size`.*"),
    (UserWarning, r".*Checkpoint directory .* exists and is not empty.*"),
    (UserWarning, r".*LeafSpec.*"),
    (UserWarning, r".*LightningCLI's args parameter is intended.*"),
    (UserWarning, r".*Total length of .* across ranks is zero.*"),  # a surrogate fit without validation tasks
    (Warning, r".*configure_optimizers` returned `None`.*"),  # a surrogate fitted without gradient steps
    (Warning, r".*`training_step` returned `None`.*"),
    (Warning, r".*but have no `validation_step`.*"),
    (UserWarning, r".*Encountered `nan` values in tensor.*"),  # a diverged run: its status says so
    (UserWarning, r".*Be aware that when using `ckpt_path`.*"),  # testing a trial's best checkpoint
    (FutureWarning, r".*"),
    (DeprecationWarning, r".*"),
]
_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning",
            "transformers", "peft", "bitsandbytes", "torch.distributed", "datasets", "kernels")  # fmt: skip


def silence() -> None:
    """Filter known warnings and library logging below errors; hide weight-loading progress bars (without importing
    the libraries: ``--help`` stays fast)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for category, message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # transformers reads these when it is imported: the command line need not import it to quiet it
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # imported already (a worker, or a library caller that asked for quiet)
        logging_utils = sys.modules["transformers"].utils.logging
        logging_utils.set_verbosity_error()
        logging_utils.disable_progress_bar()
