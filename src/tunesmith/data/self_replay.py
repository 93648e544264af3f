"""Self-replay general data: the start model's own greedy answers to general prompts, verified and cached.

`data_mixing.general_data: self` fills the general half of a mix with what the recipe's start model itself
answers to the real item bank's `replay` prompts (`tunesmith.data.general.real`, disjoint from the `eval`
items the general measurement uses), one source per category at the recipe's shares. Training on the
model's own outputs keeps it close to where it started: self-distilled data narrows the distribution gap
that makes fine-tuning forget ([self-distillation-2024]), and among fine-tuning data the on-policy kind
forgets least ([rls-razor-2025]). It needs no network, so it is the default for real models when the curated
datasets cannot be reached and no mirror is set (`tunesmith.recipe.resolve`).

This module is the model-free half (the generation itself is `tunesmith.training.replay`):

- which prompts: every replay prompt of a category, or a seeded sample of `prompts` of them;
- the cache key: the start model's content hash, the picked prompts (ids, text, references and checks: the
  bank's version as far as these prompts go; the seed acts through the pick) and the generation settings.
  Greedy answers do not depend on the seed otherwise, so two seeds that pick the same prompts share one
  entry. Entries are JSON files under `<TUNESMITH_HOME>/self-replay/`, written atomically;
- the filter (`judge`): an answer is kept when it is non-empty, was not cut off at `max_new_tokens`, and,
  where the item has a reference or checks, `score(item, answer)` is 1.0. Items with neither keep any
  complete answer (the model's own behaviour is what replay preserves). Verdicts are recomputed on every
  read, so a corrected checker applies to cached answers;
- the shares (`surviving_shares`): a category with fewer than `MIN_KEPT` kept answers is left out and its
  share goes to the other general categories in proportion to theirs (a line says so); when no category is
  left, a `DataError` names the fix.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tunesmith import paths
from tunesmith.data.mixing import Source, rows_source
from tunesmith.errors import DataError
from tunesmith.runs import atomic_write_json

CACHE_VERSION = 1
"""Bump when what a cache entry holds changes, so older entries are not reused."""
DEFAULT_MAX_NEW_TOKENS = 192
"""Tokens an answer may take (cut-off answers are dropped and counted in the tally). Measured on
SmolLM2-135M-Instruct, 20 replay prompts a category: 18 of 100 answers ran past 192 tokens, 11 of them in
instruction-following (its open-ended prompts); every other category lost 1-3."""
DEFAULT_BATCH_SIZE = 16
"""Prompts generated together (left-padded, so a batch runs as long as its longest answer; the progress bar
moves once per batch)."""
MIN_KEPT = 10
"""A category needs this many kept answers to be mixed: fewer would be repeated so often that the category
teaches its few answers by heart (the mix warns beyond `max_general_repeats` passes anyway)."""
CUT_OFF_SLACK = 2
"""An answer within this many tokens of `max_new_tokens` counts as cut off (decoding and stripping can
change the re-encoded length by a token or two)."""

FALLBACK_WHY = (
    "the Hub cannot be reached and no mirror is set: the start model's own answers (self-replay, "
    "tunesmith.data.self_replay)"
)
"""Provenance of `general_data: self` when it replaces the curated default offline."""


def bank() -> ModuleType:
    """The real general item bank (`items(split, category)`, `score(item, answer)`)."""
    from tunesmith.data.general import real

    return real


@dataclass(frozen=True)
class ReplaySettings:
    """What a replay set is generated with (every field is part of the cache key)."""

    prompts: int | None = None  # per category; None: every replay prompt of the bank
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    reasoning: bool = False  # the template's thinking switch during generation (the stage's own)

    @classmethod
    def for_stage(cls, mixing: Any, reasoning: bool) -> ReplaySettings:
        """A resolved stage's settings: its `data_mixing.self_replay_prompts` and thinking switch."""
        return cls(mixing.self_replay_prompts, DEFAULT_MAX_NEW_TOKENS, reasoning)

    def key_fields(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "reasoning": self.reasoning}


