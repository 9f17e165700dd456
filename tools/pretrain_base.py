"""Pretrain the small Phi-3-architecture base model that the shipped meta-dataset is built on.

It reads documents about the generated world (``lit_transfer.metadataset.world``) and text that teaches general
skills (``lit_transfer.metadataset.skills``: arithmetic, counting, lists and order, editing words, dates and units,
short instructions) and, with ``--qa``, questions answered in the plain template about skills and about half of
the people (``lit_transfer.metadataset.qa_text``), never the QA tasks themselves. Writes ``save_pretrained``
weights, the tokenizer and a model card with probes of each skill. ``--init`` continues pretraining a saved model
(its weights and tokenizer) on the corpus; the card and ``pretraining.json`` then record both stages.

    # the v2 base model: stage 1, then stage 2 with question-answer text
    python tools/pretrain_base.py --out runs/world-phi3-v2-stage1
    python tools/pretrain_base.py --init runs/world-phi3-v2-stage1 --qa 30000 --steps 1200 --lr 1e-3 \
        --out assets/models/world-phi3-v2
    python tools/pretrain_base.py --out assets/models/world-phi3-2m --v1      # the first one
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, Phi3ForCausalLM, get_scheduler

from lit_transfer.finetune.models import tiny_phi3_config, train_tokenizer
from lit_transfer.metadataset.qa_text import asked_people, qa_text
from lit_transfer.metadataset.skills import SKILLS
from lit_transfer.metadataset.world import World


def token_blocks(tokenizer, docs: list[str], block: int) -> torch.Tensor:
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    usable = len(ids) // block * block
    return torch.tensor(ids[:usable]).view(-1, block)


def corpus_makeup(world: World, general: int, skills: int, qa: int) -> dict[str, int]:
    """Documents per source, as ``World.corpus`` draws them (skills in equal shares, round robin)."""
    makeup = {"world documents (one pass)": len(world.people) + len(world.city_country) + len(world.company_city)}
    makeup["general statements (v1)"] = general
    names = list(SKILLS)
    for i in range(skills):
        key = f"skill text: {names[i % len(names)]}"
        makeup[key] = makeup.get(key, 0) + 1
    makeup["question-answer text"] = qa
    return makeup


def probe_pairs(world: World, seed: int, per_skill: int = 100) -> dict[str, list[tuple[str, str]]]:
    """(prefix, continuation) pairs per skill, drawn with a seed the corpus did not use: the continuation is what
    follows the sentence's last verb (`is`, `are`, `gives`, `writes`, `has`, `occurs`)."""
    rng = random.Random(f"probe/{seed}")
    pairs: dict[str, list[tuple[str, str]]] = {}
    for name, make in SKILLS.items():
        pairs[name] = []
        while len(pairs[name]) < per_skill:
            sentence = make(rng)
            cut = max(sentence.rfind(f" {verb} ") for verb in ("is", "are", "gives", "writes", "has", "occurs"))
            if cut > 0:
                verb_end = sentence.index(" ", cut + 1)
                pairs[name].append((sentence[:verb_end], sentence[verb_end:]))
    people = rng.sample(world.people, min(per_skill, len(world.people)))
    pairs["world: occupation"] = [(f"{p.name} works as a", f" {p.occupation}.") for p in people]
    pairs["world: city"] = [(f"{p.name} lives in", f" {p.city}.") for p in people]
    pairs["world: employer"] = [(f"{p.name} is employed by", f" {p.employer}.") for p in people]
    # zero-shot in the finetuning template, for people the question-answer text asks about and for the others
    asked = asked_people(world)
    names = {p.name for p in asked}
    others = [p for p in world.people if p.name not in names]
    for label, group in (("asked", asked), ("not asked", others)):
        chosen = rng.sample(group, min(per_skill, len(group)))
        pairs[f"QA job, people {label}"] = [(f"Question: What is the job of {p.name}?\nAnswer:", f" {p.occupation}")
                                            for p in chosen]  # fmt: skip
        pairs[f"QA task question, people {label}"] = [
            (f"Question: What does {p.name} do for a living?\nAnswer:", f" {p.occupation}") for p in chosen
        ]
    return pairs


