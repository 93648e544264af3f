"""CPT ends each document with the family's document separator (read from the tokenizer), not with an
instruct tokenizer's end-of-turn eos."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunesmith.training.cpt import CPT, document_separator


@pytest.mark.parametrize(
    ("family", "separator", "eos"),
    [("qwen3", "<|endoftext|>", "<|im_end|>"), ("llama3", "<|end_of_text|>", "<|eot_id|>")],
)
def test_the_separator_is_the_familys_not_the_chat_eos(
    stand_ins, family: str, separator: str, eos: str
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stand_ins[family])
    assert tokenizer.eos_token == eos  # the instruct tokenizer's eos ends a chat turn
    assert document_separator(tokenizer) == separator


def test_the_tiny_family_ends_documents_with_its_eos() -> None:
    from tunesmith.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    assert document_separator(tokenizer) == tokenizer.eos_token


def test_cpt_datasets_end_every_document_with_the_separator(stand_ins, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    docs = ["Brindle tea grows on the north slope.", "The harvest starts in spring."]
    for name in ("train", "validation"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    run = SimpleNamespace(
        quiet=True,
        stage_dir=tmp_path,
        data=SimpleNamespace(
            train_file=tmp_path / "train.jsonl", validation_file=tmp_path / "validation.jsonl"
        ),
    )
    datasets = CPT().build_datasets(run, tokenizer)
    separator = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for split in (datasets.train, datasets.validation):
        assert split.column_names == ["input_ids"]
        for doc, ids in zip(docs, split["input_ids"], strict=True):
            assert ids[-1] == separator and im_end not in ids
            assert tokenizer.decode(ids[:-1]) == doc
