"""Procedural task generators, one family of small tasks per general category.

Every generator draws one `TaskItem` from a `random.Random`: a chat prompt, its exact answer, and a prose
sentence that states the same fact for pre-training text (the sentence never repeats the prompt's
wording, so a model trained only on text continues prose but has not seen the chat question).
Prompts are short on purpose: the tiny model is character-level, and tokens per step set the build time
([tiny-feasibility]: ~12k tokens/s for model M on 2 cores).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tunesmith.data.general.world import world

WORDS: tuple[str, ...] = (
    "sun", "map", "cup", "box", "pen", "hat", "bee", "ant", "cow", "pig", "egg", "jar", "key", "log",
    "mop", "net", "oak", "pot", "rug", "tub", "van", "web", "zip", "bus", "car", "cap", "fig", "gem",
    "ink", "kid", "lid", "mud", "nut", "pea", "row", "sky", "toy", "wax", "bell", "book", "cake", "door",
    "fish", "frog", "lamp", "leaf", "moon", "nest", "rain", "rock", "ship", "star", "tree", "wind",
    "bird", "coin", "drum", "kite", "milk", "rose", "salt", "sand", "seed", "snow", "sock", "wolf",
)  # fmt: skip
"""Everyday words for the string tasks. None of them belongs to the demo domain (data/domain)."""

WRAPPERS: tuple[str, ...] = ("[]", "()", "<>", "{}", "**", "||")
PREFIXES: tuple[str, ...] = ("#", "@", "-", ">", "+", "=")


@dataclass(frozen=True)
class TaskItem:
    prompt: str  # the user turn
    answer: str  # the exact expected assistant turn
    sentence: str  # the same fact as a prose sentence, for pre-training text


Generator = Callable[[random.Random], TaskItem]


def _digits(rng: random.Random, low: int = 3, high: int = 5) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(low, high))]


def _join(values: list) -> str:
    return " ".join(str(v) for v in values)


# --- math: small arithmetic --------------------------------------------------------------------------
MAX_OPERAND = 20


def add(rng: random.Random) -> TaskItem:
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    return TaskItem(f"Compute {a} + {b}.", str(a + b), f"{a} plus {b} equals {a + b}.")


def sub(rng: random.Random) -> TaskItem:
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    a, b = max(a, b), min(a, b)
    return TaskItem(f"Compute {a} - {b}.", str(a - b), f"{a} minus {b} equals {a - b}.")


# --- reasoning: list and comparison logic ------------------------------------------------------------
def largest(rng: random.Random) -> TaskItem:
    xs = _digits(rng)
    return TaskItem(f"Largest of {_join(xs)}?", str(max(xs)), f"Of {_join(xs)}, the largest is {max(xs)}.")


def smallest(rng: random.Random) -> TaskItem:
    xs = _digits(rng)
    return TaskItem(f"Smallest of {_join(xs)}?", str(min(xs)), f"Of {_join(xs)}, the smallest is {min(xs)}.")


def more_than(rng: random.Random) -> TaskItem:
    a, b = rng.sample(range(10, 100), 2)
    relation = "more" if a > b else "less"
    return TaskItem(f"Is {a} more than {b}?", "yes" if a > b else "no", f"{a} is {relation} than {b}.")


def count(rng: random.Random) -> TaskItem:
    words = rng.sample(WORDS, rng.randint(2, 6))
    return TaskItem(
        f"How many words: {_join(words)}?",
        str(len(words)),
        f"There are {len(words)} words in {_join(words)}.",
    )


# --- instruction-following: output-format constraints ------------------------------------------------
def upper(rng: random.Random) -> TaskItem:
    w = rng.choice(WORDS)
    return TaskItem(f"Write {w} in capitals.", w.upper(), f"In capitals, {w} is {w.upper()}.")


def wrap(rng: random.Random) -> TaskItem:
    w, pair = rng.choice(WORDS), rng.choice(WRAPPERS)
    out = pair[0] + w + pair[1]
    return TaskItem(f"Wrap {w} in {pair}.", out, f"Wrapped in {pair}, {w} becomes {out}.")


def prefix(rng: random.Random) -> TaskItem:
    w, p = rng.choice(WORDS), rng.choice(PREFIXES)
    return TaskItem(f"Prefix {w} with {p}.", p + w, f"With the prefix {p}, {w} becomes {p + w}.")


def first_n(rng: random.Random) -> TaskItem:
    words = rng.sample(WORDS, rng.randint(3, 5))
    k = rng.randint(1, len(words) - 1)
    out = _join(words[:k])
    return TaskItem(
        f"Give the first {k} of: {_join(words)}", out, f"The first {k} of {_join(words)} are {out}."
    )


# --- reasoning-instruction-following: multi-step instructions ----------------------------------------
def sort_then_first_two(rng: random.Random) -> TaskItem:
    xs = _digits(rng, 3, 5)
    ordered = sorted(xs)
    out = _join(ordered[:2])
    return TaskItem(
        f"Sort {_join(xs)}, then give the first two.",
        out,
        f"Sorted, {_join(xs)} is {_join(ordered)}, and its first two are {out}.",
    )


def reverse_then_upper(rng: random.Random) -> TaskItem:
    w = rng.choice(WORDS)
    out = w[::-1].upper()
    return TaskItem(
        f"Reverse {w}, then write it in capitals.",
        out,
        f"Reversed, {w} is {w[::-1]}, which in capitals is {out}.",
    )


def upper_then_wrap(rng: random.Random) -> TaskItem:
    w, pair = rng.choice(WORDS), rng.choice(WRAPPERS)
    out = pair[0] + w.upper() + pair[1]
    return TaskItem(
        f"Write {w} in capitals, then wrap it in {pair}.",
        out,
        f"In capitals, {w} is {w.upper()}, which wrapped in {pair} is {out}.",
    )


# --- knowledge: facts of the generated world ---------------------------------------------------------
_CAPITAL_PROMPTS = (
    "What is the capital of {x}?",
    "Capital of {x}?",
    "Name the capital of {x}.",
    "Which city is the capital of {x}?",
    "{x} has which capital?",
)
_CAPITAL_SENTENCES = (
    "The capital of {x} is {y}.",
    "{y} is the capital of {x}.",
    "{x} has its capital at {y}.",
)
_PET_PROMPTS = (
    "What pet does {x} own?",
    "Pet of {x}?",
    "Name the pet of {x}.",
    "Which animal does {x} keep?",
    "{x} owns which pet?",
)
_PET_SENTENCES = ("{x} owns a {y}.", "The pet of {x} is a {y}.", "{x} keeps a {y} at home.")
_COLOUR_PROMPTS = (
    "What is the favourite colour of {x}?",
    "Favourite colour of {x}?",
    "Name the favourite colour of {x}.",
    "Which colour does {x} like best?",
    "{x} likes which colour best?",
)
_COLOUR_SENTENCES = (
    "The favourite colour of {x} is {y}.",
    "{x} likes {y} best.",
    "Of all colours, {x} likes {y} best.",
)


def _fact(
    rng: random.Random, table: dict[str, str], prompts: tuple[str, ...], sentences: tuple[str, ...]
) -> TaskItem:
    x = rng.choice(sorted(table))
    y = table[x]
    return TaskItem(rng.choice(prompts).format(x=x), y, rng.choice(sentences).format(x=x, y=y))


def capital(rng: random.Random) -> TaskItem:
    return _fact(rng, world().capitals, _CAPITAL_PROMPTS, _CAPITAL_SENTENCES)


def pet(rng: random.Random) -> TaskItem:
    return _fact(rng, world().pets, _PET_PROMPTS, _PET_SENTENCES)


def colour(rng: random.Random) -> TaskItem:
    return _fact(rng, world().colours, _COLOUR_PROMPTS, _COLOUR_SENTENCES)


GENERATORS: dict[str, tuple[Generator, ...]] = {
    "reasoning-instruction-following": (sort_then_first_two, reverse_then_upper, upper_then_wrap),
    "instruction-following": (upper, wrap, prefix, first_n),
    "math": (add, sub),
    "reasoning": (largest, smallest, more_than, count),
    "knowledge": (capital, pet, colour),
}
"""Category -> its task generators (drawn uniformly)."""


def draw(category: str, rng: random.Random) -> TaskItem:
    """One item of `category` (any split; the caller filters by the prompt hash)."""
    return rng.choice(GENERATORS[category])(rng)
