"""`tunesmith export` / `eval --blend` / `generate` on a real (micro) LoRA run: the merged export loaded with
plain transformers answers 50 prompts exactly as tunesmith's own generation; the adapter export loaded with
plain PEFT answers as the merged one; blending interpolates; a full-rank stage has no adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.cli import main

PROMPTS = [[{"role": "user", "content": f"zq {i}?"}] for i in range(50)]


def _rows(n: int, offset: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"zq {i + offset}?"},
                {"role": "assistant", "content": f"{i % 7}"},
            ]
        }
        for i in range(n)
    ]


def _train(root: Path, model_dir: Path, mode: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", _rows(64)), ("val", _rows(8, 1000))):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "name": f"micro-{mode}",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(root / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": mode,
                "data": {"train": str(root / "train.jsonl"), "validation": str(root / "val.jsonl")},
                "data_mixing": {"customer_percent": 50, "general": {"reasoning-instruction-following": 100}},
                "hyperparameters": {
                    "max_steps": 4,
                    "global_batch_size": 8,
                    "micro_batch_size": 8,
                    "val_check_interval": 4,
                    "lr": 3e-3,
                    # the micro model is tiny-class (r8, alpha 16): 4 steps need the larger adapter to
                    # answer the prompts differently
                    **({"lora": {"rank": 32, "alpha": 64}} if mode == "lora" else {}),
                },
            }
        ],
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(root / "recipe.yaml"), "--quiet", "--no-eval"]) == 0
    return root / "runs" / f"micro-{mode}"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, micro_model_dir) -> Path:
    return _train(tmp_path_factory.mktemp("lora"), micro_model_dir, "lora")


def _plain_greedy(model, tokenizer, prompts) -> list[str]:
    """Greedy decoding with plain transformers, one prompt at a time (no padding, no tunesmith code)."""
    answers = []
    for messages in prompts:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        output = model.generate(
            **inputs, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id
        )
        answers.append(
            tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        )
    return answers


def test_merged_and_adapter_exports_load_without_tunesmith_and_agree(lora_run, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.models.generate import generate_batch
    from tunesmith.models.loading import load_model, load_tokenizer

    merged_dir, adapter_dir = tmp_path / "merged", tmp_path / "adapter"
    assert main(["export", str(lora_run), "--format", "merged", "--out", str(merged_dir)]) == 0
    assert main(["export", str(lora_run / "sft"), "--format", "adapter", "--out", str(adapter_dir)]) == 0
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "generation_config.json").is_file()
    card = (merged_dir / "README.md").read_text()
    assert "library_name: transformers" in card and "## Data mix (realized" in card
    assert (
        "reasoning-instruction-following" in card and "name: micro-lora" in card and "Not evaluated" in card
    )

    ours = generate_batch(
        load_model(lora_run / "sft" / "best"),
        load_tokenizer(lora_run / "sft" / "best"),
        PROMPTS,
        max_new_tokens=12,
    )
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert merged.dtype == torch.float32  # the micro start checkpoint's dtype
    plain = _plain_greedy(merged, tokenizer, PROMPTS)
    assert plain == ours
    assert len(set(plain)) > 1  # the prompts do discriminate

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    start = json.loads((lora_run / "sft" / "best" / "tunesmith_best.json").read_text())["input"]
    assert config["base_model_name_or_path"] == str(Path(start).resolve())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    with_adapter = PeftModel.from_pretrained(base, str(adapter_dir))
    assert _plain_greedy(with_adapter, tokenizer, PROMPTS) == plain
    assert "library_name: peft" in (adapter_dir / "README.md").read_text()


def test_blend_interpolates_weights_and_eval_blend_evaluates_the_blend(lora_run, tmp_path, capsys) -> None:
    from safetensors.torch import load_file

    from tunesmith.models.loading import load_model
    from tunesmith.serving.blend import blended_model

    best = lora_run / "sft" / "best"
    start = json.loads((best / "tunesmith_best.json").read_text())["input"]
    tuned, base = load_model(best).state_dict(), load_model(start).state_dict()
    half = blended_model(best, start, 0.5).state_dict()
    changed = [k for k in tuned if not torch.equal(tuned[k], base[k])]
    assert changed
    for key in changed:
        torch.testing.assert_close(half[key], (tuned[key] + base[key]) / 2)
    zero = blended_model(best, start, 0.0).state_dict()
    assert all(torch.equal(zero[k], base[k]) for k in base)

    # the blended adapter equals the blended merged model
    assert (
        main(["export", str(lora_run), "--format", "adapter", "--blend", "0.5", "--out", str(tmp_path / "a")])
        == 0
    )
    scaled = load_file(tmp_path / "a" / "adapter_model.safetensors")
    original = load_file(best / "adapter" / "adapter_model.safetensors")
    for name, tensor in scaled.items():
        torch.testing.assert_close(tensor, original[name] * (0.5 if "lora_B" in name else 1.0))
    assert "Blended back into its start" in (tmp_path / "a" / "README.md").read_text()

    capsys.readouterr()
    assert main(["eval", "--model", str(lora_run), "--suites", "general", "--items-per-category", "2",
                 "--blend", "0.5", "--lm-eval", "none", "--format", "json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoints"][1]["label"] == "micro-lora/sft (blend 0.5)"
    assert report["out"] == str(lora_run / "eval" / "blend-0.5")
    assert (lora_run / "eval" / "blend-0.5" / "evaluation.json").is_file()
    assert not (lora_run / "eval" / "evaluation.json").exists()  # the run's own report is untouched

    # once the run is evaluated, the model card carries its table
    assert main(["eval", "--model", str(lora_run), "--suites", "general", "--items-per-category", "2",
                 "--lm-eval", "none", "--format", "json"]) == 0  # fmt: skip
    assert main(["export", str(lora_run), "--out", str(tmp_path / "m")]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "## Evaluation (the stage's best" in card and "-> micro-lora/sft" in card and "verdict:" in card


def test_export_errors_are_one_line(lora_run, tmp_path, capsys, micro_model_dir) -> None:
    (tmp_path / "full").mkdir()
    full_run = _train(tmp_path / "full", micro_model_dir, "full")
    capsys.readouterr()
    for argv, fragment in [
        (["export", str(full_run), "--format", "adapter", "--out", str(tmp_path / "x")], "a full-rank stage has no LoRA adapter"),
        (["export", str(lora_run), "--blend", "1.5", "--out", str(tmp_path / "y")], "must be in [0, 1]"),
        (["export", str(lora_run), "--stage", "rft", "--out", str(tmp_path / "z")], "stage 'rft' has no best/"),
        (["export", str(tmp_path), "--out", str(tmp_path / "w")], "not a run folder"),
        (["export", str(lora_run), "--out", str(tmp_path)], "is not an earlier export"),
    ]:  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err
    assert main(["export", str(full_run), "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_generate_writes_one_completion_per_prompt(lora_run, tmp_path) -> None:
    from tunesmith.models.generate import generate_batch
    from tunesmith.models.loading import load_model, load_tokenizer

    prompts = tmp_path / "prompts.jsonl"
    rows = [{"messages": PROMPTS[0]}, {"prompt": "zq 1?"}, {"query": "zq 2?", "response": "2"}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    argv = [
        "generate",
        str(lora_run / "sft"),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--max-new-tokens",
        "8",
    ]
    assert main(argv) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    best = lora_run / "sft" / "best"
    expected = generate_batch(load_model(best), load_tokenizer(best), PROMPTS[:3], max_new_tokens=8)
    assert [r["completion"] for r in written] == expected
    assert written[2]["response"] == "2"
    prompts.write_text('{"messages": 3}\n')
    assert main(["generate", str(best), "--prompts", str(prompts)]) == 2


def test_chat_loop_keeps_the_conversation(lora_run) -> None:
    import io

    from tunesmith.serving.chat import chat_loop, load_for_chat

    model, tokenizer, label = load_for_chat(str(lora_run))
    assert label == "micro-lora/sft"
    out = io.StringIO()
    answers = chat_loop(model, tokenizer, stdin=io.StringIO("zq 1?\n\n/reset\nzq 2?\n/exit\n"), stdout=out,
                        max_new_tokens=6)  # fmt: skip
    assert answers == 2 and out.getvalue().count("model> ") == 2 and "(conversation reset)" in out.getvalue()


def test_stage_input_finds_a_previous_stage_recorded_relative_to_another_folder(tmp_path) -> None:
    from tunesmith.serving.blend import stage_input

    run = tmp_path / "elsewhere" / "r"
    (run / "cpt" / "best").mkdir(parents=True)
    (run / "sft" / "best").mkdir(parents=True)
    (run / "sft" / "best" / "tunesmith_best.json").write_text(json.dumps({"input": "runs/r/cpt/best"}))
    assert stage_input(run / "sft" / "best") == str(run.resolve() / "cpt" / "best")
    (run / "sft" / "best" / "tunesmith_best.json").write_text(json.dumps({"input": "tiny:post-trained"}))
    assert stage_input(run / "sft" / "best") == "tiny:post-trained"
