"""Task meta-features: cheap descriptors of a QA task, computed before any finetuning run of it.

Sizes, token lengths and the answer-length distribution say how much a run costs and how much it must learn; the
untouched base model's validation loss and accuracy (zero-shot) say how far the task is from what the model
knows; a short probe — a few steps of a fixed pipeline — says how fast the task gives way to finetuning. Together
they are what surrogates can use to tell which pipelines suit which task.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

# what the first surrogates read, in order (every meta-dataset has these)
TASK_FEATURES = (
    "log_train_size", "log_validation_size", "mean_prompt_tokens", "mean_answer_tokens", "answer_diversity",
    "context_share", "zero_shot_loss", "zero_shot_acc", "zero_shot_token_acc",
)  # fmt: skip
# added with the second experience: the answer-length distribution and the probe
EXTRA_FEATURES = ("answer_tokens_std", "answer_tokens_max", "probe_loss_ratio", "probe_token_acc")
PROBE_STEPS = 16
PROBE_LEARNING_RATE = 1e-3


def task_features(data: str, base_model: str, max_length: int = 256, eval_batch_size: int = 64) -> dict[str, float]:
    """Every feature of ``TASK_FEATURES`` and ``EXTRA_FEATURES`` for the task in ``data``."""
    import lightning as L

    from lit_transfer.finetune import FinetuneModule, QADataModule
    from lit_transfer.finetune.data import IGNORE_INDEX, load_split

    quiet: dict[str, Any] = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    module = FinetuneModule(model=base_model)  # a fresh LoRA adapter is zero: the model equals the base
    datamodule = QADataModule(data, tokenizer=base_model, eval_batch_size=eval_batch_size, max_length=max_length)
    datamodule.setup("fit")
    train = datamodule.splits["train"]
    prompt = [sum(1 for t in r["labels"] if t == IGNORE_INDEX) for r in train]
    answer = [len(r["labels"]) - p for r, p in zip(train, prompt, strict=True)]
    examples = load_split(data, "train")
    zero_shot = L.Trainer(accelerator="cpu", **quiet).validate(module, datamodule=datamodule, verbose=False)[0]
    probe = _probe(base_model, data, max_length, eval_batch_size, quiet)
    return {
        "log_train_size": math.log(len(train)),
        "log_validation_size": math.log(len(datamodule.splits["validation"])),
        "mean_prompt_tokens": sum(prompt) / len(prompt),
        "mean_answer_tokens": sum(answer) / len(answer),
        "answer_diversity": len({e.answer for e in examples}) / len(examples),
        "context_share": sum(e.context is not None for e in examples) / len(examples),
        "zero_shot_loss": zero_shot["val/loss"],
        "zero_shot_acc": zero_shot["val/acc"],
        "zero_shot_token_acc": zero_shot["val/token_acc"],
        "answer_tokens_std": statistics.pstdev(answer),
        "answer_tokens_max": float(max(answer)),
        "probe_loss_ratio": probe["val/loss"] / max(zero_shot["val/loss"], 1e-6),
        "probe_token_acc": probe["val/token_acc"],
    }


def _probe(base_model: str, data: str, max_length: int, eval_batch_size: int, quiet: dict) -> dict[str, float]:
    """Validation metrics (first batch) after ``PROBE_STEPS`` AdamW steps of a fixed LoRA pipeline."""
    import lightning as L

    from lit_transfer.finetune import FinetuneModule, QADataModule

    module = FinetuneModule(
        model=base_model, learning_rate=PROBE_LEARNING_RATE, scheduler="constant", warmup_fraction=0.0, seed=0
    )
    datamodule = QADataModule(data, batch_size=8, eval_batch_size=eval_batch_size, max_length=max_length, seed=0)
    fit = L.Trainer(
        accelerator="cpu", max_steps=PROBE_STEPS, max_epochs=PROBE_STEPS, limit_val_batches=0,
        enable_checkpointing=False, **quiet,
    )  # fmt: skip
    fit.fit(module, datamodule)
    check = L.Trainer(accelerator="cpu", limit_val_batches=1, **quiet)
    return check.validate(module, datamodule=datamodule, verbose=False)[0]
