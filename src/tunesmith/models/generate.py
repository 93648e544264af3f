"""Batched greedy generation with the chat template, and the exact-match scorer.

Small on purpose: the tiny-family builder needs per-category accuracy for its build report, and the
evaluation issue reuses `generate_batch` / `exact_match` / `accuracy_by_category` for its suites.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import torch

from tunesmith import matching
from tunesmith.models.templates import thinking_kwargs

Messages = list[dict[str, str]]

_REASONING = re.compile(r"^\s*<think>(.*?)(?:</think>|$)", re.DOTALL)


def render_prompt(tokenizer, messages: Messages, *, reasoning: bool | None = None) -> str:
    """The text the model sees before its answer: the chat template with the generation prompt, or, for a
    tokenizer without a template (a base model), the user turns joined by newlines.

    `reasoning` True/False is passed to the template as `enable_thinking` (Qwen3's switch: False closes an
    empty `<think></think>` block in the prompt, so the model answers directly); None leaves the template's
    default. Templates without the switch ignore it. Training renders with the same switch
    (`tunesmith.models.templates`); the recipe's value is `ResolvedConfig.reasoning`.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **thinking_kwargs(reasoning)
        )
    return "\n".join(m["content"] for m in messages if m["role"] != "assistant") + "\n"


def answer_prompt(tokenizer, messages: Messages) -> str:
    """The prompt after which an answer is scored token by token (teacher forcing: the forgetting probe,
    answer perplexities): the direct-answer rendering (`reasoning=False`), since a forced answer has no
    reasoning before it, and a reasoning template renders an answer without reasoning after an empty block
    (Qwen3: `<think>\n\n</think>\n\n`), in training as at inference."""
    return render_prompt(tokenizer, messages, reasoning=False)


def split_reasoning(completion: str) -> tuple[str, str]:
    """(reasoning, answer) of a completion that may open with a `<think>...</think>` block (Qwen3, DeepSeek-R1
    style; the tags are plain text there, so decoding keeps them). An unclosed block is all reasoning."""
    match = _REASONING.match(completion)
    if match is None:
        return "", completion.strip()
    return match.group(1).strip(), completion[match.end() :].strip()


def answer_of(completion: str) -> str:
    """What is scored (exact match, F1, rewards): the completion without its reasoning block."""
    return split_reasoning(completion)[1]


def pad_token_id(tokenizer) -> int:
    """The id to pad with: the tokenizer's pad token, else its eos (Llama 3.x Instruct folders ship no pad
    token; padded positions are masked out, so the fallback never changes a result)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    assert pad is not None, "a tokenizer with neither a pad nor an eos token"
    return pad


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id generation should stop at: the generation config's eos ids (instruct folders list several,
    e.g. Llama 3's <|end_of_text|>, <|eom_id|>, <|eot_id|>) and the tokenizer's eos."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(configured) if isinstance(configured, list | tuple) else [configured]
    ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(i for i in ids if i is not None))


@torch.inference_mode()
def generate_batch(
    model,
    tokenizer,
    prompts_as_messages: Sequence[Messages],
    max_new_tokens: int = 32,
    batch_size: int = 128,
    *,
    num_samples: int = 1,
    temperature: float | None = None,
    reasoning: bool | None = None,
) -> list[str]:
    """Completions (special tokens removed, stripped) for each conversation, in order: greedy by default;
    with `temperature`, `num_samples` sampled completions per conversation (consecutive in the output; seed
    torch beforehand for reproducible samples).

    Prompts are left-padded so every row's answer starts at the same position (a tokenizer without a pad
    token, like Llama 3.x Instruct's, pads with eos for the call); generation stops at any of
    `stop_token_ids` or after `max_new_tokens`. `reasoning` goes to `render_prompt`; completions are returned
    as generated (reasoning blocks included: `split_reasoning` separates them for scoring).
    """
    sampling = temperature is not None
    if num_samples > 1 and not sampling:
        raise ValueError("num_samples > 1 needs a temperature (greedy decoding gives one answer)")
    options = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if sampling else {}
    batch_size = max(1, batch_size // num_samples)
    was_training = model.training
    model.eval()
    previous_side, previous_pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = tokenizer.pad_token_id
    stop_ids = stop_token_ids(model, tokenizer)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts_as_messages), batch_size):
            texts = [
                render_prompt(tokenizer, m, reasoning=reasoning)
                for m in prompts_as_messages[start : start + batch_size]
            ]
            batch = tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=not has_template
            ).to(model.device)
            generated = model.generate(
                **batch,
                **(options or {"do_sample": False}),
                num_return_sequences=num_samples,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=stop_ids,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = previous_side
        if previous_pad is None:
            tokenizer.pad_token = None
        model.train(was_training)
    return outputs


def exact_match(prediction: str, reference: str) -> bool:
    """True when the answer equals the reference after collapsing whitespace (case matters: some tasks
    ask for capitals): `tunesmith.matching.exact_match`, the evaluation suite's scorer."""
    return bool(matching.exact_match(prediction, reference))


def accuracy_by_category(
    model, tokenizer, rows: Sequence[dict], max_new_tokens: int = 32, batch_size: int = 128
) -> tuple[dict[str, float], list[dict]]:
    """Exact-match accuracy per `metadata.category` over gen_qa rows, and the rows with predictions."""
    messages = [[{"role": "user", "content": row["query"]}] for row in rows]
    predictions = generate_batch(model, tokenizer, messages, max_new_tokens, batch_size)
    hits: dict[str, list[bool]] = defaultdict(list)
    scored = []
    for row, prediction in zip(rows, predictions, strict=True):
        category = (row.get("metadata") or {}).get("category", "all")
        correct = exact_match(answer_of(prediction), row["response"])
        hits[category].append(correct)
        scored.append({**row, "prediction": prediction, "correct": correct})
    return {c: sum(v) / len(v) for c, v in hits.items()}, scored
