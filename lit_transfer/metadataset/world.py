"""A generated world of people, places and companies: the knowledge the small base model is pretrained on.

The QA tasks ask about this world, so a base model pretrained on its documents "knows" facts the way a real LLM
does, and finetuning teaches it the question-answer format and recall, as it would for Phi-3.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lit_transfer.metadataset.skills import skills_text
from lit_transfer.metadataset.vocab import COLOURS, COUNTRIES, OCCUPATIONS, PETS
from lit_transfer.metadataset.vocab import word as _word


@dataclass
class Person:
    name: str
    city: str
    occupation: str
    colour: str
    pet: str
    born: int
    employer: str
    friend: str = ""


@dataclass
class World:
    """Everything is derived from ``seed``; the same seed always gives the same world."""

    seed: int = 0
    people_count: int = 500
    city_count: int = 16
    company_count: int = 12
    people: list[Person] = field(init=False)
    city_country: dict[str, str] = field(init=False)
    company_city: dict[str, str] = field(init=False)
    company_founded: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        names: set[str] = set()
        cities = self._unique(rng, self.city_count, 2, names)
        companies = self._unique(rng, self.company_count, 2, names)
        self.city_country = {c: rng.choice(COUNTRIES) for c in cities}
        self.company_city = {c: rng.choice(cities) for c in companies}
        self.company_founded = {c: rng.randint(1800, 1990) for c in companies}
        first = self._unique(rng, self.people_count, 2, names)
        self.people = [
            Person(
                name=f"{n.capitalize()} {_word(rng, 2).capitalize()}",
                city=rng.choice(cities).capitalize(),
                occupation=rng.choice(OCCUPATIONS),
                colour=rng.choice(COLOURS),
                pet=rng.choice(PETS),
                born=rng.randint(1900, 2000),
                employer=rng.choice(companies).capitalize(),
            )
            for n in first
        ]
        for person in self.people:
            person.friend = rng.choice([p for p in self.people if p is not person]).name
        self.city_country = {c.capitalize(): v for c, v in self.city_country.items()}
        self.company_city = {c.capitalize(): v.capitalize() for c, v in self.company_city.items()}
        self.company_founded = {c.capitalize(): v for c, v in self.company_founded.items()}

    @staticmethod
    def _unique(rng: random.Random, count: int, syllables: int, taken: set[str]) -> list[str]:
        out = []
        while len(out) < count:
            word = _word(rng, syllables)
            if word not in taken:
                taken.add(word)
                out.append(word)
        return out

    def person(self, name: str) -> Person:
        return next(p for p in self.people if p.name == name)

    def documents(self, rng: random.Random, negations: bool = False) -> list[str]:
        """Encyclopedia-style paragraphs; the sentence order and wording vary so facts are not memorised as one
        string. With ``negations`` each paragraph also states one thing that is not so (a pet not kept, a city not
        lived in), which real text is full of."""
        docs = []
        for p in self.people:
            sentences = [
                rng.choice([f"{p.name} lives in {p.city}.", f"{p.name} has a home in {p.city}."]),
                rng.choice([f"{p.name} works as a {p.occupation}.", f"By trade, {p.name} is a {p.occupation}."]),
                f"The favourite colour of {p.name} is {p.colour}.",
                f"{p.name} keeps a {p.pet} as a pet.",
                rng.choice([f"{p.name} was born in {p.born}.", f"In {p.born}, {p.name} was born."]),
                f"{p.name} is employed by {p.employer}.",
                f"The best friend of {p.name} is {p.friend}.",
            ]
            if negations:
                other_pet = rng.choice([x for x in PETS if x != p.pet])
                other_city = rng.choice([c for c in self.city_country if c != p.city])
                sentences.append(
                    rng.choice([f"{p.name} does not keep a {other_pet}.", f"{p.name} does not live in {other_city}."])
                )
            rng.shuffle(sentences)
            docs.append(" ".join(sentences))
        for city, country in self.city_country.items():
            docs.append(f"{city} is a city in {country}. Many people live in {city}.")
        for company, city in self.company_city.items():
            docs.append(
                f"{company} is a company based in {city}. {company} was founded in {self.company_founded[company]}."
            )
        return docs

    def general_text(self, rng: random.Random, count: int) -> list[str]:
        """Short statements of arithmetic, counting, spelling and calendar facts, like the web text an LLM reads."""
        out = []
        for _ in range(count):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            word = _word(rng, rng.randint(1, 3))
            items = rng.sample(PETS + COLOURS, rng.randint(1, 7))
            year, age = rng.randint(1900, 2000), rng.randint(1, 90)
            out.append(
                rng.choice(
                    [
                        f"{a} plus {b} is {a + b}.",
                        f"{max(a, b)} minus {min(a, b)} is {max(a, b) - min(a, b)}.",
                        f"The word {word} spelled backwards is {word[::-1]}.",
                        f"The list {', '.join(items)} has {len(items)} items.",
                        f"Someone born in {year} turns {age} in {year + age}.",
                        f"{a} hours are {a * 60} minutes.",
                    ]
                )
            )
        return out

    def corpus(
        self, seed: int = 0, repeats: int = 8, general: int = 20000, skills: int = 0, negations: bool = False
    ) -> list[str]:
        """The pretraining documents: the world ``repeats`` times, ``general`` statements and ``skills`` sentences
        of general skills (``lit_transfer.metadataset.skills``), shuffled."""
        rng = random.Random(seed)
        docs = [d for _ in range(repeats) for d in self.documents(rng, negations)] + self.general_text(rng, general)
        docs += skills_text(rng, skills)
        rng.shuffle(docs)
        return docs
