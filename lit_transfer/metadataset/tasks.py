"""Synthetic QA task families, deterministic from a seed, each written as train/validation/test JSONL.

The families differ in what finetuning must teach — recall of pretrained facts, reading a context, arithmetic,
two-hop recall, string manipulation, yes/no judgement, counting, calendar and unit reasoning — and in size and
answer length, so task meta-features carry information about which pipeline works.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lit_transfer.finetune.demo import write_qa_folder
from lit_transfer.metadataset.world import COLOURS, OCCUPATIONS, PETS, Person, World, _word

Example = dict[str, str]
ATTRIBUTES = {
    "city": ("Where does {n} live?", lambda p: p.city),
    "occupation": ("What does {n} do for a living?", lambda p: p.occupation),
    "colour": ("What is the favourite colour of {n}?", lambda p: p.colour),
    "pet": ("Which animal does {n} keep as a pet?", lambda p: p.pet),
    "born": ("In which year was {n} born?", lambda p: str(p.born)),
    "employer": ("Which company employs {n}?", lambda p: p.employer),
}


def closed_book(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    """Recall a fact the base model read during pretraining."""
    out = []
    for p in people:
        attr = rng.choice(["occupation", "colour", "pet"])
        template, value = ATTRIBUTES[attr]
        out.append({"question": template.format(n=p.name), "answer": value(p)})
    return out


def reading(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    """Answer from a context whose facts contradict the world, so only reading helps."""
    out = []
    for p in people:
        attr = rng.choice(["city", "occupation", "colour", "pet"])
        options = {
            "city": [q.city for q in world.people[:40]],
            "occupation": OCCUPATIONS,
            "colour": COLOURS,
            "pet": PETS,
        }[attr]
        answer = rng.choice(options)
        distractor = rng.choice(world.people)
        context = {
            "city": f"{p.name} moved to {answer}. {distractor.name} stayed in {distractor.city}.",
            "occupation": f"{p.name} now works as a {answer}. {distractor.name} is a {distractor.occupation}.",
            "colour": f"These days {p.name} prefers {answer}. {distractor.name} likes {distractor.colour}.",
            "pet": f"{p.name} adopted a {answer}. {distractor.name} has a {distractor.pet}.",
        }[attr]
        out.append({"question": ATTRIBUTES[attr][0].format(n=p.name), "answer": answer, "context": context})
    return out


def arithmetic(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    out = []
    for _ in people:
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        if rng.random() < 0.5:
            out.append({"question": f"What is {a} plus {b}?", "answer": str(a + b)})
        else:
            out.append({"question": f"What is {max(a, b)} minus {min(a, b)}?", "answer": str(abs(a - b))})
    return out


def multi_hop(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    """Two recalls chained: the friend's favourite colour, or the employer's city."""
    out = []
    for p in people:
        if rng.random() < 0.5:
            friend = world.person(p.friend)
            out.append(
                {"question": f"What is the favourite colour of the best friend of {p.name}?", "answer": friend.colour}
            )
        else:
            out.append(
                {
                    "question": f"In which city is the employer of {p.name} based?",
                    "answer": world.company_city[p.employer],
                }
            )
    return out


def string_ops(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    out = []
    for _ in people:
        word = _word(rng, rng.randint(1, 2))
        op = rng.choice(["reverse", "upper", "first"])
        if op == "reverse":
            out.append({"question": f"Spell the word {word} backwards.", "answer": word[::-1]})
        elif op == "upper":
            out.append({"question": f"Write the word {word} in capital letters.", "answer": word.upper()})
        else:
            out.append({"question": f"What is the first letter of the word {word}?", "answer": word[0]})
    return out


def yes_no(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    """Verify a claim about the world; half the claims are false."""
    out = []
    for p in people:
        attr = rng.choice(["city", "occupation", "colour", "pet"])
        truth = ATTRIBUTES[attr][1](p)
        pool = {
            "city": sorted({q.city for q in world.people}),
            "occupation": OCCUPATIONS,
            "colour": COLOURS,
            "pet": PETS,
        }[attr]
        claim = truth if rng.random() < 0.5 else rng.choice([v for v in pool if v != truth])
        question = {
            "city": f"Does {p.name} live in {claim}?",
            "occupation": f"Is {p.name} a {claim}?",
            "colour": f"Is {claim} the favourite colour of {p.name}?",
            "pet": f"Does {p.name} keep a {claim}?",
        }[attr]
        out.append({"question": question, "answer": "yes" if claim == truth else "no"})
    return out


def counting(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    out = []
    for _ in people:
        if rng.random() < 0.5:
            items = rng.sample(PETS + COLOURS, rng.randint(1, 7))
            out.append({"question": f"How many items are in the list {', '.join(items)}?", "answer": str(len(items))})
        else:
            word = _word(rng, rng.randint(2, 3))
            letter = rng.choice(sorted(set(word)))
            out.append(
                {
                    "question": f"How many times does the letter {letter} occur in {word}?",
                    "answer": str(word.count(letter)),
                }
            )
    return out


def dates_units(world: World, people: list[Person], rng: random.Random) -> list[Example]:
    out = []
    for _ in people:
        kind = rng.random()
        if kind < 0.4:
            hours = rng.randint(1, 24)
            out.append({"question": f"How many minutes are in {hours} hours?", "answer": str(hours * 60)})
        elif kind < 0.8:
            weeks = rng.randint(1, 12)
            out.append({"question": f"How many days are in {weeks} weeks?", "answer": str(weeks * 7)})
        else:
            year, age = rng.randint(1900, 1990), rng.randint(1, 30)
            out.append(
                {
                    "question": f"Someone was born in {year}. In which year do they turn {age}?",
                    "answer": str(year + age),
                }
            )
    return out


FAMILIES: dict[str, Callable[[World, list[Person], random.Random], list[Example]]] = {
    "closed_book": closed_book,
    "reading": reading,
    "arithmetic": arithmetic,
    "multi_hop": multi_hop,
    "string_ops": string_ops,
    "yes_no": yes_no,
    "counting": counting,
    "dates_units": dates_units,
}


@dataclass(frozen=True)
class TaskSpec:
    """One task: a family, its split sizes and the seed that draws its examples."""

    name: str
    family: str
    train: int = 256
    validation: int = 64
    test: int = 64
    seed: int = 0

    def generate(self, world: World) -> dict[str, list[Example]]:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown task family {self.family!r}; known: {', '.join(FAMILIES)}")
        rng = random.Random(f"{self.family}/{self.seed}")
        total = self.train + self.validation + self.test
        if total > len(world.people):
            raise ValueError(f"task {self.name!r} needs {total} examples; the world has {len(world.people)} people")
        # each person appears in one split only: validation measures recall and skill, not memorised answers
        people = rng.sample(world.people, total)
        examples = FAMILIES[self.family](world, people, rng)
        for i, example in enumerate(examples):
            example["id"] = f"{self.name}-{i}"
        cut = [self.train, self.train + self.validation]
        return {"train": examples[: cut[0]], "validation": examples[cut[0] : cut[1]], "test": examples[cut[1] :]}

    def write(self, world: World, out_dir: str | Path) -> Path:
        return write_qa_folder(self.generate(world), out_dir)


# The default suite: one task per family, with sizes that differ so that cost and data size vary across tasks.
DEFAULT_TASKS = [
    TaskSpec("closed_book", "closed_book", train=352),
    TaskSpec("reading", "reading", train=256),
    TaskSpec("arithmetic", "arithmetic", train=320),
    TaskSpec("multi_hop", "multi_hop", train=352),
    TaskSpec("string_ops", "string_ops", train=192),
    TaskSpec("yes_no", "yes_no", train=256),
    TaskSpec("counting", "counting", train=288),
    TaskSpec("dates_units", "dates_units", train=224),
]


def write_tasks(out: str | Path, tasks: list[TaskSpec] | None = None, world_seed: int = 0) -> list[Path]:
    """Write every task of the suite under ``out/<task name>/``."""
    world = World(seed=world_seed)
    return [spec.write(world, Path(out) / spec.name) for spec in tasks or DEFAULT_TASKS]


def select_tasks(names: list[str] | None = None, seed: int = 0) -> list[TaskSpec]:
    """Tasks of the default suite by name (default: all), their examples drawn with ``seed``: another seed gives
    new tasks of the same families, sizes and world, which no run of the shipped meta-dataset (seed 0) has seen."""
    by_name = {spec.name: spec for spec in DEFAULT_TASKS}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [replace(by_name[n], seed=seed) for n in names or by_name]
