"""The words the generated world, the general-skill text and the QA tasks share: names are made of syllables, and a
small closed set of occupations, colours, pets, countries, days, months and ordinals."""

from __future__ import annotations

import random

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "sh", "kl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m"]
OCCUPATIONS = ["baker", "pilot", "farmer", "doctor", "painter", "teacher", "miner", "sailor", "judge", "weaver"]
COLOURS = ["red", "blue", "green", "amber", "violet", "white", "black", "silver", "orange", "grey"]
PETS = ["cat", "dog", "owl", "horse", "goat", "parrot", "fox", "rabbit"]
COUNTRIES = ["Aldoria", "Besk", "Corvane", "Dunmark", "Esterra"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
ITEMS = PETS + COLOURS


def word(rng: random.Random, syllables: int) -> str:
    """A made-up word of ``syllables`` syllables."""
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))
