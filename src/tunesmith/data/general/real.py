"""The general item bank for real models: items a small real instruct model can answer, scored tolerantly.

The tiny family's general data (`tunesmith.data.general`) has terse, exactly checkable answers in a world of
its own; a real model answers in sentences ("The capital of France is Paris."), sometimes after a
`<think>` block. This bank holds items of the same five categories (`tunesmith.vocabulary.CATEGORIES`) whose
answers are checked the way a real answer needs:

- `instruction-following`: a writing task plus one or two verifiable instructions, checked by IFEval's own
  checker code (vendored in `ifeval.py`, Apache-2.0) with its "loose" prompt-level rule [ifeval-2023];
- `math`: arithmetic and one-step word problems generated from a seed; the answer's final number counts
  (`\\boxed{}`, "Answer: X", "the answer is X" and "#### X" first, else the last number) [gsm8k-2021];
- `reasoning`: comparisons, orderings, parity, sequences, days and months; one number or one option counts;
- `reasoning-instruction-following`: an easier math or reasoning question plus a format instruction (an
  "Answer:" line, a word limit, a title, a postscript, JSON, no commas): both must hold;
- `knowledge`: real-world facts written for tunesmith (`facts.py`); any alias mentioned counts.

Every item is `{"id", "category", "prompt", "reference", "checks", "split"}`; `checks` lists what `score`
verifies (`{"id": ..., "kwargs": {...}}`, IFEval ids or `tunesmith:*` ones). `split` is "eval" (held out:
evaluation and probes only) or "replay" (prompts for self-distilled replay). The split is decided by the
item's *problem* (the numbers of a sum, the fact, the task with its instructions), never by its wording, so
no eval problem reappears in replay in other words. `score` is the only scorer: every consumer calls it.

`prose_texts()` returns real human-written prose for a perplexity check: docstrings of CPython's standard
library (PSF License [cpython-docs]), extracted once into `prose.json` so the texts do not change with the Python version.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from functools import cache, lru_cache
from importlib import resources

from tunesmith.data.general.facts import facts
from tunesmith.data.general.ifeval import describe, follows
from tunesmith.vocabulary import CATEGORIES

SPLITS: tuple[str, ...] = ("eval", "replay")

EVAL_SIZE: dict[str, int] = {
    "reasoning-instruction-following": 80,
    "instruction-following": 80,
    "math": 100,
    "reasoning": 100,
    "knowledge": 72,
}
"""Held-out items per category: >= 60 each, so a paired bootstrap over them can show a loss of about 10
points (the knowledge category holds 30% of the 236 facts; the other categories are generated)."""

REPLAY_SIZE: int = 200
"""Replay prompts per category (the knowledge category holds the 164 facts outside the eval split)."""

EVAL_SHARE: float = 0.3
"""Share of the problem space held out for evaluation, by a hash of the problem's key."""

MAX_NEW_TOKENS: dict[str, int] = {
    "reasoning-instruction-following": 96,
    "instruction-following": 96,
    "math": 64,
    "reasoning": 64,
    "knowledge": 32,
}
"""Generation budget per category: an answer sentence (knowledge), a short worked answer (math, reasoning:
SmolLM2-135M-Instruct often explains first, and 48 tokens cut some answers off), or a short text."""


# --- the split ---------------------------------------------------------------------------------------


def _hash_fraction(key: str) -> float:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0x100000000


def _split_of(key: str) -> str:
    return "eval" if _hash_fraction(key) < EVAL_SHARE else "replay"


# --- generators: each returns (key, prompt, reference, checks) -------------------------------------------

_NAMES = ("Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kofi", "Lena")
_THINGS = ("apples", "books", "marbles", "pencils", "stickers", "cookies", "stamps", "coins")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _math(rng: random.Random) -> tuple[str, str, str]:
    kind = rng.randrange(8)
    name, things = rng.choice(_NAMES), rng.choice(_THINGS)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"add:{a}:{b}", f"What is {a} + {b}?", str(a + b)
    if kind == 1:
        a, b = sorted((rng.randint(2, 99), rng.randint(2, 99)), reverse=True)
        return f"sub:{a}:{b}", f"What is {a} - {b}?", str(a - b)
    if kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"mul:{a}:{b}", f"What is {a} times {b}?", str(a * b)
    if kind == 3:
        b, q = rng.randint(2, 10), rng.randint(2, 10)
        return f"div:{b * q}:{b}", f"What is {b * q} divided by {b}?", str(q)
    if kind == 4:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        prompt = f"{name} has {a} {things}. {name} gets {b} more. How many {things} does {name} have now?"
        return f"more:{a}:{b}", prompt, str(a + b)
    if kind == 5:
        a = rng.randint(5, 40)
        b = rng.randint(1, a - 1)
        prompt = f"{name} has {a} {things} and gives away {b}. How many {things} does {name} have left?"
        return f"less:{a}:{b}", prompt, str(a - b)
    if kind == 6:
        a, b = rng.randint(2, 12), rng.randint(2, 9)
        prompt = f"A box holds {a} {things}. How many {things} are in {b} boxes?"
        return f"boxes:{a}:{b}", prompt, str(a * b)
    a, b = rng.randint(2, 20), rng.randint(2, 7)
    prompt = f"{name} reads {a} pages every day. How many pages does {name} read in {b} days?"
    return f"pages:{a}:{b}", prompt, str(a * b)


