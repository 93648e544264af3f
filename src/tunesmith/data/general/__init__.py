"""Built-in general data, by category (procedurally generated, seeded, unlimited, exactly checkable).

Category names follow the managed service's curated general mix where the meaning fits
([nova-data-mixing]):

- `reasoning-instruction-following`: multi-step instructions ("Sort 5 3 8, then give the first two.").
- `instruction-following`: output-format constraints (capitals, wrap in [], prefix, first N items).
- `math`: small arithmetic (operands 0-20).
- `reasoning`: list and comparison logic (largest, smallest, more than, count).
- `knowledge`: facts of a fixed generated world (capitals, pets, favourite colours; `world.py`).

Each category yields three kinds of rows:

- `"text"`: `{"text": ...}` prose documents for pre-training (no chat format);
- `"sft"`:  `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}` chat demonstrations;
- `"eval"`: `{"query": ..., "response": ..., "metadata": {"category": ...}}` gen_qa items.

Splits: a prompt is held out for evaluation by a hash of its text (`split.py`); `split="train"` rows never
contain a held-out prompt (not even as the source of a text sentence), `split="eval"` rows only those.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

from tunesmith.data.general.split import in_split
from tunesmith.data.general.tasks import TaskItem, draw
from tunesmith.vocabulary import CATEGORIES

KINDS: tuple[str, ...] = ("text", "sft", "eval")

SENTENCES_PER_DOCUMENT = (3, 6)
"""A text document holds 3 to 6 sentences of one category."""

_MAX_DRAWS_PER_ITEM = 10_000


def _check(category: str, kind: str) -> None:
    if category not in CATEGORIES:
        raise ValueError(f"unknown general category {category!r}: use one of {', '.join(CATEGORIES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")


def items(
    category: str, seed: int = 0, split: str = "train", stream_name: str = "items"
) -> Iterator[TaskItem]:
    """Unlimited deterministic `TaskItem`s of `category` whose prompts belong to `split`."""
    rng = random.Random(f"general:{category}:{stream_name}:{split}:{seed}")
    misses = 0
    while True:
        item = draw(category, rng)
        if in_split(item.prompt, split):
            misses = 0
            yield item
        else:
            misses += 1
            assert misses < _MAX_DRAWS_PER_ITEM, f"no {split} prompts left in {category}"


def to_messages(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def stream(category: str, kind: str, seed: int = 0, split: str = "train") -> Iterator[dict]:
    """Unlimited, deterministic rows of `kind` ("text" | "sft" | "eval") for `category` in `split`."""
    _check(category, kind)
    source = items(category, seed=seed, split=split, stream_name=kind)
    if kind == "text":
        rng = random.Random(f"general:{category}:doclen:{split}:{seed}")
        while True:
            count = rng.randint(*SENTENCES_PER_DOCUMENT)
            yield {"text": " ".join(item.sentence for item in islice(source, count))}
    elif kind == "sft":
        for item in source:
            yield {"messages": to_messages(item.prompt, item.answer)}
    else:
        for item in source:
            yield {"query": item.prompt, "response": item.answer, "metadata": {"category": category}}


def sample(category: str, kind: str, n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """The first `n` rows of `stream(...)`. For kind "eval" the prompts are distinct, so a small pool (the
    knowledge category holds ~50 held-out prompts) can return fewer than `n` rows."""
    _check(category, kind)
    if kind != "eval":
        return list(islice(stream(category, kind, seed=seed, split=split), n))
    rows: list[dict] = []
    seen: set[str] = set()
    misses = 0
    for row in stream(category, kind, seed=seed, split=split):
        if row["query"] in seen:
            misses += 1
            if misses >= 2_000:  # the pool of distinct prompts is exhausted
                break
            continue
        misses = 0
        seen.add(row["query"])
        rows.append(row)
        if len(rows) >= n:
            break
    return rows
