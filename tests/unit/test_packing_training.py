"""Packing changes no result: the same stage trained with packed and with padded micro-batches logs the
same losses, gradient norms, token counts and validation (through `tunesmith train`, the trainer and
collator training uses); the packing rule; the in-batch packing collator."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.cli import main
from tunesmith.data.packing import (
    MIN_PADDING_SHARE,
    TOKENS_KEY,
    InBatchPacking,
    decide_packing,
    expected_padding_share,
    first_fit_rows,
    length_grouped_steps,
    length_sorted_steps,
)


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(["zq", "brindle", "part", "bolt", "flange", "9"]) for _ in range(count))


def _rows(technique: str, n: int, seed: int) -> list[dict]:
    """Short and long examples mixed (1-40 words): the length spread that makes packing pay."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        long = rng.random() < 0.25
        if technique == "cpt":
            rows.append({"text": _words(rng, rng.randint(20, 40) if long else rng.randint(1, 5))})
        else:
            question = _words(rng, rng.randint(10, 30) if long else rng.randint(1, 3))
            answer = _words(rng, rng.randint(5, 15) if long else 1)
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ]
                }
            )
    return rows


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _train(
    tmp_path: Path,
    model_dir: Path,
    technique: str,
    packing: bool,
    micro_batch_size: int = 8,
    grouping: bool = False,  # off: these tests compare the same steps packed and unpacked
) -> Path:
    folder = tmp_path / f"{technique}-{packing}-{micro_batch_size}-{grouping}"
    folder.mkdir()
    recipe = {
        "name": "packing",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(folder / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model"},
        "stages": [
            {
                "technique": technique,
                "mode": "full",
                "data": {
                    "train": _jsonl(folder / "train.jsonl", _rows(technique, 48, seed=1)),
                    "validation": _jsonl(folder / "val.jsonl", _rows(technique, 16, seed=2)),
                },
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "max_steps": 3,
                    "global_batch_size": 16,
                    # 2 micro-batches per step: accumulation and length grouping are covered too
                    "micro_batch_size": micro_batch_size,
                    "val_check_interval": 3,
                    "lr": 1e-3,
                    "max_length": 96,
                    "packing": packing,
                    "length_grouping": grouping,
                },
            }
        ],
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet", "--no-eval", "--force"]) == 0
    return folder / "runs" / "packing" / technique


def _metrics(stage: Path) -> list[dict]:
    return [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("technique", ["sft", "cpt"])
def test_packed_training_matches_padded(tmp_path: Path, micro_model_dir: Path, technique: str) -> None:
    padded = _train(tmp_path, micro_model_dir, technique, packing=False)
    packed = _train(tmp_path, micro_model_dir, technique, packing=True)
    assert json.loads((packed / "result.json").read_text())["packing"]["on"] is True
    assert json.loads((padded / "result.json").read_text())["packing"]["on"] is False
    rows_padded, rows_packed = _metrics(padded), _metrics(packed)
    steps_padded = [r for r in rows_padded if "loss" in r]
    steps_packed = [r for r in rows_packed if "loss" in r]
    assert [r["step"] for r in steps_packed] == [r["step"] for r in steps_padded] == [1, 2, 3]
    for a, b in zip(steps_padded, steps_packed, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)  # step 1: the fixed first batch
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)  # later steps: same updates
        assert b["tokens"] == a["tokens"]  # non-padding tokens seen: the same examples
    evals_padded = [r for r in rows_padded if "eval_loss" in r]
    evals_packed = [r for r in rows_packed if "eval_loss" in r]
    assert [r["step"] for r in evals_packed] == [r["step"] for r in evals_padded]
    for a, b in zip(evals_padded, evals_packed, strict=True):
        assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-4)
        if "eval_mean_token_accuracy" in a:
            assert b["eval_mean_token_accuracy"] == pytest.approx(a["eval_mean_token_accuracy"], abs=1e-6)


