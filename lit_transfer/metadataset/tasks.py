"""Synthetic QA task families, deterministic from a seed, each written as train/validation/test JSONL.

The families differ in what finetuning must teach — recall of pretrained facts, reading a context, arithmetic,
two-hop recall, string manipulation, yes/no judgement, counting, calendar and unit reasoning, choosing among
given options, typing an entity, negation, whole-sentence answers, list order and word editing — and each has a
``level`` knob (difficulty, answer length) besides the split sizes, so tasks differ in which pipeline works.
Level 1 of the first eight families is the first suite's task, drawn identically.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lit_transfer.io import safe_name, write_qa_folder
from lit_transfer.metadataset.vocab import COLOURS, COUNTRIES, DAYS, MONTHS, OCCUPATIONS, ORDINALS, PETS
from lit_transfer.metadataset.vocab import word as _word
from lit_transfer.metadataset.world import Person, World

Example = dict[str, str]
ATTRIBUTES = {
    "city": ("Where does {n} live?", lambda p: p.city),
    "occupation": ("What does {n} do for a living?", lambda p: p.occupation),
    "colour": ("What is the favourite colour of {n}?", lambda p: p.colour),
    "pet": ("Which animal does {n} keep as a pet?", lambda p: p.pet),
    "born": ("In which year was {n} born?", lambda p: str(p.born)),
    "employer": ("Which company employs {n}?", lambda p: p.employer),
}


def _pool(world: World, attr: str) -> list[str]:
    """Every value an attribute takes in the world."""
    return {
        "city": sorted(world.city_country),
        "occupation": OCCUPATIONS,
        "colour": COLOURS,
        "pet": PETS,
        "employer": sorted(world.company_city),
    }[attr]


def closed_book(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Recall a fact the base model read during pretraining; level 2 asks facts with many more possible values."""
    out = []
    for p in people:
        attr = rng.choice(["occupation", "colour", "pet"] if level == 1 else ["city", "employer", "born"])
        template, value = ATTRIBUTES[attr]
        out.append({"question": template.format(n=p.name), "answer": value(p)})
    return out


