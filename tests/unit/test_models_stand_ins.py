"""The offline stand-ins of real families load like the Hub's folders and keep each family's quirks."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.errors import UserError
from tunesmith.models.stand_ins import FAMILIES, build_stand_in

CONVERSATION = [
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And 4+4?"},
    {"role": "assistant", "content": "8"},
]


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_stand_in_loads_with_plain_transformers(stand_ins, kind):
    folder = stand_ins[kind]
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    family = FAMILIES[kind]
    assert type(model).__name__ == f"{family.architecture}ForCausalLM"
    assert model.dtype == torch.bfloat16  # the real checkpoints ship bf16
    assert tokenizer.eos_token == family.eos
    assert tokenizer.pad_token == family.pad
    assert len(tokenizer) == model.config.vocab_size
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert "4+4?" in text and text.count("5") >= 1 and "8" in text
    generation = json.loads((folder / "generation_config.json").read_text())
    assert len(generation["eos_token_id"]) >= 2  # instruct folders stop at several ids
    assert tokenizer.convert_tokens_to_ids(family.eos) in generation["eos_token_id"]
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == text  # byte-level BPE round-trips the rendering
    with torch.no_grad():
        logits = model(torch.tensor([ids[:32]])).logits
    assert logits.shape == (1, min(32, len(ids)), len(tokenizer))


def test_qwen3_think_tokens_are_added_but_not_special(stand_ins):
    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    think = tokenizer.convert_tokens_to_ids("<think>")
    assert think != tokenizer.unk_token_id and "<think>" not in tokenizer.all_special_tokens
    assert tokenizer.decode([think], skip_special_tokens=True) == "<think>"  # survives decoding, as in Qwen3
    assert "<think>\n\n</think>" in tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False)


def test_llama3_has_no_pad_token_and_adds_bos(stand_ins):
    tokenizer = AutoTokenizer.from_pretrained(stand_ins["llama3"])
    assert tokenizer.pad_token is None
    assert tokenizer("hello").input_ids[0] == tokenizer.convert_tokens_to_ids("<|begin_of_text|>")


def test_unknown_family_or_size_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="unknown stand-in family 'mistral'"):
        build_stand_in("mistral", tmp_path)
    with pytest.raises(UserError, match="unknown stand-in size"):
        build_stand_in("qwen3", tmp_path, size="7b")
