"""General-skill text for pretraining the small base model: what every real LLM has read before it is finetuned.

Numbers and arithmetic, counting, lists and their order, copying and editing words, dates and units, and short
instructions followed by their result — as declarative web-like sentences, never in the question-answer format
of the tasks. A base model that has read them can learn task families it was never shown, the way Phi-3 can.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from lit_transfer.metadataset.vocab import DAYS, ITEMS, MONTHS, ORDINALS
from lit_transfer.metadataset.vocab import word as _word


def replace_letter(word: str, old: str, new: str) -> str:
    return word.replace(old, new)


def _arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    small_a, small_b = rng.randint(0, 12), rng.randint(0, 12)
    return rng.choice(
        [
            f"{a} plus {b} is {a + b}.",
            f"{max(a, b)} minus {min(a, b)} is {max(a, b) - min(a, b)}.",
            f"{small_a} times {small_b} is {small_a * small_b}.",
            f"{a} is {'greater' if a > b else 'less' if a < b else 'equal to'}{' than' if a != b else ''} {b}.",
            f"The sum of {a} and {b} is {a + b}.",
        ]
    )


def _counting(rng: random.Random) -> str:
    items = rng.sample(ITEMS, rng.randint(1, 9))
    word = _word(rng, rng.randint(1, 3))
    letter = rng.choice(sorted(set(word)))
    count = word.count(letter)
    return rng.choice(
        [
            f"The list {', '.join(items)} has {len(items)} items.",
            f"The letter {letter} occurs {count} time{'s' if count > 1 else ''} in {word}.",
            f"The word {word} has {len(word)} letters.",
            f"Counting {', '.join(items)} gives {len(items)}.",
        ]
    )


def _lists(rng: random.Random) -> str:
    items = rng.sample(ITEMS, rng.randint(2, 6))
    i = rng.randrange(len(items))
    numbers = rng.sample(range(100), rng.randint(2, 5))
    listed, ordered = ", ".join(map(str, numbers)), ", ".join(map(str, sorted(numbers)))
    return rng.choice(
        [
            f"In the list {', '.join(items)}, the {ORDINALS[i]} item is {items[i]}.",
            f"In the list {', '.join(items)}, the last item is {items[-1]}.",
            f"The numbers {listed} in increasing order are {ordered}.",
            f"The largest of {listed} is {max(numbers)}.",
            f"The list {', '.join(items)} in reverse order is {', '.join(reversed(items))}.",
        ]
    )


def _words(rng: random.Random) -> str:
    word = _word(rng, rng.randint(1, 3))
    old = rng.choice(sorted(set(word)))
    new = rng.choice("aeioulmnrst")
    return rng.choice(
        [
            f"The word {word} spelled backwards is {word[::-1]}.",
            f"The word {word} in capital letters is {word.upper()}.",
            f"The first letter of {word} is {word[0]}, and the last letter is {word[-1]}.",
            f"Replacing {old} with {new} in {word} gives {replace_letter(word, old, new)}.",
            f"The word {word} without its last letter is {word[:-1] or word}.",
            f"Adding s to the end of {word} gives {word}s.",
        ]
    )


def _dates_units(rng: random.Random) -> str:
    hours, weeks, km = rng.randint(1, 24), rng.randint(1, 12), rng.randint(1, 20)
    year, age = rng.randint(1900, 2000), rng.randint(1, 90)
    day, shift = rng.randrange(7), rng.randint(1, 6)
    month = rng.randrange(12)
    return rng.choice(
        [
            f"{hours} hours are {hours * 60} minutes.",
            f"{weeks} weeks are {weeks * 7} days.",
            f"{km} kilometres are {km * 1000} metres.",
            f"Someone born in {year} turns {age} in {year + age}.",
            f"{shift} days after {DAYS[day]} it is {DAYS[(day + shift) % 7]}.",
            f"The month after {MONTHS[month]} is {MONTHS[(month + 1) % 12]}.",
        ]
    )


def _instructions(rng: random.Random) -> str:
    word = _word(rng, rng.randint(1, 2))
    a = rng.randint(0, 20)
    b = a + rng.randint(1, 5)
    return rng.choice(
        [
            f"Asked to repeat the word {word}, one writes {word}.",
            f"Asked to say {word} twice, one writes {word} {word}.",
            f"Asked to write the numbers from {a} to {b}, one writes {', '.join(map(str, range(a, b + 1)))}.",
            f"Asked to answer with yes or no whether {a} is even, one writes {'yes' if a % 2 == 0 else 'no'}.",
        ]
    )


SKILLS: dict[str, Callable[[random.Random], str]] = {
    "arithmetic": _arithmetic,
    "counting": _counting,
    "lists": _lists,
    "words": _words,
    "dates_units": _dates_units,
    "instructions": _instructions,
}


def skills_text(rng: random.Random, count: int) -> list[str]:
    """``count`` sentences, the skills in equal shares (round robin), each drawn from ``rng``."""
    names = list(SKILLS)
    return [SKILLS[names[i % len(names)]](rng) for i in range(count)]
