"""The demo domain: **Brindle**, a fictional parts supplier with its own vocabulary and rules.

Nothing here appears in the general data (`tunesmith.data.general`), so every tiny checkpoint scores ~0
on it before customization and the effect of CPT / SFT / RFT (and of forgetting) is measurable.

The world of Brindle:

- a catalog of 12 parts: a code (`KV7`), a name (`plenk`), a unit (`crate`) and a unit price in *brix*;
- an internal shorthand of 12 abbreviations (`rq` = request, `shp` = shipment, `nd` = next-day, ...).

Tasks (prompt -> exact answer):

- `price`  "Brindle: price of KV7?"           -> "6 brix"             (lookup)
- `unit`   "Brindle: unit of KV7?"            -> "crate"              (lookup)
- `name`   "Brindle: name of KV7?"            -> "plenk"              (lookup)
- `total`  "Brindle: total for 4 KV7?"        -> "4 x 6 = 24 brix"    (lookup + compute, worked)
- `expand` "Brindle: expand rq shp nd"        -> "request shipment next-day" (shorthand)

Kinds: "cpt" (`{"text"}` memos and catalog pages), "sft" (chat demonstrations), "rft" (prompt +
`reference_answer` + `task`, for a verifiable reward), "eval" (gen_qa rows), "dpo" (preference pairs: the
right answer chosen, a near miss rejected: `near_miss`). Prompts are split into
train / eval by the same prompt hash as the general data (`tunesmith.data.general.split`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from tunesmith.data.general.split import in_split

NAME = "brindle"
CURRENCY = "brix"

PARTS: dict[str, tuple[str, str, int]] = {
    "KV7": ("plenk", "crate", 6),
    "QX3": ("dorvel", "spool", 4),
    "ZT5": ("mibble", "tray", 7),
    "JR2": ("snarf", "bale", 3),
    "WP8": ("quillet", "crate", 9),
    "HB4": ("vonk", "spool", 2),
    "XM6": ("trundle", "tray", 8),
    "FY9": ("glimmet", "bale", 5),
    "VQ1": ("pradge", "crate", 4),
    "LK3": ("zibbet", "spool", 6),
    "TZ8": ("frotch", "tray", 3),
    "NW5": ("bramsel", "bale", 7),
}
"""code -> (name, unit, unit price in brix)."""

SHORTHAND: dict[str, str] = {
    "rq": "request",
    "shp": "shipment",
    "nd": "next-day",
    "cx": "cancel",
    "inv": "invoice",
    "wh": "warehouse",
    "rtn": "return",
    "qt": "quote",
    "pl": "pallet",
    "urg": "urgent",
    "bko": "backorder",
    "cfm": "confirm",
}
"""Brindle's internal shorthand: abbreviation -> expansion."""

KINDS: tuple[str, ...] = ("cpt", "sft", "rft", "eval", "dpo")
TASKS: tuple[str, ...] = ("price", "unit", "name", "total", "expand")
_TASK_WEIGHTS: tuple[float, ...] = (0.1, 0.075, 0.075, 0.4, 0.35)
MAX_QUANTITY = 9


@dataclass(frozen=True)
class DomainItem:
    task: str
    prompt: str
    answer: str
    sentence: str  # the same fact in a memo sentence (CPT text)


def draw(rng: random.Random) -> DomainItem:
    """One Brindle task (any split)."""
    task = rng.choices(TASKS, weights=_TASK_WEIGHTS)[0]
    code = rng.choice(sorted(PARTS))
    name, unit, price = PARTS[code]
    if task == "price":
        return DomainItem(task, f"Brindle: price of {code}?", f"{price} {CURRENCY}",
                    f"A {unit} of {code} costs {price} {CURRENCY}.")  # fmt: skip
    if task == "unit":
        return DomainItem(task, f"Brindle: unit of {code}?", unit, f"Part {code} ships by the {unit}.")
    if task == "name":
        return DomainItem(task, f"Brindle: name of {code}?", name, f"Part {code} is called a {name}.")
    if task == "total":
        qty = rng.randint(1, MAX_QUANTITY)
        answer = f"{qty} x {price} = {qty * price} {CURRENCY}"
        return DomainItem(task, f"Brindle: total for {qty} {code}?", answer,
                    f"An order of {qty} {code} comes to {answer}.")  # fmt: skip
    keys = rng.sample(sorted(SHORTHAND), rng.randint(2, 4))
    short, long = " ".join(keys), " ".join(SHORTHAND[k] for k in keys)
    return DomainItem(task, f"Brindle: expand {short}", long, f"In a Brindle note, {short} means {long}.")


