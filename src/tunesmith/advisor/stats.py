"""Cheap data statistics the advisor needs: token lengths, reasoning traces, vocabulary gap, token counts.

Everything here streams at most `max_examples` lines (a few thousand), so `lint` and `advise` stay fast.
Lengths are measured with the family's own tokenizer: the tiny family's `build_tiny_tokenizer()`, for
other families the Hugging Face tokenizer *if it is already on disk* (`local_files_only`; never a download).
When no tokenizer is at hand, the caller gets the reason instead of numbers and reports an info finding.

The result types are plain frozen dataclasses, so the rules (`tunesmith.advisor.rules`) stay pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.data.snapshot import HEAD_EXAMPLES

if TYPE_CHECKING:
    from tunesmith.data.snapshot import DataSnapshot

DEFAULT_MAX_EXAMPLES = HEAD_EXAMPLES
"""Lines sampled per data file (the head of the file; the head a data snapshot keeps)."""

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


@dataclass(frozen=True)
class LengthStats:
    """Token lengths of the first `len(lengths)` examples of a file (sorted ascending)."""

    lengths: tuple[int, ...]
    capped: bool  # True when the file has more examples than were sampled

    def quantile(self, q: float) -> int:
        """The q-quantile (nearest rank) of the sampled lengths."""
        assert self.lengths and 0 <= q <= 1
        return self.lengths[min(len(self.lengths) - 1, max(0, math.ceil(q * len(self.lengths)) - 1))]

    def share_over(self, limit: int) -> float:
        """Fraction of sampled examples longer than `limit` tokens."""
        return sum(1 for n in self.lengths if n > limit) / len(self.lengths)


@dataclass(frozen=True)
class StageDataStats:
    """What sampling a stage's training file found: lengths (or why not) and the reasoning-trace share."""

    lengths: LengthStats | None = None
    unavailable: str | None = None
    reasoning_share: float | None = None  # SFT: fraction of examples with an assistant reasoning trace
    unique_examples: int | None = None  # distinct valid examples in the whole file (None: not counted)


# ---------------------------------------------------------------------------------------- tokenizers


def tokenizer_for(family: str | None, checkpoint: str | None, path: str | None) -> tuple[Any, str | None]:
    """(tokenizer, None) for a recipe's model, or (None, reason) when none is available locally."""
    if family == "tiny":
        from tunesmith.models.tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer(), None
    ref, revision = path, None
    if ref is None and family is not None:
        from tunesmith.models.catalog import FAMILIES

        stage = FAMILIES[family].checkpoint(checkpoint or "post-trained")
        if stage is None:
            return None, f"{family} publishes no {checkpoint} checkpoint to take a tokenizer from"
        if FAMILIES[family].kind == "registry":  # the pulled folder, when there is one (never pulled here)
            from tunesmith.errors import ModelError
            from tunesmith.models.loading import catalog_checkpoint_path

            try:
                ref = str(catalog_checkpoint_path(family, checkpoint or "post-trained", fetch=False))
            except ModelError as err:
                return None, str(err)
        else:
            ref, revision = stage.hf_id, stage.revision
    if ref is None:
        return None, "the recipe names no model"
    return _local_tokenizer(str(ref), revision)


@lru_cache(maxsize=8)
def _local_tokenizer(ref: str, revision: str | None) -> tuple[Any, str | None]:
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            ref, revision=revision, local_files_only=True, trust_remote_code=False
        ), None
    except Exception as err:  # noqa: BLE001 - any failure means "not available here"
        return None, f"no local tokenizer for {ref} ({type(err).__name__}); download the model to measure"