def _reasoning(rng: random.Random) -> tuple[str, str, str, dict | None]:
    """(key, prompt, reference, choice kwargs or None for a numeric answer)."""
    kind = rng.randrange(7)
    if kind == 0:
        a, b = rng.sample(range(2, 100), 2)
        word = rng.choice(("larger", "smaller"))
        answer = max(a, b) if word == "larger" else min(a, b)
        prompt = f"Which number is {word}, {a} or {b}?"
        return f"cmp:{word}:{a}:{b}", prompt, str(answer), {"options": [str(a), str(b)], "key": word}
    if kind == 1:
        a, b, c = rng.sample(_NAMES, 3)
        word = rng.choice(("tallest", "shortest"))
        prompt = f"{a} is taller than {b}. {b} is taller than {c}. Who is the {word}?"
        answer = a if word == "tallest" else c
        return f"order:{word}:{a}:{b}:{c}", prompt, answer, {"options": [a, b, c], "key": word}
    if kind == 2:
        n = rng.randint(3, 99)
        prompt = f"Is {n} an even or an odd number?"
        answer = "even" if n % 2 == 0 else "odd"
        return f"parity:{n}", prompt, answer, {"options": ["even", "odd"], "key": str(n)}
    if kind == 3:
        start, step = rng.randint(1, 20), rng.randint(2, 10)
        shown = ", ".join(str(start + i * step) for i in range(4))
        prompt = f"What number comes next in the sequence {shown}, ...?"
        return f"seq:{start}:{step}", prompt, str(start + 4 * step), None
    if kind == 4:
        i, k = rng.randrange(7), rng.choice((1, 2))
        later = "the day after" if k == 1 else "two days after"
        prompt = f"Which day of the week comes {later} {_DAYS[i]}?"
        options = [d for d in _DAYS if d != _DAYS[i]]
        return f"day:{i}:{k}", prompt, _DAYS[(i + k) % 7], {"options": options, "key": "after"}
    if kind == 5:
        i = rng.randrange(12)
        prompt = f"Which month comes right after {_MONTHS[i]}?"
        options = [m for m in _MONTHS if m != _MONTHS[i]]
        return f"month:{i}", prompt, _MONTHS[(i + 1) % 12], {"options": options, "key": "after"}
    a, b = rng.sample(_NAMES, 2)
    x, y = rng.randint(5, 40), rng.randint(2, 15)
    prompt = f"{a} is {x} years old. {b} is {y} years older than {a}. How old is {b}?"
    return f"age:{x}:{y}", prompt, str(x + y), None


_TASKS = (
    "Write a short description of the ocean.",
    "Explain why people enjoy listening to music.",
    "Describe your ideal weekend.",
    "Write a short note to a friend about a trip to the mountains.",
    "Give some advice to a student starting at a new school.",
    "Describe a sunny day in a park.",
    "Explain why sleep is important.",
    "Write a short story about a lost cat.",
    "Describe how to make a cup of tea.",
    "Explain what a library is for.",
    "Write a short review of a restaurant you like.",
    "Describe the city you would most like to visit.",
    "Explain why exercise is good for your health.",
    "Write a short poem about autumn.",
    "Describe your favourite food.",
    "Explain how to plant a tree.",
    "Write a short thank-you message to a teacher.",
    "Describe a rainy afternoon.",
    "Explain why people keep pets.",
    "Write a short advertisement for a bicycle.",
    "Describe what you see from a train window.",
    "Explain why reading books is useful.",
    "Write a short welcome message for new members of a chess club.",
    "Describe a busy market.",
    "Explain how to stay safe when crossing a street.",
    "Write a short invitation to a birthday party.",
    "Describe the moon at night.",
    "Explain why people travel.",
    "Write a few sentences about your favourite season.",
    "Describe a good friend.",
    "Explain why it is important to drink water.",
    "Write a short message asking a neighbour to water your plants.",
    "Describe a visit to the zoo.",
    "Explain what makes a good team.",
    "Write a short summary of why recycling matters.",
    "Describe the sound of the sea.",
    "Explain how to prepare for an exam.",
    "Write a short note to apologize for being late.",
    "Describe a snowy morning.",
    "Explain why people plant gardens.",
)