def test_length_grouped_micro_batches_change_no_step(tmp_path: Path, micro_model_dir: Path) -> None:
    """Micro-batches of 8 grouped by length within each step of 16 log what one micro-batch of 16 does."""
    grouped = _metrics(_train(tmp_path, micro_model_dir, "sft", packing=False, micro_batch_size=8))
    whole = _metrics(_train(tmp_path, micro_model_dir, "sft", packing=False, micro_batch_size=16))
    for a, b in zip([r for r in whole if "loss" in r], [r for r in grouped if "loss" in r], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
        assert b["tokens"] == a["tokens"]


def test_length_grouped_steps_regroup_each_window_into_steps_of_similar_lengths() -> None:
    import random

    rng = random.Random(0)
    lengths = [rng.choice([rng.randint(20, 60), rng.randint(150, 250)]) for _ in range(100)]
    order = length_grouped_steps(lengths, 8, window_steps=4, seed=1)
    assert sorted(order) == list(range(100))  # every example once
    for start in range(0, 96, 32):  # examples stay in their window of 4 steps (32 examples)
        assert set(order[start : start + 32]) == set(range(start, start + 32))
    assert sorted(order[96:]) == [96, 97, 98, 99]  # the short last step, last
    steps = [order[i : i + 8] for i in range(0, 96, 8)]

    def padded(steps: list[list[int]]) -> int:
        return sum(len(step) * max(lengths[i] for i in step) for step in steps)

    assert padded(steps) < 0.8 * padded([list(range(i, i + 8)) for i in range(0, 96, 8)])
    assert all(lengths[s[0]] == max(lengths[i] for i in s) for s in steps)  # each step longest first
    assert order == length_grouped_steps(lengths, 8, window_steps=4, seed=1)  # seeded
    assert order != length_grouped_steps(lengths, 8, window_steps=4, seed=2)  # step order within windows


def test_length_grouped_training_trains_every_example_once(tmp_path: Path, micro_model_dir: Path) -> None:
    plain = _train(tmp_path, micro_model_dir, "sft", packing=False)
    grouped = _train(tmp_path, micro_model_dir, "sft", packing=False, grouping=True)
    result = json.loads((grouped / "result.json").read_text())["packing"]
    assert result["length_grouped"] is True and "steps grouped by length" in result["reason"]
    assert json.loads((plain / "result.json").read_text())["packing"]["length_grouped"] is False
    steps_plain = [r for r in _metrics(plain) if "loss" in r]
    steps_grouped = [r for r in _metrics(grouped) if "loss" in r]
    assert [r["step"] for r in steps_grouped] == [1, 2, 3]
    assert steps_grouped[-1]["tokens"] == steps_plain[-1]["tokens"]  # the same examples, other steps


def test_length_sorted_steps_keeps_each_steps_examples() -> None:
    lengths = [3, 9, 1, 7, 5, 2, 8]
    order = length_sorted_steps(lengths, 3)
    assert order == [1, 0, 2, 3, 4, 5, 6]  # windows [0,1,2] [3,4,5] [6], each longest first
    assert [sorted(order[i : i + 3]) for i in (0, 3, 6)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_collator_keeps_examples_apart_in_fewer_rows() -> None:
    examples = [
        {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, 7, 8, 9, 10]},
        {"input_ids": [11, 12], "labels": [11, 12]},
        {"input_ids": [13, 14, 15], "labels": [13, 14, 15]},
        {"input_ids": [16], "labels": [16]},
    ]
    batch = InBatchPacking(pad_token_id=0)(examples)
    assert "attention_mask" not in batch
    assert int(batch[TOKENS_KEY]) == 12  # real tokens, whatever the pad id
    assert batch["input_ids"].shape == (2, 6)  # 4 padded rows of 6 -> 2 rows: [6] and [2, 3, 1]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 0, 1, 2, 0]]
    # each example's first label is masked (it would be predicted from the previous example)
    assert batch["labels"].tolist() == [[-100, -100, 7, 8, 9, 10], [-100, 12, -100, 14, 15, -100]]
    # the loss counts what it counts unpacked: labels[..., 1:] of every example
    unpacked = sum(sum(label != -100 for label in e["labels"][1:]) for e in examples)
    assert int((batch["labels"] != -100).sum()) == unpacked


def test_padding_positions_are_isolated_sequences() -> None:
    # the pad id may be a real token (Llama 3 pads with its eos): the count of real tokens is still 5
    batch = InBatchPacking(pad_token_id=0)([{"input_ids": [1, 2, 0]}, {"input_ids": [4]}, {"input_ids": [5]}])
    assert int(batch[TOKENS_KEY]) == 5
    assert batch["input_ids"].tolist() == [[1, 2, 0], [4, 5, 0]]
    assert batch["position_ids"][1].tolist() == [0, 0, 0]
    assert batch["labels"][1].tolist() == [-100, -100, -100]


def test_first_fit_rows_never_overflow_and_place_every_example_once() -> None:
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 50) for _ in range(rng.randint(1, 40))]
        rows = first_fit_rows(lengths, max(lengths))
        assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in row) <= max(lengths) for row in rows)
        assert len(rows) <= len(lengths)


