"""Training throughput of FinetuneModule under Lightning vs a plain PyTorch + peft loop vs transformers' Trainer.

All three train the same small Phi-3 (random weights, built offline) from the same initial adapter, on the same
batches in the same order, with the same optimizer (AdamW, constant LR, clip 1.0), so their loss curves must
agree and their speed is comparable. Variants are interleaved and repeated; medians are reported.

    python tools/bench_finetune.py                 # CPU, small model
    python tools/bench_finetune.py --device cuda --hidden 3072 --layers 32 --seq 2048   # Phi-3-mini shape
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lit_transfer.quiet import silence

silence()  # before the imports below, which warn and log on import

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from lit_transfer.finetune.data import AnswerMaskedCollator, PromptFormatter, QAExample, encode  # noqa: E402
from lit_transfer.finetune.demo import corpus, toy_qa_examples  # noqa: E402
from lit_transfer.finetune.models import build_tiny_phi3, load_tokenizer  # noqa: E402
from lit_transfer.finetune.module import FinetuneModule, answer_loss  # noqa: E402

LR = 1e-3


def make_rows(model_dir: str, n: int, seq: int) -> list[dict[str, list[int]]]:
    """QA examples whose context lists many facts, so sequences are about ``seq`` tokens long."""
    facts = toy_qa_examples(seed=0, people=60)["train"]
    formatter = PromptFormatter(load_tokenizer(model_dir))
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        target = rng.choice(facts)
        context = []
        while len(formatter.tokenizer(" ".join(context))["input_ids"]) < seq - 40:
            fact = rng.choice(facts)
            context.append(f"{fact['question']} {fact['answer']}.")
        example = QAExample(target["question"], target["answer"], " ".join(context))
        rows.append(encode(example, formatter, seq))
    return rows


# no dropout, constant LR: the three implementations must then produce the same losses
MODULE_ARGS = {
    "lora_rank": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "learning_rate": LR,
    "scheduler": "constant",
    "warmup_fraction": 0.0,
    "seed": 0,
}


def fresh_module(model_dir: str, device: str) -> FinetuneModule:
    module = FinetuneModule(model=model_dir, **MODULE_ARGS)
    module.configure_model()
    return module.to(device)


class StepClock:
    """Wall time from the start of step ``warmup`` to the end of the last step, and every step's loss."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.losses, self.start, self.end, self.tokens = warmup, [], None, None, 0

    def begin(self, step: int) -> None:
        if step == self.warmup:
            _sync()
            self.start = time.perf_counter()

    def finish(self, step: int, loss: float, tokens: int) -> None:
        self.losses.append(loss)
        if step >= self.warmup:
            self.tokens += tokens
            _sync()
            self.end = time.perf_counter()

    def tokens_per_s(self) -> float:
        return self.tokens / (self.end - self.start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_ours(model_dir, loader, steps, warmup, device) -> StepClock:
    clock = StepClock(warmup)

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.begin(batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.finish(batch_idx, float(outputs["loss"]), int(batch["num_tokens"]))

    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=steps,
        max_epochs=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Clock()],
    )
    trainer.fit(FinetuneModule(model=model_dir, **MODULE_ARGS), train_dataloaders=loader)
    return clock


def run_plain(model_dir, loader, steps, warmup, device) -> StepClock:
    clock = StepClock(warmup)
    model = fresh_module(model_dir, device).model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    model.train()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        clock.begin(step)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        loss = answer_loss(logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.finish(step, float(loss), int(batch["num_tokens"]))
    return clock


def run_hf_trainer(model_dir, loader, steps, warmup, device, workdir) -> StepClock:
    clock = StepClock(warmup)
    model = fresh_module(model_dir, device).model

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.begin(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                clock.finish(state.global_step - 1, logs["loss"], tokens.pop(0))

    tokens = [int(b["num_tokens"]) for _, b in zip(range(steps), loader, strict=False)]

    class FixedOrderTrainer(Trainer):
        def get_train_dataloader(self):
            return loader

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "labels")}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    args = TrainingArguments(
        output_dir=str(workdir),
        max_steps=steps,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        remove_unused_columns=False,
        logging_nan_inf_filter=False,
    )
    trainer = FixedOrderTrainer(model=model, args=args, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # it prints every step's logs
    trainer.train()
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(
            build_tiny_phi3(
                Path(tmp) / "model",
                corpus(toy_qa_examples(0, 60)),
                vocab_size=512,
                hidden_size=args.hidden,
                num_layers=args.layers,
                num_heads=args.heads,
                max_position_embeddings=max(512, args.seq),
            )
        )
        rows = make_rows(model_dir, args.batch * args.steps, args.seq)
        pad = load_tokenizer(model_dir).pad_token_id
        loader = DataLoader(rows, batch_size=args.batch, shuffle=False, collate_fn=AnswerMaskedCollator(pad))
        runners = {
            "ours": lambda: run_ours(model_dir, loader, args.steps, args.warmup, args.device),
            "plain": lambda: run_plain(model_dir, loader, args.steps, args.warmup, args.device),
            "hf_trainer": lambda: run_hf_trainer(model_dir, loader, args.steps, args.warmup, args.device, tmp),
        }
        speeds: dict[str, list[float]] = {name: [] for name in runners}
        losses: dict[str, list[float]] = {}
        names = list(runners)
        for round_ in range(args.repeats):  # interleaved, and the order rotates so no variant always goes first
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                clock = runners[name]()
                speeds[name].append(clock.tokens_per_s())
                losses.setdefault(name, clock.losses)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    max_rel = max(
        abs(a - b) / abs(b)
        for other in ("ours", "hf_trainer")
        for a, b in zip(losses[other], losses["plain"], strict=True)
    )
    for name, values in speeds.items():
        print(f"{name:>11}: {median[name]:10.0f} tokens/s (runs: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"loss curves over {args.steps} steps: max relative difference vs plain loop {max_rel:.2e}")
    result = {
        "ours_tokens_per_s": round(median["ours"], 1),
        "plain_tokens_per_s": round(median["plain"], 1),
        "hf_trainer_tokens_per_s": round(median["hf_trainer"], 1),
        "ratio_vs_plain": round(median["ours"] / median["plain"], 4),
        "ratio_vs_hf_trainer": round(median["ours"] / median["hf_trainer"], 4),
        "max_rel_loss_diff": max_rel,
    }
    print(f"torch threads: {torch.get_num_threads()}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
