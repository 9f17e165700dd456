"""Task meta-features: cheap descriptors of a QA task, computed before any finetuning run of it.

Sizes, token lengths and the answer-length distribution say how much a run costs and how much it must learn; the
untouched base model's validation loss and accuracy (zero-shot) say how far the task is from what the model
knows; a short probe — a few steps of a fixed LoRA pipeline — says how fast the task gives way to finetuning.
Together they are what surrogates can use to tell which pipelines suit which task. Plain PyTorch loops (no
Trainer): ``suggest`` computes them for a user's task and should print nothing but its answer.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import torch

# what the first surrogates read, in order (every meta-dataset has these)
TASK_FEATURES = (
    "log_train_size", "log_validation_size", "mean_prompt_tokens", "mean_answer_tokens", "answer_diversity",
    "context_share", "zero_shot_loss", "zero_shot_acc", "zero_shot_token_acc",
)  # fmt: skip
# added with the second experience: the answer-length distribution and the probe
EXTRA_FEATURES = ("answer_tokens_std", "answer_tokens_max", "probe_loss_ratio", "probe_token_acc")
PROBE_FEATURES = ("probe_loss_ratio", "probe_token_acc")  # the only ones that train (a copy of the base model)
PROBE_STEPS = 16
PROBE_LEARNING_RATE = 1e-3
PROBE_BATCH = 8
PROBE_VALIDATION = 64  # examples the probe is scored on


def task_features(
    data: str, base_model: str, max_length: int = 256, eval_batch_size: int = 64, prompt_template: str = "qa",
    probe: bool | Callable[[], bool] = True,
) -> dict[str, float]:  # fmt: skip
    """Every feature of ``TASK_FEATURES`` and ``EXTRA_FEATURES`` for the task in ``data``; without ``probe``, all but
    ``PROBE_FEATURES``, whose probe trains a copy of the base model (on a GPU, twice its memory) for a feature that
    a surrogate may not read. A callable ``probe`` is asked once the data has been read and tokenized (a bad file
    is named before anything else is loaded to decide)."""
    from lit_transfer.finetune import QADataModule
    from lit_transfer.finetune.data import IGNORE_INDEX, load_split
    from lit_transfer.finetune.models import load_causal_lm

    datamodule = QADataModule(
        data, tokenizer=base_model, eval_batch_size=eval_batch_size, max_length=max_length,
        prompt_template=prompt_template,
    )  # fmt: skip
    datamodule.setup("fit")
    train = datamodule.splits["train"]
    prompt = [sum(1 for t in r["labels"] if t == IGNORE_INDEX) for r in train]
    answer = [len(r["labels"]) - p for r, p in zip(train, prompt, strict=True)]
    examples = load_split(data, "train")
    with torch.random.fork_rng():
        model = load_causal_lm(base_model)
        zero_shot = evaluate(model, datamodule.val_dataloader())
        probed = _probe(model, datamodule) if (probe() if callable(probe) else probe) else None
    features = {
        "log_train_size": math.log(len(train)),
        "log_validation_size": math.log(len(datamodule.splits["validation"])),
        "mean_prompt_tokens": sum(prompt) / len(prompt),
        "mean_answer_tokens": sum(answer) / len(answer),
        "answer_diversity": len({e.answer for e in examples}) / len(examples),
        "context_share": sum(e.context is not None for e in examples) / len(examples),
        "zero_shot_loss": zero_shot["loss"],
        "zero_shot_acc": zero_shot["acc"],
        "zero_shot_token_acc": zero_shot["token_acc"],
        "answer_tokens_std": statistics.pstdev(answer),
        "answer_tokens_max": float(max(answer)),
    }
    if probed is not None:
        features["probe_loss_ratio"] = probed["loss"] / max(zero_shot["loss"], 1e-6)
        features["probe_token_acc"] = probed["token_acc"]
    return features


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, limit: int | None = None) -> dict[str, float]:
    """Answer-token loss and accuracy and exact match over ``loader`` (the first ``limit`` examples), weighted as
    ``FinetuneModule`` weights ``val/loss``, ``val/token_acc`` and ``val/acc``."""
    from lit_transfer.finetune.module import answer_statistics

    model.eval()
    loss = hits = tokens = 0.0
    exact: list[float] = []
    for batch in loader:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
        stats = answer_statistics(model(**inputs, use_cache=False).logits, batch["labels"])
        loss += float(stats["loss"]) * float(stats["tokens"])
        hits += float(stats["token_acc"]) * float(stats["tokens"])
        tokens += float(stats["tokens"])
        exact += stats["exact"].tolist()
        if limit is not None and len(exact) >= limit:
            break
    return {
        "loss": loss / max(tokens, 1.0),
        "token_acc": hits / max(tokens, 1.0),
        "acc": sum(exact) / max(len(exact), 1),
    }


def _probe(base: torch.nn.Module, datamodule: Any) -> dict[str, float]:
    """Metrics on the first ``PROBE_VALIDATION`` validation examples after ``PROBE_STEPS`` AdamW steps of a rank-8
    LoRA on all linear layers (constant learning rate, data order seeded)."""
    import copy

    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader

    from lit_transfer.finetune.data import AnswerMaskedCollator
    from lit_transfer.finetune.module import answer_loss

    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=PROBE_LEARNING_RATE)
    collate = AnswerMaskedCollator(datamodule.tokenizer.pad_token_id)
    order = torch.Generator().manual_seed(0)
    loader = DataLoader(datamodule.splits["train"], PROBE_BATCH, shuffle=True, generator=order, collate_fn=collate)
    model.train()
    step = 0
    while step < PROBE_STEPS:
        for batch in loader:
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            answer_loss(model(**inputs, use_cache=False).logits, batch["labels"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == PROBE_STEPS:
                break
    return evaluate(model, datamodule.val_dataloader(), limit=PROBE_VALIDATION)