def _chat_text(tokenizer: Any, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        except Exception:  # noqa: BLE001 - a template that rejects a row falls back to plain text
            pass
    return "\n".join(f"{m['role']}: {m.get('content', '')}" for m in messages)


def _encode(tokenizer: Any, texts: list[str], *, add_special_tokens: bool) -> list[list[int]]:
    """Token ids of `texts`, without transformers' "longer than model_max_length" warning (we measure)."""
    if not texts:
        return []
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    finally:
        hf_logging.set_verbosity(previous)


def measure_file(
    path: str | Path, technique: str, tokenizer: Any, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> StageDataStats:
    """Token lengths (CPT: the text; SFT: the whole conversation in the chat template; RFT: the prompt with
    the generation prompt) and, for SFT, the share of examples carrying a reasoning trace."""
    from tunesmith.data.formats import read_examples

    examples = list(islice(read_examples(path, technique, skip_invalid=True), max_examples + 1))
    return measure_examples(examples, path, technique, tokenizer, max_examples=max_examples)


def measure_snapshot(
    snapshot: DataSnapshot, technique: str, tokenizer: Any, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> StageDataStats:
    """`measure_file` on the head sample a data snapshot already holds (no read of the file); reads the file
    only when more examples are asked for than the snapshot kept."""
    from tunesmith.errors import UserError

    head = snapshot.head
    if len(head) <= max_examples and snapshot.error is not None:
        return StageDataStats(unavailable=snapshot.error)
    if len(head) > max_examples or snapshot.error is None and len(head) == snapshot.examples:
        return measure_examples(
            list(head[: max_examples + 1]), snapshot.path, technique, tokenizer, max_examples=max_examples
        )
    try:
        return measure_file(snapshot.path, technique, tokenizer, max_examples=max_examples)
    except UserError as err:
        return StageDataStats(unavailable=str(err))


def measure_examples(
    examples: list[Any], path: str | Path, technique: str, tokenizer: Any, *, max_examples: int
) -> StageDataStats:
    """The measurements of `measure_file` on the first `max_examples + 1` examples of `path`."""
    capped = len(examples) > max_examples
    examples = examples[:max_examples]
    if not examples:
        return StageDataStats(unavailable=f"{path}: no valid examples to measure")
    if technique == "cpt":
        texts = [e.text or "" for e in examples]
        special = True
    else:
        texts = [
            _chat_text(tokenizer, e.messages or [], generation_prompt=technique == "rft") for e in examples
        ]
        special = False  # the chat template writes its own special tokens
    encoded = _encode(tokenizer, texts, add_special_tokens=special)
    lengths = tuple(sorted(len(ids) for ids in encoded))
    reasoning = None
    if technique == "sft":
        with_trace = sum(1 for e in examples if any(m.get("reasoning_content") for m in e.messages or []))
        reasoning = with_trace / len(examples)
    return StageDataStats(lengths=LengthStats(lengths, capped), reasoning_share=reasoning)


# --------------------------------------------------------------------------- vocabulary (for `advise`)


@dataclass(frozen=True)
class VocabularyGap:
    """How much of the domain text's vocabulary the base model lacks.

    `unknown_word_rate`: share of word occurrences the base does not know as a unit — for the tiny family,
    words that never occur in the general data it was built from; for real families, words the tokenizer
    cannot encode as one token (split into pieces). `unknown_token_rate`: share of tokens that are the
    tokenizer's unknown token (a hard gap, e.g. an unsupported script).
    """

    unknown_word_rate: float
    unknown_token_rate: float
    words: int
    examples: int
    reference: str
    top_unknown: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def tiny_reference_vocabulary(documents_per_category: int = 3000) -> frozenset[str]:
    """Lower-cased words of the general data the tiny family is built from (text and chat)."""
    from tunesmith.data import general

    words: set[str] = set()
    for category in general.CATEGORIES:
        for kind in ("text", "sft"):
            for row in islice(general.stream(category, kind, seed=0), documents_per_category):
                text = row.get("text") or " ".join(m["content"] for m in row["messages"])
                words.update(w.lower() for w in _WORD.findall(text))
    return frozenset(words)


def _example_text(example: Any) -> str:
    return example.render_text() if hasattr(example, "render_text") else str(example)


def vocabulary_gap(
    path: str | Path, family: str, tokenizer: Any, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> VocabularyGap:
    """Measure the domain text's vocabulary gap against the base (see `VocabularyGap`)."""
    from collections import Counter

    from tunesmith.data.formats import read_examples

    examples = list(islice(read_examples(path, None, skip_invalid=True), max_examples))
    texts = [_example_text(e) for e in examples]
    words = [w for text in texts for w in _WORD.findall(text)]
    unknown: Counter[str] = Counter()
    if family == "tiny":
        known = tiny_reference_vocabulary()
        reference = "words of the general data the tiny family was built from"
        unknown.update(w.lower() for w in words if w.lower() not in known)
    else:
        reference = "words the tokenizer encodes as a single token"
        single: dict[str, bool] = {}
        for w in words:
            if w not in single:
                single[w] = len(tokenizer.tokenize(" " + w)) == 1
            if not single[w]:
                unknown[w.lower()] += 1
    unk_id = getattr(tokenizer, "unk_token_id", None)
    total_tokens = unk_tokens = 0
    for ids in _encode(tokenizer, texts, add_special_tokens=False):
        total_tokens += len(ids)
        if unk_id is not None:
            unk_tokens += sum(1 for i in ids if i == unk_id)
    return VocabularyGap(
        unknown_word_rate=sum(unknown.values()) / len(words) if words else 0.0,
        unknown_token_rate=unk_tokens / total_tokens if total_tokens else 0.0,
        words=len(words),
        examples=len(examples),
        reference=reference,
        top_unknown=tuple(w for w, _ in unknown.most_common(5)),
    )


def estimate_tokens(path: str | Path, tokenizer: Any, *, max_examples: int = DEFAULT_MAX_EXAMPLES) -> int:
    """Tokens in a text file: exact when it has at most `max_examples` lines, else extrapolated by bytes."""
    from tunesmith.data.formats import read_examples

    path = Path(path)
    examples = list(islice(read_examples(path, "cpt", skip_invalid=True), max_examples + 1))
    texts = [e.text or "" for e in examples[:max_examples]]
    tokens = sum(len(ids) for ids in _encode(tokenizer, texts, add_special_tokens=False))
    if len(examples) <= max_examples or not path.is_file():
        return tokens
    sampled_bytes = sum(len(t.encode("utf-8")) for t in texts) or 1
    return round(tokens * path.stat().st_size / sampled_bytes)


# ------------------------------------------------------------------------------------ unique examples

MAX_UNIQUE_COUNTED = 1_000_000
"""Distinct examples `count_unique` tracks (8-byte hashes: ~100 MB at most); a file with more is not narrow."""


def _digest(example: Any) -> int:
    import hashlib

    return int.from_bytes(
        hashlib.blake2b(example.content_key().encode("utf-8"), digest_size=8).digest(), "big"
    )


def count_unique(snapshot: DataSnapshot, *, limit: int = MAX_UNIQUE_COUNTED) -> int | None:
    """Distinct valid examples of a snapshot's file (the duplicates `data inspect` counts, by content): from
    the head the snapshot holds when that is the whole file, else one streaming pass. None when the file has
    more than `limit` distinct examples (not narrow data) or cannot be read."""
    from tunesmith.data.formats import read_examples
    from tunesmith.errors import UserError

    if snapshot.error is None and len(snapshot.head) == snapshot.examples:
        examples: Any = snapshot.head
    else:
        examples = read_examples(snapshot.path, snapshot.kind, skip_invalid=True)
    seen: set[int] = set()
    try:
        for example in examples:
            seen.add(_digest(example))
            if len(seen) > limit:
                return None
    except UserError:
        return None
    return len(seen)
