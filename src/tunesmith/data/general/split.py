"""The train / eval split by a hash of the prompt, shared by the general and the domain data.

A prompt belongs to the held-out evaluation split when the first 8 hex digits of its SHA-1, read as an
integer, fall below `EVAL_PERCENT` per cent of the range. The decision depends only on the prompt text, so
it is the same in every process, every seed and every Python version, and no evaluation prompt is ever
used in training (not as a demonstration, and not as the source of a pre-training sentence).
"""

from __future__ import annotations

import hashlib

EVAL_PERCENT: float = 15.0
"""Share (0-100) of distinct prompts held out for evaluation."""

SPLITS: tuple[str, ...] = ("train", "eval")


def is_eval_prompt(prompt: str, eval_percent: float = EVAL_PERCENT) -> bool:
    """True when `prompt` belongs to the held-out evaluation split."""
    digest = hashlib.sha1(prompt.strip().encode("utf-8")).hexdigest()
    return int(digest[:8], 16) < eval_percent / 100.0 * 0x100000000


def in_split(prompt: str, split: str) -> bool:
    """True when `prompt` belongs to `split` ("train" or "eval")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return is_eval_prompt(prompt) == (split == "eval")
