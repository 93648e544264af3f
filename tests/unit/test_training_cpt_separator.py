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


def test_a_cpt_stage_trains_on_the_separated_documents(stand_ins, tmp_path: Path) -> None:
    import yaml

    from tunesmith.cli import main

    docs = [{"text": f"Brindle note {i}: the north slope harvest starts in spring."} for i in range(24)]
    for name, part in (("train", docs[:16]), ("validation", docs[16:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in part))
    recipe = {
        "name": "cpt-sep",
        "model": {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "cpt",
                "mode": "lora",
                "data": {
                    "train": str(tmp_path / "train.jsonl"),
                    "validation": str(tmp_path / "validation.jsonl"),
                },
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {"max_steps": 3, "global_batch_size": 8},
            }
        ],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "recipe.yaml"), "--quiet", "--no-eval", "--force"]) == 0
    result = json.loads((tmp_path / "runs" / "cpt-sep" / "cpt" / "result.json").read_text())
    assert result["steps"] == 3 and result["final_train_loss"] > 0 and result["initial_eval_loss"] > 0
