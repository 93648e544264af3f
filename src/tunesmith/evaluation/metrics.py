"""Per-item scoring of a generated answer against its reference: pure functions, no model.

- `exact_match`: equal after collapsing whitespace (case kept) — `tunesmith.models.generate.exact_match`,
  the scorer of the tiny family's build report, reused so both report the same number.
- `normalized_match`: equal after SQuAD normalization (lower case, punctuation and the articles a/an/the
  removed, whitespace collapsed). Source: the official SQuAD v1.1 evaluation script
  (`normalize_answer`, Rajpurkar et al. 2016).
- `token_f1`: harmonic mean of token precision and recall over the normalized bags of words (same script,
  `f1_score`).
- `rouge_l`: ROUGE-L F-measure (beta = 1) from the longest common subsequence of lower-cased alphanumeric
  tokens (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1; tokenization as
  Google's `rouge-score` package without stemming).
- rewards: the managed service's `rft_eval` scores a domain set with the RFT stage's reward function
  (reference/managed-service-facts.md section 6); `resolve_reward` turns a reward spec into a callable
  `(completion, reference_answer) -> float`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

from tunesmith.models.generate import exact_match as _exact_match

Scorer = Callable[[str, str], float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_ROUGE_TOKEN = re.compile(r"[^a-z0-9]+")


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the answer equals the reference after collapsing whitespace (case matters), else 0.0."""
    return float(_exact_match(prediction, reference))


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


def _rouge_tokens(text: str) -> list[str]:
    return _ROUGE_TOKEN.sub(" ", text.lower()).split()


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b):
            current.append(previous[j] + 1 if token_a == token_b else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: LCS-based precision and recall over lower-cased alphanumeric tokens."""
    got, want = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not got or not want:
        return float(got == want)
    lcs = _lcs_length(got, want)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(got), lcs / len(want)
    return 2 * precision * recall / (precision + recall)


METRICS: dict[str, Scorer] = {
    "exact_match": exact_match,
    "normalized_match": normalized_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
}
"""The gen_qa metrics, by name; every domain item gets all of them."""


def score_all(prediction: str, reference: str, reward: Scorer | None = None) -> dict[str, float]:
    """Every metric of `METRICS` (and `reward`, when given) for one item."""
    scores = {name: fn(prediction, reference) for name, fn in METRICS.items()}
    if reward is not None:
        scores["reward"] = float(reward(prediction, reference))
    return scores


class RewardScorer:
    """A stage's reward (any `tunesmith.rewards` spec: built-in verifier, module:function, HTTP endpoint,
    Lambda) as an evaluation scorer: `scorer(prediction, reference)` for one item, `score_batch` for many
    (one call, so an endpoint sees batches, not single items)."""

    def __init__(self, spec: Any) -> None:
        from tunesmith.rewards import load_reward

        self.spec = spec
        self.reward = load_reward(spec)

    def score_batch(self, items: list[tuple[list[dict], str, str]]) -> list[float]:
        """(prompt messages, prediction, reference) per item -> scores (0.0 where scoring failed)."""
        from tunesmith.rewards import RewardSample

        samples = [
            RewardSample(
                id=str(i),
                messages=[*messages, {"role": "assistant", "content": prediction}],
                reference_answer=ref,
            )
            for i, (messages, prediction, ref) in enumerate(items)
        ]
        return [float(r.score) for r in self.reward.score(samples)] if samples else []

    def __call__(self, prediction: str, reference: str) -> float:
        return self.score_batch([([{"role": "user", "content": ""}], prediction, reference)])[0]


def resolve_reward(spec: Any) -> RewardScorer:
    """A reward spec (see `tunesmith.rewards.config.RewardSpec`) -> a scorer; a bad spec is a one-line
    `UserError` naming it and the accepted forms."""
    return RewardScorer(spec)
