"""The fixed, generated world behind the `knowledge` category: countries and their capitals, people and
their pets and favourite colours.

The world does not depend on the data seed (a seed changes which questions are drawn, never the facts),
and it is small (24 + 24 + 24 = 72 facts) so the ~1M-parameter tiny model can memorise all of it from the
pre-training text ([tiny-feasibility]: model M learns lookup tasks of this size within a few
thousand steps).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

WORLD_SEED = 20261124
NUM_COUNTRIES = 24
NUM_PEOPLE = 24

_ONSETS = ("b", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "th", "gr", "fl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "m")
_COUNTRY_ENDINGS = ("ia", "land", "mark", "or", "ova")

PETS: tuple[str, ...] = ("hen", "fox", "owl", "yak", "cat", "dog", "ram", "eel", "bat", "elk", "ape", "cod")
COLOURS: tuple[str, ...] = ("red", "blue", "green", "teal", "pink", "gold", "grey", "tan", "plum", "jade")


@dataclass(frozen=True)
class World:
    capitals: dict[str, str]  # country -> capital
    pets: dict[str, str]  # person -> pet
    colours: dict[str, str]  # person -> favourite colour


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _unique_names(rng: random.Random, count: int, make, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = make(rng).capitalize()
        if name not in taken and 3 <= len(name) <= 9:
            taken.add(name)
            names.append(name)
    return names


@functools.lru_cache(maxsize=1)
def world() -> World:
    """The knowledge world (deterministic; built once per process)."""
    rng = random.Random(WORLD_SEED)
    taken: set[str] = set()
    countries = _unique_names(rng, NUM_COUNTRIES, lambda r: _syllable(r) + r.choice(_COUNTRY_ENDINGS), taken)
    capitals = _unique_names(rng, NUM_COUNTRIES, lambda r: _syllable(r) + _syllable(r), taken)
    people = _unique_names(rng, NUM_PEOPLE, lambda r: _syllable(r) + r.choice(("a", "o", "i", "en")), taken)
    return World(
        capitals=dict(zip(countries, capitals, strict=True)),
        pets={person: rng.choice(PETS) for person in people},
        colours={person: rng.choice(COLOURS) for person in people},
    )
