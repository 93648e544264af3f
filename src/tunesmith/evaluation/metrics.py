"""Per-item scoring of a generated answer against its reference: pure functions, no model.

- `exact_match`, `normalized_match`, `token_f1`: `tunesmith.matching` (shared with the reward verifiers, so
  a reward and the domain suite report the same number).
- `rouge_l`: ROUGE-L F-measure (beta = 1) from the longest common subsequence of lower-cased alphanumeric
  tokens ([lin-2004], section 3.1), computed by
  Google's `rouge-score` package without stemming.
- rewards: the managed service's `rft_eval` scores a domain set with the RFT stage's reward function
  ([nova-evaluation]); `resolve_reward` turns a reward spec into a callable
  `(completion, reference_answer) -> float`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from tunesmith.matching import exact_match, normalize_answer, normalized_match, token_f1

__all__ = [
    "METRICS",
    "RewardScorer",
    "Scorer",
    "exact_match",
    "normalize_answer",
    "normalized_match",
    "resolve_reward",
    "rouge_l",
    "score_all",
    "token_f1",
]

Scorer = Callable[[str, str], float]

_ROUGE_TOKEN_CHARACTER = re.compile(r"[a-z0-9]")  # rouge-score's tokens: runs of these after lower-casing


@functools.cache
def _rouge_l_scorer() -> Any:
    from rouge_score import rouge_scorer  # imported on first use: it loads nltk (about a second)

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 by `rouge-score` (lower-cased alphanumeric tokens, no stemming). Kept here: two answers
    without any token score 1.0, as in `token_f1` (rouge-score gives 0.0 when either side has no token)."""
    if not _ROUGE_TOKEN_CHARACTER.search(prediction.lower()) and not _ROUGE_TOKEN_CHARACTER.search(
        reference.lower()
    ):
        return 1.0
    return float(_rouge_l_scorer().score(reference, prediction)["rougeL"].fmeasure)


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
