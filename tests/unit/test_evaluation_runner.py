"""Evaluation on the micro model: perplexity, the eval CLI's files and JSON, the cache, model references."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.cli import main
from tunesmith.errors import ModelError, UserError
from tunesmith.evaluation import cache
from tunesmith.evaluation.runner import EvalConfig, load_run_recipe, resolve_eval_model, run_start_ref
from tunesmith.evaluation.suites import answer_perplexity, domain_items, perplexity
from tunesmith.recipe.plan import plan


def reward_first_char(completion: str, reference_answer: str) -> float:
    """A module:function reward for the CLI test."""
    return float(completion[:1] == reference_answer[:1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _gen_qa(path: Path, n: int = 6) -> Path:
    rows = [
        {"query": f"Brindle: price of K{i}?", "response": f"{i} brix", "metadata": {"category": "price"}}
        for i in range(n)
    ]
    rows[0]["system"] = "You are Brindle's assistant."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_perplexity_equals_exp_of_the_model_loss_and_ignores_batching(micro_model) -> None:
    model, tokenizer = micro_model.model, micro_model.tokenizer
    texts = ["12 plus 3 equals 15.", "Of 3 1 4, the largest is 4. And more text here."]
    expected_nll, expected_tokens = 0.0, 0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        expected_nll += float(loss) * (ids.shape[1] - 1)
        expected_tokens += ids.shape[1] - 1
    together = perplexity(model, tokenizer, ["", ""], texts, batch_size=2)
    apart = perplexity(model, tokenizer, ["", ""], texts, batch_size=1)
    assert together == pytest.approx(math.exp(expected_nll / expected_tokens), rel=1e-4)
    assert apart == pytest.approx(together, rel=1e-5)


def test_perplexity_of_a_uniform_guess_is_the_vocabulary_size_and_a_trained_model_is_lower(
    micro_model,
) -> None:
    import copy

    from tunesmith.evaluation.runner import render_comparison
    from tunesmith.evaluation.suites import uniform_perplexity

    tokenizer = micro_model.tokenizer
    texts = ["12 plus 3 equals 15.", "Of 3 1 4, the largest is 4.", "Sorted, 9 2 5 is 2 5 9."]
    uniform = copy.deepcopy(micro_model.model)
    with torch.no_grad():  # zero logits everywhere: every next token gets 1 / vocabulary
        uniform.get_output_embeddings().weight.zero_()
    vocabulary = uniform_perplexity(uniform)
    assert vocabulary == len(tokenizer) == uniform.config.vocab_size
    assert perplexity(uniform, tokenizer, [""] * 3, texts) == pytest.approx(vocabulary, abs=1e-3)
    trained = copy.deepcopy(micro_model.model)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-2)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(30):
        optimizer.zero_grad()
        trained(**batch, labels=labels).loss.backward()
        optimizer.step()
    assert perplexity(trained, tokenizer, [""] * 3, texts) < vocabulary / 4
    # where it is shown, the line says what the number is measured against
    line = render_comparison(
        {"before": "a", "after": "b", "verdict": "v", "rows": [],
         "perplexity": {"general_text": {"before": 1233.5, "after": 879.9, "uniform": 104}}}
    )  # fmt: skip
    assert (
        "perplexity general_text: 1233.500 -> 879.900  (a uniform guess scores 104; above it = confidently wrong)"
        in line
    )


def test_answer_perplexity_scores_only_the_answer(micro_model, tmp_path: Path) -> None:
    model, tokenizer = micro_model.model, micro_model.tokenizer
    items = domain_items(_gen_qa(tmp_path / "d.jsonl", 2))
    assert items[0]["messages"][0] == {"role": "system", "content": "You are Brindle's assistant."}
    value = answer_perplexity(model, tokenizer, items)
    conversation = tokenizer.apply_chat_template(
        items[1]["messages"] + [{"role": "assistant", "content": items[1]["reference"]}], tokenize=False
    )
    prompt = tokenizer.apply_chat_template(items[1]["messages"], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(conversation, add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    labels = ids.clone()
    labels[:, :start] = -100
    with torch.no_grad():
        single = math.exp(float(model(input_ids=ids, labels=labels).loss))
    assert answer_perplexity(model, tokenizer, items[1:]) == pytest.approx(single, rel=1e-4)
    assert 1.0 < value < 200.0


def test_eval_cli_writes_report_and_second_run_is_cached(micro_model_dir, tmp_path, home, capsys) -> None:
    domain = _gen_qa(tmp_path / "domain.jsonl")
    out = tmp_path / "out"
    argv = [
        "eval", "--model", str(micro_model_dir), "--baseline", str(micro_model_dir),
        "--domain", str(domain), "--items-per-category", "3", "--out", str(out), "--format", "json",
        "--reward", f"{__name__}:reward_first_char",
    ]  # fmt: skip
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert {p.name for p in out.iterdir()} == {"evaluation.json", "forgetting.csv", "predictions.jsonl"}
    comparison = first["comparisons"][0]
    general_overall = next(
        r for r in comparison["rows"] if r["suite"] == "general" and r["category"] == "overall"
    )
    assert general_overall["items"] == 15 and general_overall["change"] == 0.0
    assert not general_overall["significant"]
    domain_rows = [r for r in comparison["rows"] if r["suite"] == "domain" and r["category"] == "overall"]
    assert [r["metric"] for r in domain_rows] == [
        "reward",
        "exact_match",
        "normalized_match",
        "token_f1",
        "rouge_l",
    ]
    assert "no significant regression" in first["verdict"]
    summary = first["checkpoints"][1]["suites"]
    assert summary["domain"]["perplexity"]["domain_answers"] > 1.0
    assert summary["general"]["perplexity"]["general_text"] > 1.0
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 * (15 + 6) and {"prediction", "reference", "scores"} <= set(predictions[0])
    csv_lines = (out / "forgetting.csv").read_text().splitlines()
    assert csv_lines[0].startswith("before,after,suite,category,metric") and len(csv_lines) == 1 + 6 + 5 * 2

    assert main(argv) == 0  # same checkpoint hash, suite, items: free
    second = json.loads(capsys.readouterr().out)
    assert all(s["cached"] for c in second["checkpoints"] for s in c["suites"].values())
    assert second["comparisons"] == first["comparisons"]


def test_cache_key_follows_content_not_path(micro_model_dir, tmp_path, home) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(micro_model_dir, copy)
    assert cache.folder_hash(copy) == cache.folder_hash(micro_model_dir)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("{", "{\n", 1))
    assert cache.folder_hash(copy) != cache.folder_hash(micro_model_dir)


def test_model_references(micro_model_dir, tmp_path) -> None:
    run = tmp_path / "runs" / "demo"
    shutil.copytree(micro_model_dir, run / "sft" / "best")
    resolved = plan(_micro_recipe(tmp_path, micro_model_dir))
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump(resolved.to_dict(), sort_keys=False))
    for ref in (run, run / "sft", run / "sft" / "best"):
        checkpoint = resolve_eval_model(ref)
        assert checkpoint.load_ref == run / "sft" / "best" and checkpoint.label == "demo/sft"
        assert checkpoint.run_dir == run and checkpoint.stage == "sft"
    stored = load_run_recipe(run)  # the stored recipe, typed: every resolved value as resolve() gave it
    assert stored.stages[0].hyperparameters.lr == resolved.recipe.stages[0].hyperparameters.lr
    assert stored.evaluation.general_items_per_category == 2
    assert run_start_ref(run) == str(micro_model_dir) == run_start_ref(run, stored)
    assert resolve_eval_model(micro_model_dir).run_dir is None
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_eval_model(tmp_path)
    with pytest.raises(ModelError, match="unknown checkpoint stage"):
        resolve_eval_model("tiny:final")


def test_config_errors_are_one_line(tmp_path, capsys) -> None:
    with pytest.raises(UserError, match="needs a gen_qa file"):
        EvalConfig(suites=("domain",))
    with pytest.raises(UserError, match="unknown suite"):
        EvalConfig(suites=("mmlu",))
    assert main(["eval", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such model folder" in err


def _micro_recipe(tmp_path: Path, model_dir: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": str(i % 7)}]}
        for i in range(40)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "name": "micro-eval",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"customer-share-far-from-50": "micro test", "lr-deviates-while-mixing": "micro test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(tmp_path / "train.jsonl")},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {"max_steps": 2, "global_batch_size": 4, "lr": 1e-3},
            }
        ],
        "evaluation": {"suites": ["general"], "general_items_per_category": 2},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_evaluates_start_and_best_unless_no_eval(micro_model_dir, tmp_path, home, capsys) -> None:
    recipe = _micro_recipe(tmp_path, micro_model_dir)
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    run = tmp_path / "runs" / "micro-eval"
    assert (run / "sft" / "best").is_dir() and not (run / "eval").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # finished stage reused; evaluation runs
    printed = capsys.readouterr().out
    report = json.loads((run / "eval" / "evaluation.json").read_text())
    assert [c["label"] for c in report["checkpoints"]] == [f"start ({micro_model_dir})", "micro-eval/sft"]
    assert f"eval: {report['verdict']}" in printed
    overall = next(r for r in report["comparisons"][0]["rows"] if r["category"] == "overall")
    assert overall["items"] == 10
    # `tunesmith eval --model runs/<name>` reads the stored recipe once, typed: the run's items per category,
    # its start as the baseline, hence the very same (cached) results and verdict
    assert main(["eval", "--model", str(run), "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in again["checkpoints"]] == [micro_model_dir.as_posix(), "micro-eval/sft"]
    assert all(s["cached"] for c in again["checkpoints"] for s in c["suites"].values())
    assert again["verdict"] == report["verdict"]


def test_eval_out_without_a_baseline_names_only_the_files_it_wrote(
    micro_model_dir, tmp_path, home, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["eval", "--model", str(micro_model_dir), "--suites", "general", "--items-per-category", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    written = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("written: "))
    assert {p.name for p in out.iterdir()} == {"evaluation.json", "predictions.jsonl"}  # no comparison
    assert written == f"written: {out / 'evaluation.json'}, {out / 'predictions.jsonl'}"
    assert "forgetting.csv" not in written


def test_run_settings_read_the_runs_recipe_and_plan(tmp_path: Path) -> None:
    """The verdict's advice reads the run folder as `train` wrote it: the resolved recipe and the plan."""
    from tunesmith.evaluation.runner import run_settings
    from tunesmith.runs import atomic_write_json, atomic_write_yaml

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "tiny-sft-lora-mixed.yaml"
    resolved = plan(recipe, ["stages[0].hyperparameters.lora.alpha=64", "stages[0].hyperparameters.lr=2e-2"])
    run = tmp_path / "runs" / "r"
    atomic_write_yaml(run / "recipe.resolved.yaml", resolved.to_dict())
    atomic_write_json(run / "plan.json", resolved.to_json())
    settings = run_settings(run, load_run_recipe(run), "sft")
    assert settings is not None and settings.mixing
    assert (settings.mode, settings.customer_percent, settings.lora_rank, settings.lora_alpha) == (
        "lora",
        50,
        8,
        64,
    )
    assert settings.lr == 2e-2 and settings.default_lr == 1e-2  # the tiny LoRA SFT default
    assert settings.epochs == pytest.approx(4.2667) and settings.run == str(run / "sft")
    assert settings.general["instruction-following"] == 20
    assert run_settings(run, load_run_recipe(run), "no-such-stage") is None
    (run / "plan.json").unlink()  # an older run without its plan: no default, no epochs; the rest stands
    bare = run_settings(run, load_run_recipe(run), "sft")
    assert bare is not None and bare.default_lr is None and bare.epochs is None and bare.lr == 2e-2
