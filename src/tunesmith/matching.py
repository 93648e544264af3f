"""Answer comparisons shared by the evaluation metrics and the reward verifiers (pure functions, no model).

One definition each, so a reward and the domain suite report the same number:

- `exact_match`: equal after collapsing whitespace (case kept: some tasks ask for capitals);
- `normalized_match`: equal after SQuAD normalization (lower case, punctuation and the articles a/an/the
  removed, whitespace collapsed). Source: the official SQuAD v1.1 evaluation script (`normalize_answer`,
  [rajpurkar-2016]);
- `token_f1`: harmonic mean of token precision and recall over the normalized bags of words (same script,
  `f1_score`).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the answer equals the reference after collapsing whitespace (case matters), else 0.0."""
    return float(" ".join(prediction.split()) == " ".join(reference.split()))


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalization: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalized_match(prediction: str, reference: str) -> float:
    """1.0 when both are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over normalized words (two empty strings score 1.0, one empty string 0.0)."""
    got, want = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)
