"""The evaluation suites: which items, how a checkpoint answers them, how the answers are scored.

- **general**: the embedded world's held-out items, `general_items_per_category` per category
  (`tunesmith.data.general`, split "eval": never seen in training), scored by exact match; plus the
  perplexity of held-out general prose (the pre-training text kind, split "eval").
- **domain**: the user's `gen_qa` file (`tunesmith.data.formats`, kind "eval"), scored by exact match,
  normalized match, token F1, ROUGE-L and, when a reward is given, the reward function (the managed
  service's `rft_eval`); plus the perplexity of the reference answers given their prompts.

Answering and scoring is `tunesmith.evaluation.retention.measure` (the one general-skill measurement; a real
model gets the real bank's items there instead of the tiny world's): batched, greedy generation with the
model's chat template ([nova-evaluation]: eval recipes use temperature 0). `max_new_tokens` is derived from the
longest reference (1.5 x its tokens + 8, capped), so a model that never stops does not cost the cap on
every item.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from tunesmith.data import general
from tunesmith.models.generate import answer_prompt, pad_token_id

GENERAL_TEXT_DOCS_PER_CATEGORY = 20
"""Held-out prose documents per category for the general perplexity (~5k characters in all)."""


def items_hash(items: Sequence[dict]) -> str:
    """Content hash of an item set (order included): the cache key's item part."""
    digest = hashlib.sha256()
    for item in items:
        key = [item["messages"], item["reference"], item["category"]]
        if item.get("checks"):  # a real-bank item: what is checked is part of the item
            key.append(item["checks"])
        digest.update(json.dumps(key).encode())
    return digest.hexdigest()


def general_items(per_category: int) -> list[dict]:
    """Held-out general items: `{"id", "category", "messages", "reference"}`, categories in fixed order."""
    rows = []
    for category in general.CATEGORIES:
        for index, row in enumerate(general.sample(category, "eval", per_category, seed=0, split="eval")):
            rows.append(
                {
                    "id": f"{category}/{index}",
                    "category": category,
                    "messages": [{"role": "user", "content": row["query"]}],
                    "reference": row["response"],
                }
            )
    return rows


def general_texts(per_category: int = GENERAL_TEXT_DOCS_PER_CATEGORY) -> list[str]:
    """Held-out general prose for the perplexity (never in any training split)."""
    return [
        row["text"]
        for category in general.CATEGORIES
        for row in general.sample(category, "text", per_category, seed=0, split="eval")
    ]


def domain_items(path: str | os.PathLike[str], default_category: str = "domain") -> list[dict]:
    """Items of a gen_qa file (validated; the first bad line is a one-line `DataError`).

    The category is `metadata.category` when the metadata is an object that has one, else
    `default_category`.
    """
    from tunesmith.data.formats import read_examples

    rows = []
    for index, example in enumerate(read_examples(path, "eval")):
        messages = example.messages or []
        metadata = example.extra.get("metadata")
        category = metadata.get("category") if isinstance(metadata, dict) else None
        rows.append(
            {
                "id": f"{index}",
                "category": str(category or default_category),
                "messages": [m for m in messages if m["role"] != "assistant"],
                "reference": messages[-1]["content"],
            }
        )
    return rows


def max_new_tokens_for(tokenizer, references: Sequence[str], cap: int) -> int:
    """1.5 x the longest reference in tokens + 8 (room for the eos), at most `cap`."""
    longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=8)
    return max(1, min(cap, math.ceil(1.5 * longest) + 8))


@torch.inference_mode()
def perplexity(
    model, tokenizer, prompts: Sequence[str], continuations: Sequence[str], *, batch_size: int = 16
) -> float:
    """exp(mean negative log-likelihood per token) of each continuation given its prompt.

    For plain text pass empty prompts: the tokenizer's special tokens (e.g. `<s>`) form the context and
    every text token is scored. For chat items the prompt is the rendered template with the generation
    prompt and the continuation is the answer plus the eos token.
    """
    was_training = model.training
    model.eval()
    has_template = bool(getattr(tokenizer, "chat_template", None))
    pad_id = pad_token_id(tokenizer)
    limit = getattr(tokenizer, "model_max_length", None) or 4096
    limit = min(limit, getattr(model.config, "max_position_embeddings", limit) or limit)
    total_nll, total_tokens = 0.0, 0
    try:
        for start in range(0, len(prompts), batch_size):
            ids_list, starts = [], []
            for prompt, continuation in zip(
                prompts[start : start + batch_size], continuations[start : start + batch_size], strict=True
            ):
                special = not (has_template and prompt)
                prompt_ids = tokenizer(prompt, add_special_tokens=special, truncation=True, max_length=limit)
                ids = tokenizer(
                    prompt + continuation, add_special_tokens=special, truncation=True, max_length=limit
                )
                prompt_ids, ids = prompt_ids["input_ids"], ids["input_ids"]
                ids_list.append(ids)
                starts.append(max(1, len(prompt_ids)))
            width = max(len(ids) for ids in ids_list)
            input_ids = torch.full((len(ids_list), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(ids_list), width), dtype=torch.long)
            scored = torch.zeros((len(ids_list), width), dtype=torch.bool)
            for row, (ids, first) in enumerate(zip(ids_list, starts, strict=True)):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                scored[row, first : len(ids)] = True
            logits = model(
                input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)
            ).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = input_ids[:, 1:].to(logprobs.device)
            token_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            mask = scored[:, 1:].to(logprobs.device)
            total_nll -= float(token_logprobs[mask].sum())
            total_tokens += int(mask.sum())
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def uniform_perplexity(model) -> int:
    """The perplexity of a uniform guess over the model's output vocabulary: its size. A model scores above
    it when it is confidently wrong (e.g. a chat-tuned checkpoint on plain prose, which expects the chat
    template's tokens next), below it when it predicts better than chance."""
    return int(model.get_output_embeddings().weight.shape[0])


def general_perplexity(model, tokenizer, *, docs_per_category: int = GENERAL_TEXT_DOCS_PER_CATEGORY) -> float:
    """Perplexity of held-out general prose as plain text (no chat template): every next-token prediction
    after the tokenizer's BOS, truncated at the model's context length."""
    texts = general_texts(docs_per_category)
    return perplexity(model, tokenizer, [""] * len(texts), texts)


def answer_perplexity(model, tokenizer, items: Sequence[dict]) -> float:
    """Perplexity of the reference answers given their prompts (the domain validation perplexity)."""
    prompts = [answer_prompt(tokenizer, item["messages"]) for item in items]
    eos = tokenizer.eos_token if getattr(tokenizer, "chat_template", None) and tokenizer.eos_token else ""
    return perplexity(model, tokenizer, prompts, [item["reference"] + eos for item in items])


def summarize(items: Sequence[dict]) -> dict[str, dict]:
    """metric -> {"overall": macro mean over categories, "by_category": {category: mean}}."""
    if not items:
        return {}
    metrics = list(items[0]["scores"])
    summary: dict[str, dict] = {}
    for metric in metrics:
        by_category: dict[str, list[float]] = {}
        for item in items:
            by_category.setdefault(item["category"], []).append(item["scores"][metric])
        means = {c: sum(v) / len(v) for c, v in sorted(by_category.items())}
        summary[metric] = {"overall": sum(means.values()) / len(means), "by_category": means}
    return summary


def resolve_data(ref: str, base_dir: Path | None = None) -> Path:
    """A gen_qa reference (`builtin:...` or a path) as a local file."""
    from tunesmith.recipe.resolve import locate_data

    return locate_data(ref, base_dir)