_TASK_WORDS = (
    "blue",
    "happy",
    "water",
    "friend",
    "light",
    "morning",
    "simple",
    "green",
    "quiet",
    "home",
)
_END_PHRASES = ("Is there anything else I can help with?", "Any other questions?")


def _instruction(rng: random.Random) -> dict:
    """One IFEval instruction with its kwargs, among those a small model can follow at least sometimes."""
    kind = rng.randrange(12)
    if kind == 0:
        return {
            "id": "length_constraints:number_words",
            "kwargs": {"num_words": rng.choice((20, 30, 50)), "relation": "less than"},
        }
    if kind == 1:
        return {
            "id": "length_constraints:number_words",
            "kwargs": {"num_words": rng.choice((15, 25, 40)), "relation": "at least"},
        }
    if kind == 2:
        return {"id": "keywords:existence", "kwargs": {"keywords": [rng.choice(_TASK_WORDS)]}}
    if kind == 3:
        return {"id": "punctuation:no_comma", "kwargs": {}}
    if kind == 4:
        return {"id": "change_case:english_lowercase", "kwargs": {}}
    if kind == 5:
        return {"id": "change_case:english_capital", "kwargs": {}}
    if kind == 6:
        return {"id": "startend:end_checker", "kwargs": {"end_phrase": rng.choice(_END_PHRASES)}}
    if kind == 7:
        return {"id": "detectable_format:json_format", "kwargs": {}}
    if kind == 8:
        return {"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": rng.randint(2, 4)}}
    if kind == 9:
        return {"id": "detectable_content:postscript", "kwargs": {"postscript_marker": "P.S."}}
    if kind == 10:
        return {
            "id": "keywords:forbidden_words",
            "kwargs": {"forbidden_words": [rng.choice(("the", "and", "is"))]},
        }
    return {"id": "detectable_format:title", "kwargs": {}}


def _instruction_following(rng: random.Random) -> tuple[str, str, list[dict]]:
    task = rng.randrange(len(_TASKS))
    checks = [_instruction(rng)]
    if rng.random() < 0.25:
        second = _instruction(rng)
        if second["id"] != checks[0]["id"] and "json" not in second["id"] + checks[0]["id"]:
            checks.append(second)
    prompt = " ".join([_TASKS[task], *(describe(check) for check in checks)])
    key = f"if:{task}:" + json.dumps(checks, sort_keys=True)
    return key, prompt, checks


_FORMATS: tuple[tuple[str, dict], ...] = (
    ("tunesmith:answer_line", {}),
    ("length_constraints:number_words", {"num_words": 20, "relation": "less than"}),
    ("length_constraints:number_words", {"num_words": 40, "relation": "less than"}),
    ("detectable_format:title", {}),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}),
    ("keywords:existence", {"keywords": ["answer"]}),
    ("punctuation:no_comma", {}),
)
"""The format half of a reasoning-instruction-following item: an "Answer:" line, or an IFEval instruction
that SmolLM2-135M-Instruct follows at least sometimes (all-capitals, lowercase, an exact end phrase,
`\\boxed{}` and JSON it almost never followed after a question, so an item paired with them measured the
format alone)."""

_ANSWER_LINE = "Think step by step, then give the final answer on a line that starts with 'Answer:'."

_EASY_KINDS = ("parity", "cmp", "pages", "div", "less")
"""The questions of reasoning-instruction-following: the kinds a ~135M instruct model answers at least
sometimes, so that the item measures whether the format holds too (the sums, products, ages, sequences and
orderings it rarely got right stay in the math and reasoning categories)."""


def _reasoning_instruction_following(rng: random.Random) -> tuple[str, str, str, list[dict]]:
    while True:
        if rng.random() < 0.5:
            key, question, reference = _math(rng)
            answer_check: dict = {"id": "tunesmith:number", "kwargs": {}}
        else:
            key, question, reference, choice = _reasoning(rng)
            answer_check = (
                {"id": "tunesmith:choice", "kwargs": choice}
                if choice
                else {"id": "tunesmith:number", "kwargs": {}}
            )
        if key.split(":")[0] in _EASY_KINDS:
            break
    format_id, kwargs = rng.choice(_FORMATS)
    check = {"id": format_id, "kwargs": dict(kwargs)}
    instruction = _ANSWER_LINE if format_id == "tunesmith:answer_line" else describe(check)
    format_key = json.dumps(check, sort_keys=True)
    return f"rif:{key}:{format_key}", f"{question} {instruction}", reference, [answer_check, check]


