"""The character-level tiny tokenizer and its chat template."""

from __future__ import annotations

from tunesmith.models.tokenizer import ChatEncoder, build_tiny_tokenizer

CHAT = [{"role": "user", "content": "Compute 2 + 3."}, {"role": "assistant", "content": "5"}]


def test_vocabulary_is_characters_plus_specials() -> None:
    tokenizer = build_tiny_tokenizer()
    assert len(tokenizer) == 104  # 8 specials + 95 printable ASCII + newline
    assert tokenizer.pad_token_id == 0 and tokenizer.padding_side == "left"
    text = "Wrap {fox} in [] -> *x*\n~"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer("ab")["input_ids"][0] == tokenizer.bos_token_id


def test_chat_template_and_generation_prompt() -> None:
    tokenizer = build_tiny_tokenizer()
    assert (
        tokenizer.apply_chat_template(CHAT, tokenize=False)
        == "<s><|user|>Compute 2 + 3.</s><|assistant|>5</s>"
    )
    prompt = tokenizer.apply_chat_template(CHAT[:1], add_generation_prompt=True, tokenize=False)
    assert prompt == "<s><|user|>Compute 2 + 3.</s><|assistant|>"
    system = [{"role": "system", "content": "Be brief."}, *CHAT]
    assert tokenizer.apply_chat_template(system, tokenize=False).startswith(
        "<s><|system|>Be brief.</s><|user|>"
    )


def test_assistant_mask_covers_the_answer_and_its_end_token() -> None:
    tokenizer = build_tiny_tokenizer()
    out = tokenizer.apply_chat_template(CHAT, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "5</s>"


def test_trl_accepts_the_template_for_assistant_only_loss() -> None:
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    tokenizer = build_tiny_tokenizer()
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_fast_encoder_equals_the_chat_template() -> None:
    tokenizer, encoder = build_tiny_tokenizer(), ChatEncoder()
    ids, start = encoder.chat("Compute 2 + 3.", "5")
    assert ids == tokenizer.apply_chat_template(CHAT, return_dict=True)["input_ids"]
    assert (
        ids[:start]
        == tokenizer.apply_chat_template(CHAT[:1], add_generation_prompt=True, return_dict=True)["input_ids"]
    )
    assert encoder.text("hi") == tokenizer("hi")["input_ids"] + [tokenizer.eos_token_id]


def test_save_and_reload_keep_the_template(tmp_path) -> None:
    from transformers import AutoTokenizer

    build_tiny_tokenizer().save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (
        reloaded.apply_chat_template(CHAT, tokenize=False)
        == "<s><|user|>Compute 2 + 3.</s><|assistant|>5</s>"
    )
    assert len(reloaded) == 104