@dataclass
class ReplayAnswer:
    """One generated answer (as cached: no verdict, see `judge`)."""

    id: str
    category: str
    prompt: str
    answer: str
    reasoning: str = ""
    cut_off: bool = False


@dataclass
class ReplaySet:
    """The answers of one cache entry, and what produced them."""

    key: str
    model: str
    settings: dict[str, Any]
    answers: list[ReplayAnswer]
    seconds: float = 0.0
    path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "key": self.key,
            "model": self.model,
            "settings": self.settings,
            "seconds": round(self.seconds, 2),
            "answers": [asdict(answer) for answer in self.answers],
        }


# ------------------------------------------------------------------------------------------- prompts


def pick_items(
    categories: Sequence[str], settings: ReplaySettings, seed: int, source: ModuleType | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Category -> the replay items to answer: all of them, or a seeded sample of `settings.prompts` (in the
    bank's order). Raises `DataError` for a category the bank has no replay prompt for."""
    source = source or bank()
    picked: dict[str, list[dict[str, Any]]] = {}
    for category in categories:
        items = list(source.items("replay", category))
        if not items:
            raise DataError(
                f"data_mixing.general.{category}: the self-replay prompt bank has no replay prompt for "
                "this category — give a file for it in general_sources, or set its share to 0"
            )
        if settings.prompts is not None and settings.prompts < len(items):
            chosen = set(
                random.Random(f"self-replay:{category}:{seed}").sample(range(len(items)), settings.prompts)
            )
            items = [item for index, item in enumerate(items) if index in chosen]
        picked[category] = items
    return picked


def items_digest(picked: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """SHA-256 of what the answers depend on in the picked items: ids, prompts, references and checks."""
    canonical = [
        [category, [[i["id"], i["prompt"], i.get("reference"), i.get("checks")] for i in items]]
        for category, items in sorted(picked.items())
    ]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(
    fingerprint: str, picked: Mapping[str, Sequence[dict[str, Any]]], settings: ReplaySettings
) -> str:
    """The entry's name: model content hash x picked prompts x generation settings (see the module doc)."""
    payload = {
        "version": CACHE_VERSION,
        "model": fingerprint,
        "items": items_digest(picked),
        **settings.key_fields(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    return paths.home() / "self-replay"


def cache_path(key: str) -> Path:
    return cache_dir() / f"{key}.json"


def read_cache(key: str) -> ReplaySet | None:
    """The cached entry, or None (missing, unreadable or of another cache version: generated again)."""
    path = cache_path(key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("key") != key:
            return None
        answers = [ReplayAnswer(**answer) for answer in data["answers"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return ReplaySet(key, data["model"], data["settings"], answers, data.get("seconds", 0.0), path)


def write_cache(replay: ReplaySet) -> Path:
    """Store an entry atomically (a crash mid-write leaves no entry, never half of one)."""
    replay.path = atomic_write_json(cache_path(replay.key), replay.to_dict(), indent=0)
    return replay.path


# ------------------------------------------------------------------------------------------- the filter


@dataclass
class Verdict:
    kept: bool
    reason: str  # "correct", "unverified" (kept: nothing to check against), "wrong", "empty", "cut off"


def judge(item: dict[str, Any], answer: ReplayAnswer, score: Callable[[dict, str], float]) -> Verdict:
    """Keep an answer when it is complete and, where the item can be checked, correct (the module doc)."""
    if not answer.answer.strip():
        return Verdict(False, "empty")
    if answer.cut_off:
        return Verdict(False, "cut off")
    if item.get("reference") is None and not item.get("checks"):
        return Verdict(True, "unverified")
    return Verdict(True, "correct") if score(item, answer.answer) >= 1.0 else Verdict(False, "wrong")


@dataclass
class CategoryTally:
    """What the filter did to one category's answers."""

    generated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    rows: list[ReplayAnswer] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return len(self.rows)

    def describe(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))
        return f"{self.kept}/{self.generated} kept ({why})"


def filter_answers(
    picked: Mapping[str, Sequence[dict[str, Any]]],
    answers: Sequence[ReplayAnswer],
    score: Callable[[dict, str], float],
) -> dict[str, CategoryTally]:
    """Category -> its tally and kept answers (answers to prompts that were not picked are ignored)."""
    by_id = {answer.id: answer for answer in answers}
    tallies: dict[str, CategoryTally] = {}
    for category, items in picked.items():
        tally = tallies[category] = CategoryTally()
        for item in items:
            answer = by_id.get(item["id"])
            if answer is None:
                continue
            tally.generated += 1
            verdict = judge(item, answer, score)
            tally.reasons[verdict.reason] = tally.reasons.get(verdict.reason, 0) + 1
            if verdict.kept:
                tally.rows.append(answer)
    return tallies


def surviving_shares(
    general: Mapping[str, float], kept: Mapping[str, int], *, min_kept: int | None = None
) -> tuple[dict[str, float], list[str]]:
    """The general shares after leaving out self-replay categories with fewer than `min_kept` answers (their
    share goes to the remaining categories in proportion; categories not in `kept`, e.g. from files, stay),
    and one line per category left out. Raises `DataError` when no category with a share is left."""
    min_kept = MIN_KEPT if min_kept is None else min_kept
    short = [c for c, share in general.items() if share > 0 and c in kept and kept[c] < min_kept]
    if not short:
        return dict(general), []
    left = {c: share for c, share in general.items() if c not in short}
    total = sum(share for share in left.values() if share > 0)
    if total <= 0:
        raise DataError(
            f"data_mixing: self-replay kept too few correct answers in every general category "
            f"({', '.join(f'{c}: {kept[c]}' for c in short)}; each needs {min_kept}) — the start model fails "
            "the bank's checks; give files in data_mixing.general_sources, use general_data: curated with a "
            "mirror, or set customer_percent: 100"
        )
    moved = sum(general[c] for c in short)
    shares = {c: share * 100.0 / total if share > 0 else 0.0 for c, share in left.items()}
    last = next(c for c in reversed(list(shares)) if shares[c] > 0)  # the shares sum to 100 exactly
    shares[last] = 100.0 - sum(v for c, v in shares.items() if c != last)
    lines = [
        f"self-replay: {c} is left out: {kept[c]} kept answer(s) of the start model, {min_kept} needed — its "
        f"{general[c]:g}% of the general portion goes to the other categories"
        for c in short
    ]
    if len(short) > 1:
        lines.append(f"self-replay: {moved:g}% of the general portion moved in all")
    return shares, lines


# ------------------------------------------------------------------------------------------- sources


def as_row(answer: ReplayAnswer, kind: str) -> dict[str, Any]:
    """A kept answer as a row of the stage's kind (a user/assistant pair, as curated rows are)."""
    from tunesmith.data.curated.load import as_kind

    message: dict[str, Any] = {"role": "assistant", "content": answer.answer}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    return as_kind({"messages": [{"role": "user", "content": answer.prompt}, message]}, kind)


def replay_sources(
    tallies: Mapping[str, CategoryTally], shares: Mapping[str, float], kind: str, *, seed: int
) -> dict[str, Source]:
    """Finite mix sources of the kept answers of every category that keeps a share (each pass reshuffled
    with its own seed)."""

    def rows(category: str, epoch: int) -> Iterator[dict[str, Any]]:
        answers = list(tallies[category].rows)
        random.Random(f"self-replay:{category}:{seed}:{epoch}").shuffle(answers)
        for answer in answers:
            yield as_row(answer, kind)

    return {
        category: rows_source(
            category, lambda epoch, category=category: rows(category, epoch), kind, size=tally.kept
        )
        for category, tally in tallies.items()
        if shares.get(category, 0) > 0
    }


def plan_note(categories: Sequence[str], model: str, prompts: int | None) -> str:
    """The plan's line for the self-replay categories (plan generates nothing: training does, once)."""
    count = "every replay prompt" if prompts is None else f"{prompts} replay prompts per category"
    return (
        f"general data: {', '.join(categories)} <- self-replay: the start model's ({model}) own greedy answers "
        f"to {count} of the general item bank (tunesmith.data.general.real), kept when correct; generated at "
        f"train time before the first step, cached in {cache_dir()}"
    )