def _generate(category: str, rng: random.Random) -> tuple[str, str, str | None, list[dict]]:
    """(key, prompt, reference, checks) of one drawn item of a generated category."""
    if category == "math":
        key, prompt, reference = _math(rng)
        return key, prompt, reference, [{"id": "tunesmith:number", "kwargs": {}}]
    if category == "reasoning":
        key, prompt, reference, choice = _reasoning(rng)
        check = (
            {"id": "tunesmith:choice", "kwargs": choice}
            if choice
            else {"id": "tunesmith:number", "kwargs": {}}
        )
        return key, prompt, reference, [check]
    if category == "instruction-following":
        key, prompt, checks = _instruction_following(rng)
        return key, prompt, None, checks
    key, prompt, reference, checks = _reasoning_instruction_following(rng)
    return key, prompt, reference, checks


def _knowledge(split: str) -> list[dict]:
    rows = facts()
    order = sorted(range(len(rows)), key=lambda i: hashlib.sha1(rows[i][0].encode("utf-8")).hexdigest())
    held_out = set(order[: EVAL_SIZE["knowledge"]])
    chosen = [i for i in order if (i in held_out) == (split == "eval")]
    return [
        {
            "id": f"knowledge-{split}-{n:03d}",
            "category": "knowledge",
            "prompt": rows[i][0],
            "reference": rows[i][1][0],
            "checks": [{"id": "tunesmith:mentions", "kwargs": {"aliases": list(rows[i][1])}}],
            "split": split,
        }
        for n, i in enumerate(chosen)
    ]


@cache
def _items(split: str, category: str) -> tuple[str, ...]:
    """The items of one split and category, JSON-encoded (cached; `items` returns fresh copies)."""
    if category == "knowledge":
        return tuple(json.dumps(item) for item in _knowledge(split))
    size = EVAL_SIZE[category] if split == "eval" else REPLAY_SIZE
    rng = random.Random(f"real-general:{category}:{split}")
    out: list[str] = []
    keys: set[str] = set()
    for _ in range(100_000):
        key, prompt, reference, checks = _generate(category, rng)
        if key in keys or _split_of(key) != split:
            continue
        keys.add(key)
        item = {
            "id": f"{category}-{split}-{len(out):03d}",
            "category": category,
            "prompt": prompt,
            "reference": reference,
            "checks": checks,
            "split": split,
        }
        out.append(json.dumps(item))
        if len(out) == size:
            break
    return tuple(out)


def items(split: str, category: str | None = None) -> list[dict]:
    """The bank's items of `split` ("eval" or "replay"), of one category or all, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown general category {category!r}: use one of {', '.join(CATEGORIES)}")
    categories = CATEGORIES if category is None else (category,)
    return [json.loads(row) for name in categories for row in _items(split, name)]


# --- scoring -----------------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_MARKERS = (
    re.compile(r"\\boxed\{([^{}]*)\}"),
    re.compile(r"^\s*\**answer\**\s*[:：]\s*(.+)$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"answer is\s*[:：]?\s*(.+)", re.IGNORECASE),
    re.compile(r"^\s*####\s*(.+)$", re.MULTILINE),  # GSM8K's final-answer line, which small models copy
)
_WORD_NUMBERS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}


def final_text(answer: str) -> str:
    """The answer without its reasoning block: the text after `</think>`, or the block's text when nothing
    follows it."""
    rest = _THINK.sub(" ", answer).strip()
    if rest:
        return rest
    inside = re.sub(r"</?think>", " ", answer, flags=re.IGNORECASE)
    return inside.strip()


def normalize(text: str) -> str:
    """Lowercase, accents and punctuation removed, spaces collapsed (`"Bogotá!"` -> `"bogota"`)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def _marked(text: str) -> str | None:
    """The span after the first answer marker found (`\\boxed{}`, an "Answer:" line, "answer is")."""
    for marker in _MARKERS:
        found = marker.findall(text)
        if found:
            return found[-1]
    return None


def _number_of(text: str) -> float | None:
    words = " ".join(
        _WORD_NUMBERS.get(word, word) for word in re.split(r"(\s+)", text.lower()) if word.strip()
    )
    found = _NUMBER.findall(words)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def extract_number(text: str) -> float | None:
    """The final number of an answer: the one after an answer marker when there is one, else the last."""
    marked = _marked(text)
    if marked is not None and (value := _number_of(marked.split("\n")[0])) is not None:
        return value
    return _number_of(text)


