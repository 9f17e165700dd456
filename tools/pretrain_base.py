"""Pretrain the small Phi-3-architecture base model that the shipped meta-dataset is built on.

It reads documents about the generated world (``lit_transfer.metadataset.world``) and general statements
(arithmetic, spelling, counting, calendar), never the QA tasks themselves, so finetuning on a task teaches the
question-answer format and recall, as it does for a real LLM. Writes ``save_pretrained`` weights, the tokenizer
and a model card.

    python tools/pretrain_base.py --out assets/models/world-phi3-2m
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from transformers import Phi3ForCausalLM, get_scheduler

from lit_transfer.finetune.models import tiny_phi3_config, train_tokenizer
from lit_transfer.metadataset.world import World


def token_blocks(tokenizer, docs: list[str], block: int) -> torch.Tensor:
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    usable = len(ids) // block * block
    return torch.tensor(ids[:usable]).view(-1, block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="assets/models/world-phi3-2m")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    world = World(seed=args.world_seed)
    docs = world.corpus(seed=args.seed)
    # a pretrained (not instruction-tuned) model has no chat template: prompts use the plain QA template
    tokenizer = train_tokenizer(docs, vocab_size=args.vocab, chat_template=False)
    blocks = token_blocks(tokenizer, docs, args.block)
    config = tiny_phi3_config(
        tokenizer,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=512,
    )
    model = Phi3ForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.2f} M parameters, {blocks.numel() / 1e6:.2f} M corpus tokens in {len(blocks)} blocks")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.95))
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=args.steps // 20, num_training_steps=args.steps)
    model.train()
    started, losses = time.perf_counter(), []
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(blocks), generator=generator)
    cursor = 0
    for step in range(args.steps):
        if cursor + args.batch > len(order):
            order, cursor = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[cursor : cursor + args.batch]]
        cursor += args.batch
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            recent = sum(losses[-100:]) / len(losses[-100:])
            print(f"step {step:5d}  loss {recent:.3f}  {time.perf_counter() - started:.0f}s", flush=True)
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    final = sum(losses[-100:]) / len(losses[-100:])
    tokens_seen = args.steps * args.batch * args.block
    summary = {
        "parameters": params,
        "vocab": len(tokenizer),
        "hidden": args.hidden,
        "layers": args.layers,
        "corpus_tokens": blocks.numel(),
        "steps": args.steps,
        "tokens_seen": tokens_seen,
        "final_loss": round(final, 4),
        "final_perplexity": round(math.exp(final), 2),
        "seconds": round(time.perf_counter() - started),
        "world_seed": args.world_seed,
    }
    (out / "pretraining.json").write_text(json.dumps(summary, indent=1))
    (out / "README.md").write_text(
        f"""# world-phi3 base model

A small Phi-3-architecture causal LM ({params / 1e6:.2f} M parameters: hidden {args.hidden}, {args.layers} layers,
{args.heads} heads, vocabulary {len(tokenizer)} byte-level BPE with Phi-3's special tokens; no chat template, as
it is not instruction-tuned, so finetuning prompts use the plain QA template), pretrained
from random weights by `tools/pretrain_base.py` on documents about the generated world of
`lit_transfer.metadataset.world` (seed {args.world_seed}) plus general arithmetic, spelling, counting and
calendar statements — never on the QA tasks.

- data: {blocks.numel():,} corpus tokens in blocks of {args.block}
- training: {args.steps} steps of {args.batch} blocks ({tokens_seen:,} tokens), AdamW lr {args.lr}, cosine
- final training loss {final:.3f} (perplexity {math.exp(final):.1f}), {summary["seconds"]} s on a 2-core CPU

Load it like any hub model: `AutoModelForCausalLM.from_pretrained("{out}")`.
"""
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