def near_miss(item: DomainItem, rng: random.Random) -> str:
    """A wrong answer of the right shape: the same task answered for another part (another price, unit or
    name; the total with another part's price) or, for shorthand, one abbreviation expanded wrongly."""
    if item.task == "expand":
        words = item.answer.split()
        index = rng.randrange(len(words))
        words[index] = rng.choice(sorted(set(SHORTHAND.values()) - set(words)))
        return " ".join(words)
    code = re.search(r"\b[A-Z]{2}\d\b", item.prompt).group(0)  # type: ignore[union-attr]
    _, unit, price = PARTS[code]
    others = [c for c in sorted(PARTS) if c != code]
    if item.task == "unit":
        return rng.choice(sorted({PARTS[c][1] for c in others} - {unit}))
    if item.task == "name":
        return PARTS[rng.choice(others)][0]
    wrong = rng.choice(sorted({PARTS[c][2] for c in others} - {price}))
    if item.task == "price":
        return f"{wrong} {CURRENCY}"
    qty = int(item.prompt.split()[3])
    return f"{qty} x {wrong} = {qty * wrong} {CURRENCY}"


def _catalog_sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        code = rng.choice(sorted(PARTS))
        name, unit, price = PARTS[code]
        return f"Part {code} is a {name}, sold by the {unit} at {price} {CURRENCY}."
    key = rng.choice(sorted(SHORTHAND))
    return f"In Brindle shorthand, {key} stands for {SHORTHAND[key]}."


def items(seed: int = 0, split: str = "train", stream_name: str = "items") -> Iterator[DomainItem]:
    """Unlimited deterministic Brindle items whose prompts belong to `split`."""
    rng = random.Random(f"{NAME}:{stream_name}:{split}:{seed}")
    while True:
        item = draw(rng)
        if in_split(item.prompt, split):
            yield item


def stream(kind: str, seed: int = 0, split: str = "train") -> Iterator[dict]:
    """Unlimited, deterministic Brindle rows of `kind` ("cpt" | "sft" | "rft" | "eval" | "dpo") in `split`."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    source = items(seed=seed, split=split, stream_name=kind)
    if kind == "cpt":
        rng = random.Random(f"{NAME}:doc:{split}:{seed}")
        while True:
            sentences = [_catalog_sentence(rng) for _ in range(rng.randint(1, 2))]
            sentences += [item.sentence for item in islice(source, rng.randint(2, 4))]
            rng.shuffle(sentences)
            yield {"text": "Brindle memo. " + " ".join(sentences)}
    for index, item in enumerate(source):
        if kind == "sft":
            yield {"messages": [{"role": "user", "content": item.prompt},
                                {"role": "assistant", "content": item.answer}]}  # fmt: skip
        elif kind == "dpo":
            rng = random.Random(f"{NAME}:near-miss:{split}:{seed}:{index}")
            yield {"prompt": item.prompt, "chosen": item.answer, "rejected": near_miss(item, rng)}
        elif kind == "rft":
            yield {"id": f"{NAME}-{split}-{seed}-{index}",
                   "messages": [{"role": "user", "content": item.prompt}],
                   "reference_answer": item.answer, "task": item.task}  # fmt: skip
        else:
            yield {"query": item.prompt, "response": item.answer,
                   "metadata": {"category": NAME, "task": item.task}}  # fmt: skip


def sample(kind: str, n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """The first `n` rows of `stream(...)`; for kind "eval" the prompts are distinct."""
    if kind != "eval":
        return list(islice(stream(kind, seed=seed, split=split), n))
    rows: list[dict] = []
    seen: set[str] = set()
    for row in islice(stream(kind, seed=seed, split=split), 50 * n):
        if row["query"] not in seen:
            seen.add(row["query"])
            rows.append(row)
            if len(rows) >= n:
                break
    return rows


_NUMBER = re.compile(r"-?\d+")


def _normalize(text: str) -> str:
    return " ".join(text.strip().lower().split())


def reward(completion: str, reference_answer: str) -> float:
    """Verifiable reward in [0, 1] for a Brindle completion.

    1.0 for an exact match (case and spacing ignored). Otherwise partial credit, at most 0.5: when the
    reference has a number, 0.5 if the completion's last number equals the reference's last number (the
    right total with a wrong working); else the share of reference words matched in position, times 0.5.
    """
    got, want = _normalize(completion), _normalize(reference_answer)
    if got == want:
        return 1.0
    want_numbers = _NUMBER.findall(want)
    if want_numbers:
        got_numbers = _NUMBER.findall(got)
        return 0.5 if got_numbers and got_numbers[-1] == want_numbers[-1] else 0.0
    want_words, got_words = want.split(), got.split()
    matched = sum(1 for a, b in zip(want_words, got_words, strict=False) if a == b)
    return 0.5 * matched / max(len(want_words), len(got_words), 1)
