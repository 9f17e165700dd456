"""Adapter finetuning under different precision set-ups: tokens/s, MFU and peak memory, one process.

Variants (all LoRA r=16 on all linear layers, same random Phi-3-shaped model, same batches):
  bf16-mixed    fp32 weights + Lightning's stock bf16 autocast (the frozen base kept in fp32)
  bf16-true     everything in bf16, adapters and optimizer states included
  adapter-bf16  lit_transfer's AdapterPrecision: base stored bf16, adapters/optimizer fp32, autocast
  qlora         NF4 4-bit base (bitsandbytes) + AdapterPrecision

    python tools/bench_precision.py --device cuda                    # Phi-3-mini shape, sequence 2048
    python tools/bench_precision.py --device cpu --hidden 128 --layers 2 --heads 4 --intermediate 256 --seq 128

MFU uses the adapter-training FLOPs of ``lit_transfer.finetune.throughput.FlopCounter`` and Lightning's table of
peak device FLOPs (none on a CPU). Variants are interleaved over rounds; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lit_transfer.quiet import silence

silence()  # before the imports below, which warn and log on import

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.fabric.utilities.throughput import get_available_flops  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import Phi3ForCausalLM  # noqa: E402

from lit_transfer.finetune import AdapterPrecision, FinetuneModule  # noqa: E402
from lit_transfer.finetune.data import IGNORE_INDEX, AnswerMaskedCollator  # noqa: E402
from lit_transfer.finetune.models import tiny_phi3_config, train_tokenizer  # noqa: E402

VARIANTS = {
    # name: (FinetuneModule dtype, quantization, Trainer precision, use AdapterPrecision)
    "bf16-mixed": ("float32", "none", "bf16-mixed", False),
    "bf16-true": ("float32", "none", "bf16-true", False),
    "adapter-bf16": ("bfloat16", "none", None, True),
    "qlora": ("bfloat16", "nf4", None, True),
}


def build_model(root: Path, args) -> str:
    tokenizer = train_tokenizer(["a b c d e f g h"], vocab_size=300)
    config = tiny_phi3_config(
        tokenizer, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        intermediate_size=args.intermediate, max_position_embeddings=max(4096, args.seq),
    )  # fmt: skip
    config.vocab_size = args.vocab
    model = Phi3ForCausalLM(config).to(torch.bfloat16)  # saved in bf16; each variant loads its own dtype
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return str(root)


def batches(args) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(args.batch * (args.steps + args.warmup)):
        ids = torch.randint(10, args.vocab, (args.seq,), generator=generator).tolist()
        labels = [IGNORE_INDEX] * (args.seq // 2) + ids[args.seq // 2 :]  # the second half is the "answer"
        rows.append({"input_ids": ids, "labels": labels})
    return DataLoader(rows, batch_size=args.batch, collate_fn=AnswerMaskedCollator(pad_token_id=0))


class Clock(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.tokens, self.flops = warmup, 0.0, 0.0, 0, 0

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self._sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self._sync()
            self.end = time.perf_counter()
            self.tokens += batch["input_ids"].numel()
            self.flops += pl_module.flops_per_batch


def run(variant: str, model_dir: str, args) -> dict[str, float]:
    dtype, quantization, precision, plugin = VARIANTS[variant]
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    module = FinetuneModule(
        model=model_dir, dtype=dtype, quantization=quantization, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
        learning_rate=1e-4, scheduler="constant", warmup_fraction=0.0, gradient_checkpointing=args.checkpointing,
    )  # fmt: skip
    clock = Clock(args.warmup)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, max_epochs=1,
        max_steps=args.steps + args.warmup,
        precision=precision, plugins=[AdapterPrecision("bf16", device=args.device)] if plugin else None,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=batches(args))
    seconds = clock.end - clock.start
    peak = get_available_flops(torch.device(args.device), torch.bfloat16)
    result = {"tokens_per_s": clock.tokens / seconds, "flops_per_s": clock.flops / seconds}
    result["mfu"] = result["flops_per_s"] / peak if peak else None
    if args.device == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--hidden", type=int, default=3072)  # Phi-3-mini-4k-instruct's shape
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--intermediate", type=int, default=8192)
    parser.add_argument("--vocab", type=int, default=32064)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in every variant")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    names = args.variants.split(",")
    results: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model", args)
        for round_ in range(args.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                results[name].append(run(name, model_dir, args))
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            key: (statistics.median(r[key] for r in runs) if runs[0].get(key) is not None else None) for key in runs[0]
        }
        cells = ", ".join(f"{k} {v:.4g}" for k, v in summary[name].items() if v is not None)
        print(f"{name:>13}: {cells}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