def test_expected_padding_share_closed_form() -> None:
    assert expected_padding_share([10] * 100, 8) == 0.0  # equal lengths: nothing to pad
    # lengths 10 and 100 at random, pairs: E[longest] = 0.25 * 10 + 0.75 * 100 = 77.5, mean 55
    assert expected_padding_share([10, 100] * 50, 2) == pytest.approx(1 - 55 / 77.5)
    rng = random.Random(0)
    lengths = [rng.choice([5, 10, 60]) for _ in range(3000)]
    measured = 1 - sum(lengths) / len(lengths) / (
        sum(max(rng.sample(lengths, 8)) for _ in range(4000)) / 4000
    )
    assert expected_padding_share(lengths, 8) == pytest.approx(measured, abs=0.02)


def test_packing_rule() -> None:
    uniform = [50 + i % 3 for i in range(500)]
    mixed = [20 + (i * 37) % 200 for i in range(500)]
    assert not decide_packing(uniform, 64, None).pack  # ~2% padding: does not pay
    auto = decide_packing(mixed, 64, None)
    assert auto.pack and auto.padding_share >= MIN_PADDING_SHARE and not auto.forced
    assert "packing on" in auto.describe() and ">= 20%" in auto.describe()
    assert not decide_packing(mixed, 1, None).pack  # one example per micro-batch: nothing to pad
    assert decide_packing(uniform, 64, True).pack and decide_packing(uniform, 64, True).forced
    assert not decide_packing(mixed, 64, False).pack
    assert "hyperparameters.packing" in decide_packing(mixed, 64, False).describe()
    # unpacked where packing would pay: steps grouped by length (auto), unless the recipe says no
    assert (
        decide_packing(mixed, 64, False, None).group
        and "grouped by length" in decide_packing(mixed, 64, False, None).describe()
    )
    assert not decide_packing(mixed, 64, False, False).group
    assert not decide_packing(uniform, 64, False, None).group  # little padding: nothing to group
    assert decide_packing(uniform, 64, False, True).group  # asked for
    assert not decide_packing(mixed, 64, None, None).group  # packed: no padding left to group away


def test_packed_logits_match_through_the_model(micro_model) -> None:
    """The block-causal mask transformers builds from the restarting position_ids: each example's logits
    in a packed row equal its logits alone."""
    model = micro_model.model.eval()
    examples = [{"input_ids": [5, 6, 7, 8, 9, 10]}, {"input_ids": [11, 12]}, {"input_ids": [13, 14, 15]}]
    batch = InBatchPacking(pad_token_id=0)(examples)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        alone = model(input_ids=torch.tensor([[13, 14, 15]]), use_cache=False).logits
    torch.testing.assert_close(packed[1, 2:5], alone[0], atol=1e-5, rtol=1e-5)


def test_plan_shows_the_packing_decision(
    tmp_path: Path, micro_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def plan_line(rows: list[dict], packing: object) -> str:
        recipe = {
            "name": "p",
            "model": {"path": str(micro_model_dir), "checkpoint": "post-trained"},
            "stages": [
                {
                    "technique": "sft",
                    "mode": "full",
                    "data": {"train": _jsonl(tmp_path / "train.jsonl", rows)},
                    "data_mixing": {"customer_percent": 100},
                    "hyperparameters": {"max_steps": 2, "global_batch_size": 16, "packing": packing},
                }
            ],
        }
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        capsys.readouterr()
        assert main(["plan", str(path)]) == 0
        return next(
            line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("packing ")
        )

    mixed = _rows("sft", 200, seed=3)
    assert "= on" in plan_line(mixed, "auto") and ">= 20%" in plan_line(mixed, "auto")
    same = [{"messages": [{"role": "user", "content": "zq 1?"}, {"role": "assistant", "content": "4"}]}] * 50
    assert "= off" in plan_line(same, "auto") and "< 20%" in plan_line(same, "auto")
    assert "= on" in plan_line(same, True) and "hyperparameters.packing" in plan_line(same, True)
