"""Every stage, the evaluation, the probe and the export on the real families' stand-ins (CPU, seconds).

The stand-ins (`tunesmith.models.stand_ins`, size "micro") are folders built the way the Hub's are: Qwen3
(`<think>` tags as plain added tokens, a chat template without generation markers) and Llama 3.2 Instruct
(no pad token, three eos ids in the generation config, a template TRL has no training variant of). Each test
drives the CLI in-process (`tunesmith.cli.main`) with a `model: {path: ...}` recipe, as a user with a real
folder would. The weights are noise, so the tests check what runs and what is written, not scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

pytestmark = pytest.mark.e2e

FAMILIES = ["qwen3", "llama3"]
SHORT = {
    "max_steps": 2,
    "global_batch_size": 4,
    "micro_batch_size": 4,
    "max_length": 256,
    "val_check_interval": 2,
}


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _multi_turn_rows(n: int) -> list[dict]:
    """Two-turn and one-turn conversations, half with a system prompt."""
    from tunesmith.models.stand_ins import sample_conversations

    return [{"messages": messages} for messages in sample_conversations(n)]


def _write_recipe(tmp_path: Path, name: str, model_dir: Path, stages: list[dict], **extra) -> Path:
    recipe = {
        "name": name,
        "model": {"path": str(model_dir)},
        "output_dir": str(tmp_path / "runs"),
        "stages": stages,
        "evaluation": {
            "suites": ["general", "domain"],
            "domain": "builtin:brindle/eval",
            "general_items_per_category": 2,
            "reasoning_enabled": False,
        },
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _result(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "result.json").read_text())


@pytest.mark.parametrize("kind", FAMILIES)
def test_cpt_then_multi_turn_sft_then_eval_and_export(stand_ins, tmp_path, capsys, kind) -> None:
    train = _jsonl(tmp_path / "sft.jsonl", _multi_turn_rows(24))
    validation = _jsonl(tmp_path / "sft-val.jsonl", _multi_turn_rows(6))
    stages = [
        {
            "technique": "cpt",
            "mode": "full",
            "data": {"train": "builtin:brindle/cpt", "validation": "builtin:brindle/cpt-validation"},
            "hyperparameters": SHORT,
        },
        {
            "technique": "sft",
            "mode": "lora",
            "data": {"train": train, "validation": validation},
            "hyperparameters": SHORT,
        },
    ]
    path = _write_recipe(tmp_path, f"chain-{kind}", stand_ins[kind], stages)
    assert main(["train", str(path), "--quiet"]) == 0
    run = tmp_path / "runs" / f"chain-{kind}"
    for stage in ("cpt", "sft"):
        result = _result(run / stage)
        assert result["steps"] == 2 and (run / stage / "best" / "config.json").is_file()
    # the multi-turn conversations reach the trainer whole (every turn, not only the last)
    rows = [json.loads(line) for line in (run / "sft" / "data" / "train.jsonl").read_text().splitlines()]
    assert any(sum(m["role"] == "assistant" for m in r["messages"]) == 2 for r in rows)
    # the evaluation ran on the start and on both stages, predictions stored
    evaluation = json.loads((run / "eval" / "evaluation.json").read_text())
    assert len(evaluation["checkpoints"]) == 3
    predictions = (run / "eval" / "predictions.jsonl").read_text().splitlines()
    assert predictions and all("prediction" in json.loads(line) for line in predictions)
    # export: merged weights and the adapter, loadable by transformers with the family's template
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for fmt in ("merged", "adapter"):
        out = tmp_path / f"export-{fmt}"
        assert main(["export", str(run), "--stage", "sft", "--format", fmt, "--out", str(out)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "export-merged")
    start = AutoModelForCausalLM.from_pretrained(stand_ins[kind])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "export-merged")
    original = AutoTokenizer.from_pretrained(stand_ins[kind])
    assert tokenizer.chat_template == original.chat_template
    assert merged.config.architectures == start.config.architectures
    # the trainers' pad = eos fallback (Llama has no pad token) is not shipped: the folder keeps the start's
    assert tokenizer.pad_token == original.pad_token
    assert merged.config.pad_token_id == start.config.pad_token_id
    assert merged.generation_config.pad_token_id == start.generation_config.pad_token_id
    assert (tmp_path / "export-adapter" / "adapter_config.json").is_file()
    capsys.readouterr()


@pytest.mark.parametrize("kind", FAMILIES)
def test_single_turn_sft_with_general_mix_then_eval_command(stand_ins, tmp_path, capsys, kind) -> None:
    stages = [
        {
            "technique": "sft",
            "mode": "lora",
            "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
            "data_mixing": {"customer_percent": 50},
            "hyperparameters": SHORT,
        }
    ]
    path = _write_recipe(tmp_path, f"sft-{kind}", stand_ins[kind], stages)
    assert main(["train", str(path), "--quiet", "--no-eval"]) == 0
    run = tmp_path / "runs" / f"sft-{kind}"
    assert _result(run / "sft")["steps"] == 2
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(run), "--format", "json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] is not None and len(report["checkpoints"]) == 2
    assert (out / "evaluation.json").is_file() and (out / "predictions.jsonl").is_file()


@pytest.mark.parametrize("kind", FAMILIES)
def test_rft_and_the_readiness_probe(stand_ins, tmp_path, capsys, kind) -> None:
    stages = [
        {
            "technique": "rft",
            "mode": "lora",
            "data": {"train": "builtin:brindle/rft", "validation": "builtin:brindle/rft-validation"},
            "rft": {"reward": "builtin:brindle", "number_generation": 2, "max_new_tokens": 8},
            "hyperparameters": {**SHORT, "global_batch_size": 2, "micro_batch_size": 2},
        }
    ]
    path = _write_recipe(tmp_path, f"rft-{kind}", stand_ins[kind], stages)
    # noise weights earn no Brindle reward: the probe says "do SFT first", --force trains anyway
    assert main(["train", str(path), "--quiet", "--no-eval", "--force"]) == 0
    run = tmp_path / "runs" / f"rft-{kind}"
    result = _result(run / "rft")
    assert result["steps"] == 2 and (run / "rft" / "best" / "config.json").is_file()
    assert json.loads((run / "rft" / "probe.json").read_text())["verdict"] == "sft_first"
    capsys.readouterr()
    probe = [
        "probe",
        "--model",
        str(stand_ins[kind]),
        "--data",
        "builtin:brindle/rft",
        "--reward",
        "builtin:brindle",
        "--prompts",
        "4",
        "--generations",
        "2",
        "--max-new-tokens",
        "8",
        "--format",
        "json",
    ]
    assert main(probe) == 1  # not ready
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["samples"] == 8 and report["verdict"] == "sft_first"
