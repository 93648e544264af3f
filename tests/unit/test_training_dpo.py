"""DPO: preference rows in both forms (strictly validated, one line per bad row), the built-in Brindle pairs,
defaults with sources, and a real (micro) DPO stage whose held-out reward accuracy and margin rise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.data.domain import reward, sample
from tunesmith.data.formats.core import ValidationReport
from tunesmith.data.formats.reader import read_examples
from tunesmith.errors import RecipeError
from tunesmith.recipe import defaults as table
from tunesmith.recipe.loading import validate_recipe

GOOD_CHAT = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "chosen": [{"role": "assistant", "content": "Paris"}],
        "rejected": [{"role": "assistant", "content": "Lyon"}],
    },
]
BAD_CHAT = [
    ({"prompt": "x", "chosen": "same", "rejected": "same"}, '"chosen" and "rejected" are the same answer'),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, '"prompt" is empty'),
    ({"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"}, "ends with a"),
    ({"prompt": "q", "chosen": "a"}, '"rejected" is missing'),
    ({"prompt": "q", "chosen": ["a", "b"], "rejected": "b"}, '"chosen" holds 2 messages'),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, '"chosen" is a number'),
]


def _bedrock(candidates: list, first: dict | None = None) -> dict:
    user = first or {"role": "user", "content": [{"text": "Capital of France?"}]}
    return {
        "system": [{"text": "Be brief."}],
        "messages": [user, {"role": "assistant", "candidates": candidates}],
    }


def _candidate(text: str, label: str) -> dict:
    return {"content": [{"text": text}], "preferenceLabel": label}


GOOD_SERVICE = _bedrock([_candidate("Paris", "preferred"), _candidate("Lyon", "non-preferred")])
BAD_SERVICE = [
    (
        _bedrock([_candidate("A", "preferred"), _candidate("B", "preferred")]),
        "labelled ['preferred', 'preferred']",
    ),
    (_bedrock([_candidate("A", "preferred")]), "candidates holds 1"),
    (
        _bedrock([_candidate("", "preferred"), _candidate("B", "non-preferred")]),
        "candidates[0].content[0].text is empty",
    ),
    (
        _bedrock([_candidate("A", "preferred"), _candidate("A", "non-preferred")]),
        "the two candidates are the same",
    ),
    (
        _bedrock(
            [_candidate("A", "preferred"), _candidate("B", "non-preferred")],
            first={"role": "assistant", "content": [{"text": "hi"}]},
        ),
        'the first turn of "messages" is "assistant"',
    ),
]


def _read(path: Path, rows: list[dict]) -> tuple[list, ValidationReport]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ValidationReport(file=str(path))
    return list(read_examples(path, "dpo", skip_invalid=True, report=report)), report


@pytest.mark.parametrize(("good", "bad"), [(GOOD_CHAT, BAD_CHAT), ([GOOD_SERVICE], BAD_SERVICE)])
def test_preference_rows_are_validated_one_line_per_bad_row(tmp_path, good, bad) -> None:
    examples, report = _read(tmp_path / "pairs.jsonl", [*good, *(row for row, _ in bad)])
    assert len(examples) == len(good)
    assert [e.to_row()["chosen"][0]["content"] for e in examples][-1] == "Paris"
    assert examples[-1].to_row()["prompt"][0] == {"role": "system", "content": "Be brief."}
    lines = [str(issue) for issue in report.issues]
    assert len(lines) == len(bad)
    for number, ((_, needle), line) in enumerate(zip(bad, lines, strict=True), start=len(good) + 1):
        assert line.startswith(f"{tmp_path / 'pairs.jsonl'}:{number}: ") and needle in line, line


def test_a_preference_file_is_refused_by_an_sft_stage_with_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD_CHAT[0]) + "\n")
    assert main(["data", "inspect", str(path), "--kind", "sft"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "preference" in err


def test_builtin_brindle_pairs_prefer_the_right_answer() -> None:
    rows = sample("dpo", 300, seed=0)
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert all(reward(r["rejected"], r["chosen"]) < 1.0 for r in rows)  # every rejected answer is wrong
    assert len({r["prompt"] for r in rows}) > 100


def test_dpo_defaults_follow_the_service_recipes_with_sources() -> None:
    billion = {"size_class": "billion", "technique": "dpo", "mode": "lora", "checkpoint": "post-trained"}
    expected = {
        "dpo.beta": 0.1,
        "hyperparameters.lr": 1e-5,
        "hyperparameters.global_batch_size": 64,
        "hyperparameters.max_epochs": 2,
        "hyperparameters.weight_decay": 0.01,
        "hyperparameters.lora.plus_lr_ratio": 20.0,
        "data_mixing.customer_percent": 100.0,
    }
    for key, value in expected.items():
        entry = table.lookup(key, billion)
        assert entry is not None and entry.value == value and "[" in entry.source, key
    full = table.lookup("hyperparameters.max_epochs", {**billion, "mode": "full"})
    assert full is not None and full.value == 3


def test_dpo_settings_are_checked_by_the_schema() -> None:
    stage = {"technique": "sft", "data": {"train": "x.jsonl"}, "dpo": {"beta": 0.1}}
    with pytest.raises(RecipeError, match="`dpo` settings belong to dpo stages"):
        validate_recipe({"name": "r", "model": {"family": "tiny"}, "stages": [stage]})
    stage = {"technique": "dpo", "data": {"train": "x.jsonl"}, "dpo": {"beta": 0.9}}
    with pytest.raises(RecipeError, match="beta"):
        validate_recipe({"name": "r", "model": {"family": "tiny"}, "stages": [stage]})


def _pairs(n: int, offset: int = 0) -> list[dict]:
    return [
        {
            "prompt": f"zq {i + offset}?",
            "chosen": f"{(i + offset) % 7}",
            "rejected": f"{(i + offset + 3) % 7}",
        }
        for i in range(n)
    ]


def test_a_dpo_stage_raises_held_out_reward_accuracy(tmp_path, micro_model_dir) -> None:
    train, validation = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _pairs(64)))
    validation.write_text("".join(json.dumps(r) + "\n" for r in _pairs(16, offset=1000)))
    recipe = {
        "name": "micro-dpo",
        "model": {"path": str(micro_model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "dpo",
                "mode": "lora",
                "data": {"train": str(train), "validation": str(validation)},
                "hyperparameters": {
                    "max_steps": 8,
                    "global_batch_size": 8,
                    "lr": 1e-2,
                    "val_check_interval": 4,
                },
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet", "--no-eval", "--force"]) == 0
    stage = tmp_path / "runs" / "micro-dpo" / "dpo"
    rows = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r for r in rows if "eval_loss" in r}
    assert sorted(evals) == [0, 4, 8]
    assert evals[0]["eval_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert evals[8]["eval_rewards/margins"] > 0 and evals[8]["eval_loss"] < evals[0]["eval_loss"]
    assert evals[8]["eval_rewards/accuracies"] > 0.5
    best = json.loads((stage / "best.json").read_text())
    assert best["selected_by"].startswith("validation loss")
    assert (stage / "best" / "config.json").exists()