def reading(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Answer from a context whose facts contradict the world, so only reading helps; level 2 hides the answer
    among three distractor sentences."""
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
        sentence = {
            "city": "{n} moved to {v}.",
            "occupation": "{n} now works as a {v}.",
            "colour": "These days {n} prefers {v}.",
            "pet": "{n} adopted a {v}.",
        }[attr]
        distractor_sentence = {
            "city": "{n} stayed in {v}.",
            "occupation": "{n} is a {v}.",
            "colour": "{n} likes {v}.",
            "pet": "{n} has a {v}.",
        }[attr]
        distractors = [rng.choice(world.people) for _ in range(1 if level == 1 else 3)]
        parts = [sentence.format(n=p.name, v=answer)]
        parts += [distractor_sentence.format(n=d.name, v=ATTRIBUTES[attr][1](d)) for d in distractors]
        if level > 1:
            rng.shuffle(parts)
        out.append({"question": ATTRIBUTES[attr][0].format(n=p.name), "answer": answer, "context": " ".join(parts)})
    return out


def arithmetic(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Level 1: sums and differences up to 20; level 2: up to 99; level 3: products up to 12 x 12."""
    out = []
    top = 20 if level == 1 else 99
    for _ in people:
        if level == 3:
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            out.append({"question": f"What is {a} times {b}?", "answer": str(a * b)})
            continue
        a, b = rng.randint(0, top), rng.randint(0, top)
        if rng.random() < 0.5:
            out.append({"question": f"What is {a} plus {b}?", "answer": str(a + b)})
        else:
            out.append({"question": f"What is {max(a, b)} minus {min(a, b)}?", "answer": str(abs(a - b))})
    return out


def multi_hop(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Two recalls chained: level 1 the friend's favourite colour or the employer's city; level 2 the friend's
    occupation or the country the person lives in; level 3 the questions of level 1 with the first hop stated in
    the context (who the friend or the employer is), so that only the second is recalled."""
    out = []
    for p in people:
        friend = world.person(p.friend)
        if level in (1, 3):
            if rng.random() < 0.5:
                question, answer = f"What is the favourite colour of the best friend of {p.name}?", friend.colour
                context = f"The best friend of {p.name} is {friend.name}."
            else:
                question, answer = f"In which city is the employer of {p.name} based?", world.company_city[p.employer]
                context = f"{p.name} is employed by {p.employer}."
            out.append({"question": question, "answer": answer} | ({"context": context} if level == 3 else {}))
        elif rng.random() < 0.5:
            out.append(
                {"question": f"What does the best friend of {p.name} do for a living?", "answer": friend.occupation}
            )
        else:
            out.append({"question": f"In which country does {p.name} live?", "answer": world.city_country[p.city]})
    return out


def string_ops(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Reverse, capitalise, first letter; level 2: longer words, and the last letter too."""
    out = []
    for _ in people:
        word = _word(rng, rng.randint(1, 2) if level == 1 else rng.randint(2, 3))
        op = rng.choice(["reverse", "upper", "first"] if level == 1 else ["reverse", "upper", "first", "last"])
        if op == "reverse":
            out.append({"question": f"Spell the word {word} backwards.", "answer": word[::-1]})
        elif op == "upper":
            out.append({"question": f"Write the word {word} in capital letters.", "answer": word.upper()})
        elif op == "first":
            out.append({"question": f"What is the first letter of the word {word}?", "answer": word[0]})
        else:
            out.append({"question": f"What is the last letter of the word {word}?", "answer": word[-1]})
    return out


def yes_no(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Verify a claim; half the claims are false. Level 1 recalls the person's city, job, colour or pet; level 2
    their city and employer; level 3 judges a claim about numbers or a list (is one number greater than another,
    is an item in a list), which a small model can learn where recall-and-compare stays at chance."""
    if level == 3:
        return [_yes_no_skill(rng) for _ in people]
    out = []
    for p in people:
        attr = rng.choice(["city", "occupation", "colour", "pet"] if level == 1 else ["city", "employer"])
        truth = ATTRIBUTES[attr][1](p)
        pool = sorted({q.city for q in world.people}) if attr == "city" and level == 1 else _pool(world, attr)
        claim = truth if rng.random() < 0.5 else rng.choice([v for v in pool if v != truth])
        question = {
            "city": f"Does {p.name} live in {claim}?",
            "occupation": f"Is {p.name} a {claim}?",
            "colour": f"Is {claim} the favourite colour of {p.name}?",
            "pet": f"Does {p.name} keep a {claim}?",
            "employer": f"Does {claim} employ {p.name}?",
        }[attr]
        out.append({"question": question, "answer": "yes" if claim == truth else "no"})
    return out


def _yes_no_skill(rng: random.Random) -> Example:
    if rng.random() < 0.5:
        a, b = rng.sample(range(100), 2)
        return {"question": f"Is {a} greater than {b}?", "answer": "yes" if a > b else "no"}
    items = rng.sample(PETS + COLOURS, rng.randint(3, 6))
    inside = rng.random() < 0.5
    probe = rng.choice(items) if inside else rng.choice([x for x in PETS + COLOURS if x not in items])
    return {"question": f"Is {probe} in the list {', '.join(items)}?", "answer": "yes" if inside else "no"}


def counting(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Items in a list or a letter in a word; level 2: longer lists and words."""
    out = []
    for _ in people:
        if rng.random() < 0.5:
            items = rng.sample(PETS + COLOURS, rng.randint(1, 7) if level == 1 else rng.randint(5, 12))
            out.append({"question": f"How many items are in the list {', '.join(items)}?", "answer": str(len(items))})
        else:
            word = _word(rng, rng.randint(2, 3) if level == 1 else rng.randint(3, 4))
            letter = rng.choice(sorted(set(word)))
            out.append(
                {
                    "question": f"How many times does the letter {letter} occur in {word}?",
                    "answer": str(word.count(letter)),
                }
            )
    return out


def dates_units(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Level 1: hours, weeks, birth years; level 2: weekdays, months and kilometres."""
    out = []
    for _ in people:
        kind = rng.random()
        if level > 1:
            if kind < 0.4:
                day, shift = rng.randrange(7), rng.randint(1, 6)
                q = f"Which day is {shift} days after {DAYS[day]}?"
                out.append({"question": q, "answer": DAYS[(day + shift) % 7]})
            elif kind < 0.7:
                month = rng.randrange(12)
                out.append(
                    {"question": f"Which month comes after {MONTHS[month]}?", "answer": MONTHS[(month + 1) % 12]}
                )
            else:
                km = rng.randint(1, 20)
                out.append({"question": f"How many metres are in {km} kilometres?", "answer": str(km * 1000)})
        elif kind < 0.4:
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


def multiple_choice(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Pick the option of a given kind; the lettered options are in the context and the answer is the option
    itself (answering with its letter, every run of the small base model stayed at the most frequent letter: it
    cannot point from a letter back to its option). Level 1: the animal or the colour among three options; level 2:
    the city, the company or the country among five names."""
    out = []
    letters = "ABCDE"
    if level == 1:
        kinds, n = {"animal": PETS, "colour": COLOURS}, 3
    else:
        kinds, n = {"city": sorted(world.city_country), "company": sorted(world.company_city), "country": COUNTRIES}, 5
    for _ in people:
        kind = rng.choice(sorted(kinds))
        truth = rng.choice(kinds[kind])
        others = [v for k, values in kinds.items() if k != kind for v in values]
        if level > 1:
            others += [q.name.split()[0] for q in rng.sample(world.people, 8)]
        options = [truth, *rng.sample(others, n - 1)]
        rng.shuffle(options)
        context = " ".join(f"{letters[i]}) {v}" for i, v in enumerate(options))
        question = f"Which option is {'an' if kind == 'animal' else 'a'} {kind}?"
        out.append({"question": question, "answer": truth, "context": context})
    return out


def entity_type(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Is a name a person, a place or a company? Level 2 adds countries and names people by first name only."""
    kinds = ["person", "place", "company"] + (["country"] if level > 1 else [])
    cities, companies = sorted(world.city_country), sorted(world.company_city)
    out = []
    for p in people:
        kind = rng.choice(kinds)
        name = {
            "person": p.name if level == 1 else p.name.split()[0],
            "place": rng.choice(cities),
            "company": rng.choice(companies),
            "country": rng.choice(COUNTRIES),
        }[kind]
        question = f"Is {name} a person, a place or a company?"
        if level > 1:
            question = f"Is {name} a person, a place, a company or a country?"
        out.append({"question": question, "answer": kind})
    return out


def negation(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Questions that turn on a "not": level 1 names the option that is not so; level 2 answers yes or no to a
    claim put as "is it false that"."""
    out = []
    for p in people:
        attr = rng.choice(["pet", "colour", "occupation"] if level == 1 else ["city", "pet", "occupation"])
        truth = ATTRIBUTES[attr][1](p)
        other = rng.choice([v for v in _pool(world, attr) if v != truth])
        if level == 1:
            a, b = (truth, other) if rng.random() < 0.5 else (other, truth)
            noun = {"pet": "the pet", "colour": "the favourite colour", "occupation": "the occupation"}[attr]
            out.append({"question": f"Which of {a} or {b} is not {noun} of {p.name}?", "answer": other})
        else:
            claim = truth if rng.random() < 0.5 else other
            statement = {
                "city": f"{p.name} lives in {claim}",
                "pet": f"{p.name} keeps a {claim}",
                "occupation": f"{p.name} is a {claim}",
            }[attr]
            out.append({"question": f"Is it false that {statement}?", "answer": "no" if claim == truth else "yes"})
    return out


def sentence(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Answers that are whole sentences: level 1 one fact, level 2 three facts in one sentence."""
    out = []
    for p in people:
        if level == 1:
            attr = rng.choice(["occupation", "city", "pet"])
            question = {
                "occupation": f"Say in one sentence what {p.name} does for a living.",
                "city": f"Say in one sentence where {p.name} lives.",
                "pet": f"Say in one sentence which pet {p.name} keeps.",
            }[attr]
            answer = {
                "occupation": f"{p.name} works as a {p.occupation}.",
                "city": f"{p.name} lives in {p.city}.",
                "pet": f"{p.name} keeps a {p.pet}.",
            }[attr]
        else:
            question = f"Describe {p.name} in one sentence: job, home and pet."
            answer = f"{p.name} is a {p.occupation} who lives in {p.city} and keeps a {p.pet}."
        out.append({"question": question, "answer": answer})
    return out


def list_order(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Positions in a list: level 1 the first, second or last item of 4 to 7; level 2 the n-th item, or numbers
    sorted."""
    out = []
    for _ in people:
        items = rng.sample(PETS + COLOURS, rng.randint(4, 7) if level == 1 else rng.randint(3, 6))
        if level == 1:
            which = rng.choice(["first", "second", "last"])
            answer = {"first": items[0], "second": items[1], "last": items[-1]}[which]
            out.append({"question": f"What is the {which} item in the list {', '.join(items)}?", "answer": answer})
        elif rng.random() < 0.5:
            i = rng.randrange(1, len(items))
            out.append(
                {"question": f"What is the {ORDINALS[i]} item in the list {', '.join(items)}?", "answer": items[i]}
            )
        else:
            numbers = rng.sample(range(100), rng.randint(3, 5))
            question = f"Sort the numbers {', '.join(map(str, numbers))} in increasing order."
            out.append({"question": question, "answer": ", ".join(map(str, sorted(numbers)))})
    return out


def word_edit(world: World, people: list[Person], rng: random.Random, level: int = 1) -> list[Example]:
    """Copy a word with an edit: level 1 add or drop a last letter of a short word; level 2 longer words, and
    replace a letter too."""
    out = []
    for _ in people:
        word = _word(rng, rng.randint(1, 2) if level == 1 else rng.randint(2, 3))
        op = rng.choice(["drop", "add"] if level == 1 else ["replace", "drop", "add"])
        if op == "replace":
            old = rng.choice(sorted(set(word)))
            new = rng.choice([c for c in "aeioulmnrst" if c != old])
            out.append({"question": f"Replace every {old} with {new} in {word}.", "answer": word.replace(old, new)})
        elif op == "drop":
            out.append({"question": f"Write {word} without its last letter.", "answer": word[:-1]})
        else:
            out.append({"question": f"Add the letter s to the end of {word}.", "answer": word + "s"})
    return out


Generator = Callable[[World, list[Person], random.Random, int], list[Example]]
FAMILIES: dict[str, Generator] = {
    "closed_book": closed_book,
    "reading": reading,
    "arithmetic": arithmetic,
    "multi_hop": multi_hop,
    "string_ops": string_ops,
    "yes_no": yes_no,
    "counting": counting,
    "dates_units": dates_units,
    "multiple_choice": multiple_choice,
    "entity_type": entity_type,
    "negation": negation,
    "sentence": sentence,
    "list_order": list_order,
    "word_edit": word_edit,
}
LEVELS = {"arithmetic": 3, "yes_no": 3, "multi_hop": 3}  # families with more than two levels


@dataclass(frozen=True)
class TaskSpec:
    """One task: a family at a level (difficulty / answer length), its split sizes and the seed of its examples."""

    name: str
    family: str
    train: int = 256
    validation: int = 64
    test: int = 64
    seed: int = 0
    level: int = 1

    def __post_init__(self) -> None:
        safe_name(self.name, "task name")  # it names the task's data folder: it must stay inside ``tasks_dir``

    def generate(self, world: World) -> dict[str, list[Example]]:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown task family {self.family!r}; known: {', '.join(FAMILIES)}")
        if not 1 <= self.level <= LEVELS.get(self.family, 2):
            raise ValueError(f"task {self.name!r}: family {self.family} has levels 1..{LEVELS.get(self.family, 2)}")
        # level 1 draws exactly as the first suite did
        rng = random.Random(
            f"{self.family}/{self.seed}" if self.level == 1 else f"{self.family}/{self.level}/{self.seed}"
        )
        total = self.train + self.validation + self.test
        if total > len(world.people):
            raise ValueError(f"task {self.name!r} needs {total} examples; the world has {len(world.people)} people")
        # each person appears in one split only: validation measures recall and skill, not memorised answers
        people = rng.sample(world.people, total)
        examples = FAMILIES[self.family](world, people, rng, self.level)
        for i, example in enumerate(examples):
            example["id"] = f"{self.name}-{i}"
        cut = [self.train, self.train + self.validation]
        return {"train": examples[: cut[0]], "validation": examples[cut[0] : cut[1]], "test": examples[cut[1] :]}

    def write(self, world: World, out_dir: str | Path) -> Path:
        return write_qa_folder(self.generate(world), out_dir)


# The first suite: one task per family of the first eight, with sizes that differ so that cost and data size vary.
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


def _v2(family: str, level: int, train: int, seed: int) -> TaskSpec:
    return TaskSpec(
        f"{family}-l{level}-n{train}", family, train=train, validation=256, test=256, seed=seed, level=level
    )


# Suite v2: 14 families x levels x training sizes from 64 to 512, 256 validation and 256 test examples each,
# every task with its own seed (which also draws its own configs in the build). Sizes are larger where a family
# learned nothing from fewer examples in 8 epochs (reading and list order at 64, sentences of three facts at 128).
# Where no pipeline beat chance on the QA-pretrained base model (recall-and-compare yes/no, "is it false that",
# letters for recalled facts, two-digit subtraction, replacing letters, two recalls chained), the suite has
# learnable variants instead.
SUITE_V2 = [
    _v2(family, level, train, seed=100 + i)
    for i, (family, level, train) in enumerate(
        [
            ("closed_book", 1, 512), ("closed_book", 2, 256), ("closed_book", 1, 128),
            ("reading", 1, 256), ("reading", 2, 512),
            ("arithmetic", 1, 256), ("arithmetic", 1, 512), ("arithmetic", 3, 128),
            ("multi_hop", 3, 256), ("multi_hop", 3, 512),
            ("string_ops", 1, 64), ("string_ops", 2, 512), ("string_ops", 1, 256),
            ("yes_no", 3, 512), ("yes_no", 3, 128),
            ("counting", 1, 128), ("counting", 2, 512),
            ("dates_units", 1, 64), ("dates_units", 2, 256),
            ("multiple_choice", 1, 128), ("multiple_choice", 2, 512),
            ("entity_type", 1, 64), ("entity_type", 2, 256),
            ("negation", 1, 256), ("negation", 1, 128),
            ("sentence", 1, 512), ("sentence", 1, 64),
            ("list_order", 1, 256), ("list_order", 2, 128), ("list_order", 2, 256),
            ("word_edit", 1, 256), ("word_edit", 2, 64),
        ]
    )
]  # fmt: skip
SUITES = {"v1": DEFAULT_TASKS, "v2": SUITE_V2}
# the world each suite asks about (v2: enough people for 512 + 256 + 256 distinct ones, more places and companies)
SUITE_WORLDS = {
    "v1": {"people_count": 500, "city_count": 16, "company_count": 12},
    "v2": {"people_count": 1100, "city_count": 40, "company_count": 30},
}


def suite_world(suite: str = "v1", seed: int = 0) -> World:
    if suite not in SUITE_WORLDS:
        raise ValueError(f"unknown task suite {suite!r}; known: {', '.join(SUITES)}")
    return World(seed=seed, **SUITE_WORLDS[suite])


def write_tasks(out: str | Path, tasks: list[TaskSpec] | None = None, world: World | None = None) -> list[Path]:
    """Write every task of the suite under ``out/<task name>/``."""
    world = world or suite_world("v1")
    return [spec.write(world, Path(out) / spec.name) for spec in tasks or DEFAULT_TASKS]


def select_tasks(names: list[str] | None = None, seed: int | None = None, suite: str = "v1") -> list[TaskSpec]:
    """Tasks of a suite by name (default: all); with ``seed``, their examples drawn with it: another seed than
    the suite's gives new tasks of the same families, levels, sizes and world, which no recorded run has seen."""
    if suite not in SUITES:
        raise ValueError(f"unknown task suite {suite!r}; known: {', '.join(SUITES)}")
    by_name = {spec.name: spec for spec in SUITES[suite]}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    chosen = [by_name[n] for n in names or by_name]
    return chosen if seed is None else [replace(spec, seed=seed) for spec in chosen]
