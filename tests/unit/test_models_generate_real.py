"""Generation on the real families' formats: no pad token, several eos ids, reasoning blocks."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.models.generate import generate_batch, render_prompt, split_reasoning, stop_token_ids

PROMPTS = [
    [{"role": "user", "content": "What is 2+3?"}],
    [{"role": "user", "content": "Name a part that Brindle sells and say what it costs in dollars."}],
]


@pytest.mark.parametrize("kind", ["llama3", "qwen3"])
def test_generate_batch_on_real_formats(stand_ins, kind):
    model = AutoModelForCausalLM.from_pretrained(stand_ins[kind])
    tokenizer = AutoTokenizer.from_pretrained(stand_ins[kind])
    pad_before = tokenizer.pad_token
    outputs = generate_batch(model, tokenizer, PROMPTS, max_new_tokens=4)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    assert tokenizer.pad_token == pad_before  # the eos fallback is for the call only (Llama has none)


def test_stop_ids_cover_every_eos_the_generation_config_lists(stand_ins):
    model = AutoModelForCausalLM.from_pretrained(stand_ins["llama3"])
    tokenizer = AutoTokenizer.from_pretrained(stand_ins["llama3"])
    ids = stop_token_ids(model, tokenizer)
    names = {tokenizer.convert_ids_to_tokens(i) for i in ids}
    assert names == {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"}


def test_reasoning_switch_reaches_the_template(stand_ins):
    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    thinking = render_prompt(tokenizer, PROMPTS[0], reasoning=True)
    direct = render_prompt(tokenizer, PROMPTS[0], reasoning=False)
    assert thinking.endswith("<|im_start|>assistant\n")
    assert direct.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render_prompt(tokenizer, PROMPTS[0]) == thinking  # None: the template's own default


@pytest.mark.parametrize(
    ("completion", "reasoning", "answer"),
    [
        ("<think>\n2 plus 3\n</think>\n\n5", "2 plus 3", "5"),
        ("<think>\n\n</think>\n\n5", "", "5"),
        ("5", "", "5"),
        ("  <think>still thinking", "still thinking", ""),
        ("The answer is <think> not a block", "", "The answer is <think> not a block"),
    ],
)
def test_split_reasoning(completion, reasoning, answer):
    assert split_reasoning(completion) == (reasoning, answer)
