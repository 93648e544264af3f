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
    attention_cost,
    decide_packing,
    expected_padding_share,
    first_fit_rows,
    length_grouped_steps,
    length_sorted_steps,
    row_capacity,
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
    checkpointing: bool | str = "auto",
    mode: str = "full",
) -> Path:
    folder = tmp_path / f"{technique}-{packing}-{micro_batch_size}-{grouping}-{checkpointing}-{mode}"
    folder.mkdir()
    recipe = {
        "name": "packing",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(folder / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model"},
        "stages": [
            {
                "technique": technique,
                "mode": mode,
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
                    "gradient_checkpointing": checkpointing,
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


@pytest.mark.parametrize(("packing", "mode"), [(False, "full"), (True, "full"), (True, "lora")])
def test_chunked_micro_batches_match_gradient_checkpointing(
    tmp_path: Path, micro_model_dir: Path, packing: bool, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without checkpointing, micro-batches run as chunks of rows: the same losses, gradient norms and
    tokens as one pass with checkpointing. A tiny chunk budget makes every row a chunk of its own."""
    from tunesmith.training import checkpointing, cpt

    calls: list[int] = []
    split = checkpointing.split_rows

    def counting(inputs: dict, per_chunk: int) -> list[dict]:
        chunks = split(inputs, per_chunk)
        calls.append(len(chunks))
        return chunks

    recomputed = _metrics(
        _train(tmp_path, micro_model_dir, "sft", packing=packing, checkpointing=True, mode=mode)
    )
    monkeypatch.setattr(checkpointing, "CHUNK_BYTES", 1)
    monkeypatch.setattr(cpt, "split_rows", counting)
    chunked_stage = _train(tmp_path, micro_model_dir, "sft", packing=packing, checkpointing=False, mode=mode)
    assert calls and min(calls) > 1  # every micro-batch ran in several passes
    result = json.loads((chunked_stage / "result.json").read_text())["gradient_checkpointing"]
    assert result["on"] is False and "hyperparameters.gradient_checkpointing" in result["reason"]
    steps_recomputed = [r for r in recomputed if "loss" in r]
    steps_chunked = [r for r in _metrics(chunked_stage) if "loss" in r]
    assert [r["step"] for r in steps_chunked] == [1, 2, 3]
    for a, b in zip(steps_recomputed, steps_chunked, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
        assert b["tokens"] == a["tokens"]


def test_checkpointing_rule_and_chunk_sizes() -> None:
    from transformers import LlamaConfig

    from tunesmith.training.checkpointing import activation_bytes_per_token, decide, rows_per_chunk

    assert not decide("auto", cuda=False, processes=1).checkpointing
    assert decide("auto", cuda=True, processes=1).checkpointing
    assert decide("auto", cuda=False, processes=2).checkpointing
    assert decide(True, cuda=False, processes=1).checkpointing
    assert not decide(False, cuda=True, processes=4).checkpointing
    assert "gradient checkpointing off" in decide("auto", cuda=False, processes=1).describe()
    assert "chunks" in decide("auto", cuda=False, processes=1).reason
    # RFT's trainer does not split micro-batches: the reason must not claim it does
    for setting in ("auto", False):
        reason = decide(setting, cuda=False, processes=1, chunked=False).reason
        assert "chunks" not in reason and "kept whole" in reason
    # the 30M stand-in's shape: a packed micro-batch of 4 rows of 500 runs a row or two at a time
    stand_in = activation_bytes_per_token(
        LlamaConfig(hidden_size=512, num_hidden_layers=8, intermediate_size=1376, vocab_size=1821)
    )
    assert stand_in is not None and 1 <= rows_per_chunk(4, 500, stand_in) < 4
    # the tiny family's shape: 20 rows of 256 in a few passes, not one per row
    tiny = activation_bytes_per_token(
        LlamaConfig(hidden_size=128, num_hidden_layers=4, intermediate_size=512)
    )
    assert tiny is not None and 3 <= rows_per_chunk(20, 256, tiny) < 20
    assert rows_per_chunk(20, 256, None) == 20  # unknown sizes: one pass
    assert activation_bytes_per_token(object()) is None


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


def test_row_capacity_trades_padding_against_attention() -> None:
    # rows of the longest example's length waste a third of their slots here
    lengths = [40] + [25] * 15  # rows of 40 hold one 25 each: 16 rows, 640 slots for 415 tokens
    assert row_capacity(lengths, None, 0.001) == 40  # no room above the longest example
    assert row_capacity(lengths, 512, None) == 40  # unknown model: rows as long as the longest example
    cheap = row_capacity(lengths, 512, 0.001)
    assert 40 < cheap <= 512
    slots = len(first_fit_rows(lengths, cheap)) * cheap
    assert slots < len(first_fit_rows(lengths, 40)) * 40  # fewer padded slots than rows of 40
    # free attention: one row holds everything; attention that costs a lot per context token keeps rows
    # short (here rows of 50: two 25s each)
    assert row_capacity(lengths, 512, 0.0) == sum(lengths)
    assert row_capacity(lengths, 512, 10.0) == cheap == 50
    # never longer than max_length or than every example together
    assert row_capacity(lengths, 64, 0.0) <= 64
    assert row_capacity([5, 5, 5], 512, 0.0) <= 15


def test_collator_rows_up_to_max_length_keep_every_example_whole() -> None:
    rng = random.Random(3)
    for _ in range(20):
        examples = [{"input_ids": [rng.randint(1, 50) for _ in range(rng.randint(1, 30))]} for _ in range(12)]
        batch = InBatchPacking(pad_token_id=0, max_length=64, attention_cost=0.002)(examples)
        width = batch["input_ids"].shape[1]
        assert max(len(e["input_ids"]) for e in examples) <= width <= 64
        positions = batch["position_ids"].tolist()
        tokens = batch["input_ids"].tolist()
        found = []  # each example back from its row: a run of positions 0, 1, 2, ...
        for row, pos in zip(tokens, positions, strict=True):
            start = 0
            for i in range(1, len(pos) + 1):
                if i == len(pos) or pos[i] == 0:
                    found.append(row[start:i])
                    start = i
        for example in examples:
            assert example["input_ids"] in found
        assert int(batch[TOKENS_KEY]) == sum(len(e["input_ids"]) for e in examples)


def test_attention_cost_from_the_model_config(micro_model) -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=512, num_hidden_layers=8, intermediate_size=1376, vocab_size=1821)
    cost = attention_cost(config)
    # a row of 512 tokens spends about a sixth of its compute on attention at width 512
    assert 0.1 < 512 * cost < 0.3
    wider = attention_cost(LlamaConfig(hidden_size=4096, num_hidden_layers=8, intermediate_size=11008))
    assert wider < cost / 4  # attention's share falls with the width
    assert attention_cost(object()) is None
    assert attention_cost(micro_model.model.config) is not None
