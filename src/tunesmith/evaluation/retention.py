"""General skill: one measurement, by one name (`measure`), for every place that asks "what can it still do?".

The evaluation's general suite (`runner`), the training monitor's forgetting probe
(`training.monitor.ForgettingProbe`), the sweep rungs' probes (through that probe) and the RFT readiness
probe's sampling and scoring (`evaluation.probe`) all call `measure`: the model answers the items, and each
answer is scored by the item's own scorer (`score_item`). A model therefore gets the same treatment at every
point; only how many items, and how long an answer may be, change.

Which items: `general_items(load_ref, n)` picks the suite by model. The tiny family, and any folder that
reads its character vocabulary (the rule `recipe.resolve.reads_tiny_vocabulary` that also picks its
general training data), keeps the tiny world's held-out items (terse answers, exact match). Every other
model gets the real-model bank (`tunesmith.data.general.real`, split "eval"): items a real instruct model
can answer, scored tolerantly of its style by `real.score` (IFEval's checkers, answer extraction, aliases).

Two modes, the same measurement:

- `"generate"` (default): greedy, batched generation with the chat template, items grouped by their answer
  budget (`real.MAX_NEW_TOKENS` per category; one budget for the tiny world), then `score_item`.
- `"teacher-forced"`: for exact-match items only (a reference and no checks: the tiny world, a domain
  gen_qa file). One forward pass scores an item right when every answer token and the end-of-sequence token
  is the argmax given the correct prefix: exactly when greedy decoding reproduces the reference, without
  the cost of generating (the tiny family's probe took 17.7 s generating against ~0.2 s per training step).
  Its answer-position log-probs come back too (the monitor's KL to the start model uses them). A real
  model's answers do not match a terse reference token for token, so its items are always generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunesmith.data.general import real
from tunesmith.evaluation.metrics import score_all
from tunesmith.models.generate import answer_prompt, generate_batch, pad_token_id, split_reasoning
from tunesmith.vocabulary import CATEGORIES

REAL_SUITE = "real"
TINY_SUITE = "tiny-world"
SCORER_VERSION = 1
"""Raised when `real.score` or the bank's items change meaning: part of the evaluation cache's key."""
REAL_METRIC = "score"
"""The real suite's per-item metric (0-1, `real.score`); the tiny world's is "exact_match"."""
TEACHER_FORCED_CHUNK = 8
"""Items per forward pass in teacher-forced mode (sorted by length): bounds the logits' memory at real
vocabularies (a whole probe's logits at 150k tokens would take gigabytes)."""

Scorer = Callable[[Sequence[dict], list[str]], list[dict[str, float]]]
"""(items, completions) -> each item's scores: what `measure` calls after generating (default:
`score_item` per item; the readiness probe passes its reward)."""


def is_tiny_world(load_ref: str | Path | None) -> bool:
    """True when the model reads the tiny world: `tiny`, a tiny family checkpoint, or a folder with the tiny
    family's tokenizer (the rule that picks its general training data, `recipe.resolve.reads_tiny_vocabulary`).
    Anything else, a Hub id included, is a real model."""
    from tunesmith.errors import ModelError
    from tunesmith.models.loading import resolve_ref
    from tunesmith.recipe.resolve import reads_tiny_vocabulary

    if load_ref is None or not str(load_ref).strip():
        return False
    if str(load_ref) == "tiny":
        return True
    try:
        source, _ = resolve_ref(str(load_ref), fetch=False)
    except ModelError:
        return False
    return isinstance(source, Path) and reads_tiny_vocabulary(source)


def suite_name(load_ref: str | Path | None) -> str:
    return TINY_SUITE if is_tiny_world(load_ref) else REAL_SUITE


def real_items(per_category: int | None = None, split: str = "eval") -> list[dict]:
    """The real-model bank's items as suite items (`{"id", "category", "messages", "reference", "checks",
    "max_new_tokens", "item"}`), the first `per_category` of each category (all when None)."""
    rows = []
    for category in CATEGORIES:
        picked = real.items(split, category)
        for item in picked if per_category is None else picked[:per_category]:
            rows.append(
                {
                    "id": item["id"],
                    "category": category,
                    "messages": [{"role": "user", "content": item["prompt"]}],
                    "reference": item["reference"],
                    "checks": item["checks"],
                    "max_new_tokens": real.MAX_NEW_TOKENS[category],
                    "item": item,
                }
            )
    return rows


def general_items(load_ref: str | Path | None, per_category: int) -> list[dict]:
    """The held-out general items for this model: the tiny world's or the real bank's (`suite_name`)."""
    if is_tiny_world(load_ref):
        from tunesmith.evaluation.suites import general_items as tiny_items

        return tiny_items(per_category)
    return real_items(per_category)


def metric_of(items: Sequence[dict]) -> str:
    """The per-item metric a general item set is read by."""
    return REAL_METRIC if items and "item" in items[0] else "exact_match"


def score_item(item: dict, completion: str) -> dict[str, float]:
    """One item's scores: `real.score` for a real-bank item (it drops a reasoning block itself), else the
    exact-match family on the answer after any reasoning block (`metrics.score_all`)."""
    if "item" in item:
        return {REAL_METRIC: real.score(item["item"], completion)}
    return score_all(split_reasoning(completion)[1], item["reference"])


def _default_scorer(items: Sequence[dict], completions: list[str]) -> list[dict[str, float]]:
    return [score_item(item, completion) for item, completion in zip(items, completions, strict=True)]


@dataclass
class Measurement:
    """What `measure` returns: one row per item (`{"id", "category", "prompt", "reference", "prediction",
    "scores"}`, plus `"reasoning"` when the completion opened with a block, and `"completions"` when
    sampled), the metric, and in teacher-forced mode the token accuracy and answer-position log-probs."""

    rows: list[dict]
    metric: str
    seconds: float
    token_accuracy: float | None = None
    logprobs: list[torch.Tensor] = field(default_factory=list)

    def values(self) -> list[float]:
        return [float(row["scores"][self.metric]) for row in self.rows]

    def mean(self) -> float:
        values = self.values()
        return sum(values) / len(values) if values else 0.0

    def by_category(self) -> dict[str, float]:
        groups: dict[str, list[float]] = {}
        for row, value in zip(self.rows, self.values(), strict=True):
            groups.setdefault(row["category"], []).append(value)
        return {category: sum(v) / len(v) for category, v in groups.items()}


def measure(
    model: Any,
    tokenizer: Any,
    items: Sequence[dict],
    *,
    mode: str = "generate",
    max_new_tokens: int = 32,
    batch_size: int = 128,
    reasoning: bool | None = False,
    temperature: float | None = None,
    num_samples: int = 1,
    scorer: Scorer | None = None,
) -> Measurement:
    """General skill (or any item set's) on `model`: answers, scored per item. See the module docstring.

    `items` are suite items (`{"id", "category", "messages", "reference"}`, real-bank items also `checks`,
    `max_new_tokens` and `item`). `max_new_tokens` is the budget of items that carry none. With
    `temperature`, `num_samples` answers per item are sampled and `scorer` (default `score_item`) gets each
    item once per sample, in order; the row keeps the first answer and lists all in `"completions"`."""
    started = time.perf_counter()
    if mode == "teacher-forced":
        return _teacher_forced(model, tokenizer, items, started)
    if mode != "generate":
        raise ValueError(f"unknown measurement mode {mode!r}: use generate or teacher-forced")
    completions: list[list[str]] = [[] for _ in items]
    budgets: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        budgets.setdefault(int(item.get("max_new_tokens") or max_new_tokens), []).append(index)
    for budget, indices in sorted(budgets.items()):
        generated = generate_batch(
            model,
            tokenizer,
            [items[i]["messages"] for i in indices],
            budget,
            batch_size,
            num_samples=num_samples,
            temperature=temperature,
            reasoning=reasoning,
        )
        for position, index in enumerate(indices):
            completions[index] = generated[position * num_samples : (position + 1) * num_samples]
    flat_items = [item for item in items for _ in range(num_samples)]
    flat = [completion for group in completions for completion in group]
    scores = (scorer or _default_scorer)(flat_items, flat)
    rows = []
    for index, item in enumerate(items):
        first = completions[index][0]
        thought, prediction = split_reasoning(first)
        row = {
            "id": item["id"],
            "category": item["category"],
            "prompt": item["messages"][-1]["content"],
            "reference": item["reference"],
            "prediction": prediction,
            "scores": scores[index * num_samples],
        }
        if thought or first.lstrip().startswith("<think>"):
            row["reasoning"] = thought
        if num_samples > 1:
            row["completions"] = completions[index]
            row["sample_scores"] = scores[index * num_samples : (index + 1) * num_samples]
        rows.append(row)
    metric = metric_of(items) if scorer is None else (next(iter(scores[0])) if scores else "score")
    return Measurement(rows, metric, round(time.perf_counter() - started, 3))


@torch.no_grad()
def _teacher_forced(model: Any, tokenizer: Any, items: Sequence[dict], started: float) -> Measurement:
    if any("item" in item or item.get("reference") is None for item in items):
        raise ValueError(
            "teacher-forced scoring needs exact-match items with a reference (not real-bank items)"
        )
    input_ids, attention, scored = forced_inputs(
        tokenizer, [item["messages"] for item in items], [item["reference"] for item in items]
    )
    correct, hit_count, picked = forced_logprobs(model, input_ids, attention, scored)
    positions = int(scored[:, 1:].sum())
    rows = [
        {
            "id": item.get("id", str(index)),
            "category": item["category"],
            "prompt": item["messages"][-1]["content"],
            "reference": item["reference"],
            "prediction": None,
            "scores": {"exact_match": 1.0 if right else 0.0},
        }
        for index, (item, right) in enumerate(zip(items, correct, strict=True))
    ]
    return Measurement(
        rows,
        "exact_match",
        round(time.perf_counter() - started, 3),
        token_accuracy=hit_count / max(1, positions),
        logprobs=picked,
    )


def forced_inputs(
    tokenizer: Any, messages: Sequence[list[dict]], answers: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, answer mask) of each prompt followed by its answer and the eos token
    (the monitor also forces the start model's own answers, for its KL)."""
    tok = tokenizer
    has_template = bool(getattr(tok, "chat_template", None))
    ids, masks = [], []
    for conversation, answer in zip(messages, answers, strict=True):
        prompt = tok(answer_prompt(tok, conversation), add_special_tokens=not has_template)["input_ids"]
        completion = tok(answer, add_special_tokens=False)["input_ids"]
        if tok.eos_token_id is not None:
            completion = completion + [tok.eos_token_id]
        ids.append(prompt + completion)
        masks.append([0] * len(prompt) + [1] * len(completion))
    width = max(len(x) for x in ids)
    pad = pad_token_id(tok)
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
    attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    answer_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    return input_ids, attention, answer_mask


@torch.no_grad()
def forced_logprobs(
    model: Any, input_ids: torch.Tensor, attention: torch.Tensor, scored: torch.Tensor
) -> tuple[list[bool], int, list[torch.Tensor]]:
    """Per item: all its answer tokens right (argmax), and the log-probs at its answer positions; plus the
    answer tokens right in all. Items run `TEACHER_FORCED_CHUNK` at a time, sorted by length, and only the
    answer positions get a log-softmax."""
    lengths = attention.sum(dim=1).tolist()
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    correct: list[bool] = [False] * len(lengths)
    picked: list[torch.Tensor] = [torch.empty(0)] * len(lengths)
    hit_count = 0
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(order), TEACHER_FORCED_CHUNK):
            chunk = order[start : start + TEACHER_FORCED_CHUNK]
            width = max(lengths[i] for i in chunk)
            ids = input_ids[chunk, :width]
            logits = model(
                input_ids=ids.to(device), attention_mask=attention[chunk, :width].to(device)
            ).logits
            for row, item in enumerate(chunk):
                positions = scored[item, 1:width].bool()  # position t predicts token t+1
                item_logits = logits[row, : width - 1][positions.to(device)].float()
                targets = ids[row, 1:width][positions].to(device)
                hits = int((item_logits.argmax(-1) == targets).sum())
                hit_count += hits
                correct[item] = hits == int(positions.sum())
                picked[item] = torch.log_softmax(item_logits, dim=-1).cpu()
            del logits
    finally:
        model.train(was_training)
    return correct, hit_count, picked


def prose_perplexity(model: Any, tokenizer: Any, *, limit: int | None = None) -> float:
    """Perplexity of the real bank's human-written prose (`real.prose_texts`) as plain text."""
    from tunesmith.evaluation.suites import perplexity

    texts = real.prose_texts()[:limit]
    return perplexity(model, tokenizer, [""] * len(texts), texts)