def _mentioned(options: list[str], text: str) -> list[tuple[int, str]]:
    """(position, option) of each mention of an option in `text`, in order."""
    found = []
    for option in options:
        for match in re.finditer(rf"(?<![\w]){re.escape(option)}(?![\w])", text, re.IGNORECASE):
            found.append((match.start(), option))
    return sorted(found)


def extract_choice(text: str, options: list[str], key: str = "") -> str | None:
    """The option an answer picks: the one after an answer marker; else the only one mentioned; else, in
    the first sentence that mentions the question's key word (e.g. "tallest"), the option next to it
    ("the tallest is Ann", "Ann is the tallest"); else the first mentioned."""
    marked = _marked(text)
    if marked is not None and (mentions := _mentioned(options, marked.split("\n")[0])):
        return mentions[0][1]
    mentions = _mentioned(options, text)
    if not mentions:
        return None
    if len({option for _, option in mentions}) == 1:
        return mentions[0][1]
    if key:
        for sentence in re.split(r"(?<=[.!?\n])\s+", text):
            if not re.search(rf"\b{re.escape(key)}\b", sentence, re.IGNORECASE):
                continue
            after = re.search(
                rf"\b{re.escape(key)}\b(?:\s+\w+){{0,3}}?\s+(?:is|are|was|:)\s+(.*)", sentence, re.IGNORECASE
            )
            if after and (near := _mentioned(options, after.group(1))):
                return near[0][1]
            before = re.search(
                rf"(.*?)\s+(?:is|are|was)\s+(?:the\s+)?(?:\w+\s+)?{re.escape(key)}\b", sentence, re.IGNORECASE
            )
            if before and (near := _mentioned(options, before.group(1))):
                return near[-1][1]
            if near := _mentioned(options, sentence):
                return near[0][1]
    return mentions[0][1]


def mentions_any(text: str, aliases: list[str]) -> bool:
    """True when the normalized text contains a normalized alias as whole words."""
    haystack = f" {normalize(text)} "
    return any(f" {normalize(alias)} " in haystack for alias in aliases if normalize(alias))


def _answer_line(text: str) -> str | None:
    found = re.findall(r"^\s*\**answer\**\s*[:：]\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    return found[-1] if found else None


def _check(check: dict, item: dict, text: str, answer_span: str) -> bool:
    kind, kwargs = check["id"], check.get("kwargs") or {}
    reference = item.get("reference")
    if kind == "tunesmith:number":
        value = extract_number(answer_span)
        return value is not None and reference is not None and value == float(reference)
    if kind == "tunesmith:choice":
        return extract_choice(answer_span, kwargs["options"], kwargs.get("key", "")) == reference
    if kind == "tunesmith:mentions":
        return mentions_any(answer_span, kwargs["aliases"])
    if kind == "tunesmith:answer_line":
        return _answer_line(text) is not None
    if kind == "tunesmith:boxed":
        return re.search(r"\\boxed\{[^{}]*\}", text) is not None
    return follows([check], item["prompt"], text)


def score(item: dict, answer: str) -> float:
    """1.0 when `answer` (the model's text) satisfies every check of `item`, else 0.0.

    The reasoning block is dropped first (`final_text`). When the item asks for an "Answer:" line or a
    `\\boxed{}` answer, its correctness is read from that line or box only; with a postscript, from the text
    before it."""
    text = final_text(answer)
    ids = {check["id"] for check in item.get("checks") or []}
    span = text
    if "detectable_content:postscript" in ids:  # the answer comes before the postscript
        span = re.split(r"\bP\.\s?S\.", text, maxsplit=1)[0]
    if "tunesmith:answer_line" in ids:
        span = _answer_line(text) or ""
    elif "tunesmith:boxed" in ids:
        boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
        span = boxed[-1] if boxed else ""
    return 1.0 if all(_check(check, item, text, span) for check in item.get("checks") or []) else 0.0


# --- prose -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _prose() -> tuple[str, ...]:
    raw = resources.files("tunesmith.data.general").joinpath("prose.json").read_text(encoding="utf-8")
    return tuple(row["text"] for row in json.loads(raw)["texts"])


def prose_texts() -> list[str]:
    """Real human-written prose for the perplexity check: CPython standard-library docstrings (PSF License,
    `prose.json` names each one's source), in a fixed order."""
    return list(_prose())
