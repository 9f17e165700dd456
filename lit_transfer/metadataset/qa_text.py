"""Question-answer text for pretraining the base model: the questions and answers every real LLM has read.

A real base model has seen questions answered in countless forms before anyone finetunes it, so a new QA dataset
asks it to adapt, not to learn answering from nothing: some tasks it half-solves zero-shot, others it does not,
and how much a task needs to be taught decides how hard a pipeline should train. This text asks about the general
skills and about the world's facts in the plain ``Question: ...`` / ``Answer: ...`` template (and ``Q:``/``A:``),
always phrased unlike the task families' questions, and about the facts of only half of the people (even places
in ``World.people``), so recalling the other half's facts in QA form is an ability the model must generalize.
"""

from __future__ import annotations

import random

from lit_transfer.metadataset.skills import replace_letter
from lit_transfer.metadataset.vocab import ITEMS, ORDINALS
from lit_transfer.metadataset.vocab import word as _word
from lit_transfer.metadataset.world import Person, World


def _skill_pair(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    x, y = rng.randint(0, 12), rng.randint(0, 12)
    word = _word(rng, rng.randint(1, 3))
    letter = rng.choice(sorted(set(word)))
    items = rng.sample(ITEMS, rng.randint(2, 6))
    i = rng.randrange(len(items))
    numbers = rng.sample(range(100), rng.randint(2, 5))
    new = rng.choice("aeioulmnrst")
    hours, weeks = rng.randint(1, 24), rng.randint(1, 12)
    return rng.choice(
        [
            (f"Add {a} and {b}.", str(a + b)),
            (f"Subtract {min(a, b)} from {max(a, b)}.", str(max(a, b) - min(a, b))),
            (f"Multiply {x} by {y}.", str(x * y)),
            (f"Which is larger, {a} or {b}?", str(max(a, b))),
            (f"Count the items in: {', '.join(items)}.", str(len(items))),
            (f"Count the letter {letter} in the word {word}.", str(word.count(letter))),
            (f"Give the {ORDINALS[i]} of these: {', '.join(items)}.", items[i]),
            (f"Put {', '.join(map(str, numbers))} from smallest to largest.", ", ".join(map(str, sorted(numbers)))),
            (f"Reverse the letters of {word}.", word[::-1]),
            (f"Write {word} in capital letters.", word.upper()),
            (f"Change each {letter} in {word} to {new}.", replace_letter(word, letter, new)),
            (f"Convert {hours} hours to minutes.", str(hours * 60)),
            (f"Convert {weeks} weeks to days.", str(weeks * 7)),
            (f"Repeat the word {word}.", word),
        ]
    )


def _world_pair(rng: random.Random, world: World, person: Person) -> tuple[str, str]:
    other = rng.choice(sorted({p.occupation for p in world.people} - {person.occupation}))
    job = rng.choice([person.occupation, other])
    return rng.choice(
        [
            (f"What is the job of {person.name}?", person.occupation),
            (f"Where is the home of {person.name}?", person.city),
            (f"Which colour does {person.name} like best?", person.colour),
            (f"Which animal lives with {person.name}?", person.pet),
            (f"Who employs {person.name}?", person.employer),
            (f"When was {person.name} born?", str(person.born)),
            (f"Who is the best friend of {person.name}?", person.friend),
            (f"Does {person.name} work as a {job}?", "yes" if job == person.occupation else "no"),
            (f"What kind of thing is {person.name}?", "a person"),
            (f"What kind of thing is {person.city}?", "a city"),
            (f"What kind of thing is {person.employer}?", "a company"),
        ]
    )


def asked_people(world: World) -> list[Person]:
    """The people whose facts the question-answer text asks about: those at even places of ``world.people``."""
    return world.people[::2]


def qa_text(world: World, rng: random.Random, count: int, world_share: float = 0.5) -> list[str]:
    """``count`` question-answer documents: ``world_share`` about the facts of the people at even places of
    ``world.people``, the rest about general skills; three in four in the plain ``Question:``/``Answer:`` template,
    the others in ``Q:``/``A:``."""
    asked = asked_people(world)
    docs = []
    for _ in range(count):
        if rng.random() < world_share:
            question, answer = _world_pair(rng, world, rng.choice(asked))
        else:
            question, answer = _skill_pair(rng)
        q, a = ("Question", "Answer") if rng.random() < 0.75 else ("Q", "A")
        docs.append(f"{q}: {question}\n{a}: {answer}")
    return docs
