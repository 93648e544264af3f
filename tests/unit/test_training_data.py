"""The stage's training file: the mixture materialized in training order (examples or tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.models.tokenizer import build_tiny_tokenizer
from tunesmith.recipe.schema import Stage
from tunesmith.training.data import prepare_stage_data


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _stage(train: str, **mixing) -> Stage:
    return Stage.model_validate(
        {
            "technique": "sft",
            "mode": "full",
            "data": {"train": train},
            "data_mixing": {
                "customer_percent": 50,
                "general": {"reasoning-instruction-following": 50, "math": 50},
                "unit": "examples",
                "sampling": "with_replacement",
                "max_general_repeats": 4,
                "quality_tail_percent": 0,
                **mixing,
            },
        }
    )


def test_examples_mix_in_training_order_and_reused_on_resume(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(40)
    ]
    stage = _stage(_write(tmp_path / "t.jsonl", rows))
    data = prepare_stage_data(stage, stage_dir=tmp_path / "s", total_examples=200, seed=3, quiet=True)
    assert data.train_examples == 200
    assert data.mix_report["sources"]["customer"]["examples"] == 100
    first = data.train_file.read_text()
    again = prepare_stage_data(stage, stage_dir=tmp_path / "s", total_examples=200, seed=3, quiet=True)
    assert again.train_file.read_text() == first  # resume reads the very same file
    other = prepare_stage_data(stage, stage_dir=tmp_path / "s2", total_examples=200, seed=4, quiet=True)
    assert other.train_file.read_text() != first and sorted(other.train_file.read_text().splitlines()) != []


def test_token_unit_mix_and_reasoning_kept(tmp_path: Path) -> None:
    rows = [
        {
            "schemaVersion": "bedrock-conversation-2024",
            "messages": [
                {"role": "user", "content": [{"text": f"question number {i} " * 3}]},
                {
                    "role": "assistant",
                    "content": [
                        {"reasoningContent": {"reasoningText": {"text": "think"}}},
                        {"text": f"answer {i}"},
                    ],
                },
            ],
        }
        for i in range(60)
    ]
    stage = _stage(_write(tmp_path / "t.jsonl", rows), unit="tokens")
    data = prepare_stage_data(
        stage,
        stage_dir=tmp_path / "s",
        total_examples=120,
        seed=0,
        quiet=True,
        tokenizer=build_tiny_tokenizer(),
    )
    sources = data.mix_report["sources"]
    tokens = {name: entry["tokens"] for name, entry in sources.items()}
    share = tokens["customer"] / sum(tokens.values())
    assert share == pytest.approx(0.5, abs=0.05)
    first = json.loads(data.train_file.read_text().splitlines()[0])
    customer_rows = [json.loads(x) for x in data.train_file.read_text().splitlines() if "question" in x]
    assert customer_rows and customer_rows[0]["messages"][1]["reasoning_content"] == "think"
    assert "messages" in first


def test_validation_follows_the_mix_shares(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(40)
    ]
    train = _write(tmp_path / "t.jsonl", rows)
    validation = _write(tmp_path / "v.jsonl", rows[:30])
    stage = _stage(train)
    stage.data.validation = validation
    data = prepare_stage_data(stage, stage_dir=tmp_path / "s", total_examples=80, seed=0, quiet=True)
    lines = [json.loads(x) for x in data.validation_file.read_text().splitlines()]
    assert data.validation_examples == len(lines) == 60  # 30 of yours + 30 general (50% mix)
    customer = [r for r in lines if r["messages"][0]["content"].startswith("q")]
    assert len(customer) == 30
    unmixed = _stage(train, customer_percent=100, general={})
    unmixed.data.validation = validation
    data = prepare_stage_data(unmixed, stage_dir=tmp_path / "u", total_examples=80, seed=0, quiet=True)
    assert data.validation_examples == 30
