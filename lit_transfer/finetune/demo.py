"""Offline demo material: a deterministic toy QA dataset and a tiny random Phi-3 with its own tokenizer.

Nothing here is downloaded, so tests and the README's demo run on a machine without network. The toy task asks
for attributes of invented people; a model can only answer by learning the facts in the training split, which
the validation and test splits ask about in other words.
"""

from __future__ import annotations

import random
from pathlib import Path

from lit_transfer.finetune.models import build_tiny_phi3
from lit_transfer.io import write_qa_folder

_SYLLABLES = ["ka", "lo", "mi", "ren", "to", "va", "sel", "dor", "an", "bri", "ku", "nes", "ol", "par", "zu"]
_CITIES = ["Varnholm", "Ostrel", "Quendi", "Marrow", "Tilsen", "Brakka", "Eldwin", "Sorrel"]
_COLOURS = ["red", "blue", "green", "amber", "violet", "white", "black", "silver"]
_TEMPLATES = {
    "city": ["Where does {name} live?", "In which city is {name}'s home?"],
    "colour": ["What is {name}'s favourite colour?", "Which colour does {name} like best?"],
}


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(2)).capitalize()


def toy_qa_examples(seed: int = 0, people: int = 40) -> dict[str, list[dict[str, str]]]:
    """Train asks each fact with its first wording; validation and test ask it with the second."""
    rng = random.Random(seed)
    names = sorted({_name(rng) for _ in range(people * 3)})[:people]
    splits: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for i, name in enumerate(names):
        facts = {"city": rng.choice(_CITIES), "colour": rng.choice(_COLOURS)}
        held_out = "validation" if i % 2 == 0 else "test"
        for attr, answer in facts.items():
            first, second = _TEMPLATES[attr]
            splits["train"].append({"id": f"{name}-{attr}-0", "question": first.format(name=name), "answer": answer})
            splits[held_out].append({"id": f"{name}-{attr}-1", "question": second.format(name=name), "answer": answer})
    return splits


def corpus(splits: dict[str, list[dict[str, str]]]) -> list[str]:
    return [f"{r['question']} {r['answer']}" for rows in splits.values() for r in rows]


def make_tiny_assets(root: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``<root>/data/toy_qa`` and ``<root>/models/tiny-phi3`` (random weights, chat template)."""
    root = Path(root)
    splits = toy_qa_examples(seed)
    data = write_qa_folder(splits, root / "data" / "toy_qa")
    model = build_tiny_phi3(root / "models" / "tiny-phi3", corpus(splits), vocab_size=384, seed=seed)
    return data, model