@torch.no_grad()
def probe(model, tokenizer, pairs: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    """Share of continuations the model reproduces exactly, token by token, given the prefix (greedy decoding
    would produce them: teacher-forced exact match, as ``val/acc``)."""
    model.eval()
    scores = {}
    for name, items in pairs.items():
        hits = 0
        for prefix, continuation in items:
            p = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + c])
            predicted = model(input_ids=ids, use_cache=False).logits[0, len(p) - 1 : -1].argmax(-1)
            hits += bool((predicted == ids[0, len(p) :]).all())
        scores[name] = round(hits / len(items), 3)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="assets/models/world-phi3-v2")
    parser.add_argument("--v1", action="store_true", help="the first base model: 500 people, no skills text")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--people", type=int, default=1100)
    parser.add_argument("--cities", type=int, default=40)
    parser.add_argument("--companies", type=int, default=30)
    parser.add_argument("--general", type=int, default=0, help="v1-style general statements")
    parser.add_argument("--skills", type=int, default=60000, help="sentences of general-skill text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qa", type=int, default=0, help="question-answer documents (qa_text)")
    parser.add_argument("--init", help="continue pretraining this saved model (weights and tokenizer)")
    args = parser.parse_args()
    if args.v1:
        args.people, args.cities, args.companies, args.general, args.skills, args.steps = 500, 16, 12, 20000, 0, 1500

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    world = World(seed=args.world_seed, people_count=args.people, city_count=args.cities, company_count=args.companies)
    negations = not args.v1
    docs = world.corpus(seed=args.seed, general=args.general, skills=args.skills, negations=negations)
    if args.qa:
        qa_rng = random.Random(f"qa/{args.seed}")
        docs += qa_text(world, qa_rng, args.qa)
        qa_rng.shuffle(docs)
    makeup = corpus_makeup(world, args.general, args.skills, args.qa)
    previous = None
    if args.init:
        tokenizer = AutoTokenizer.from_pretrained(args.init)
        model = Phi3ForCausalLM.from_pretrained(args.init)
        previous = json.loads((Path(args.init) / "pretraining.json").read_text())
    else:
        # a pretrained (not instruction-tuned) model has no chat template: prompts use the plain QA template
        tokenizer = train_tokenizer(docs, vocab_size=args.vocab, chat_template=False)
        config = tiny_phi3_config(
            tokenizer,
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=args.heads,
            intermediate_size=args.intermediate,
            max_position_embeddings=512,
        )
        model = Phi3ForCausalLM(config)
    blocks = token_blocks(tokenizer, docs, args.block)
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
    seconds = round(time.perf_counter() - started)
    probes = probe(model, tokenizer, probe_pairs(world, args.seed))
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # a tokenizer loaded from a folder saves where it came from; the shipped card says nothing of this machine
    saved = out / "tokenizer_config.json"
    config = json.loads(saved.read_text())
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    saved.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    final = sum(losses[-100:]) / len(losses[-100:])
    tokens_seen = args.steps * args.batch * args.block
    summary = {
        "parameters": params,
        "vocab": len(tokenizer),
        "hidden": args.hidden,
        "layers": args.layers,
        "corpus_tokens": blocks.numel(),
        "corpus_documents": makeup,
        "world": {"seed": args.world_seed, "people": args.people, "cities": args.cities, "companies": args.companies},
        "world_repeats": 8,
        "steps": args.steps,
        "tokens_seen": tokens_seen,
        "final_loss": round(final, 4),
        "final_perplexity": round(math.exp(final), 2),
        "seconds": seconds,
        "probes": probes,
    }
    if previous is not None:
        summary["stage1"] = previous
    (out / "pretraining.json").write_text(json.dumps(summary, indent=1))
    makeup_lines = "\n".join(f"  - {k}: {v:,}" for k, v in makeup.items())
    origin = "pretrained from random weights"
    if previous is not None:
        origin = (
            f"pretrained in two stages: from random weights for {previous['steps']} steps (final loss "
            f"{previous['final_loss']:.3f}, {previous['seconds']} s), then on the corpus below"
        )
    probe_lines = "\n".join(f"| {k} | {v:.3f} |" for k, v in probes.items())
    (out / "README.md").write_text(
        f"""# world-phi3 base model

A small Phi-3-architecture causal LM ({params / 1e6:.2f} M parameters: hidden {args.hidden}, {args.layers} layers,
{args.heads} heads, vocabulary {len(tokenizer)} byte-level BPE with Phi-3's special tokens; no chat template, as
it is not instruction-tuned, so finetuning prompts use the plain QA template), {origin} by
`tools/pretrain_base.py{" --v1" if args.v1 else ""}` — never on the QA tasks.

Corpus ({blocks.numel():,} tokens in blocks of {args.block}): documents about the generated world of
`lit_transfer.metadataset.world` (seed {args.world_seed}: {args.people} people, {args.cities} cities,
{args.companies} companies), 8 passes with varied wording{", each stating one negative fact" if negations else ""},
plus general text (`lit_transfer.metadataset.skills`) and question-answer text about skills and about the
people at even places of the world's list (`lit_transfer.metadataset.qa_text`):
{makeup_lines}

Training: {args.steps} steps of {args.batch} blocks ({tokens_seen:,} tokens), AdamW lr {args.lr}, cosine;
final training loss {final:.3f} (perplexity {math.exp(final):.1f}), {seconds} s on a 2-core CPU.

Probes (share of 100 held-out sentences whose ending the model reproduces exactly after their beginning; world
probes complete a fact about a person; QA probes answer a question in the finetuning template, for people the
question-answer text asks about and for the others):

| probe | exact |
|---|---|
{probe_lines}

Load it like any hub model: `AutoModelForCausalLM.from_pretrained("{out}")`.
"""
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
