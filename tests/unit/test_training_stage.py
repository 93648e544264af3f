"""A real (tiny) training stage on the micro model: outputs, schedule, top-k selection, resume, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

REPO = Path(__file__).resolve().parents[2]


def _sft_rows(n: int, offset: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"zq {i + offset}?"},
                {"role": "assistant", "content": f"{(i + offset) % 7}"},
            ]
        }
        for i in range(n)
    ]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _recipe(tmp_path: Path, model_dir: Path, *, mode: str = "full", steps: int = 8, **hp) -> Path:
    train = _jsonl(tmp_path / "train.jsonl", _sft_rows(64))
    validation = _jsonl(tmp_path / "val.jsonl", _sft_rows(8, offset=1000))
    hyper = {
        "max_steps": steps,
        "global_batch_size": 8,
        "micro_batch_size": 4,
        "val_check_interval": 2,
        "lr": 3e-3,
        "save_top_k": 2,
        **hp,
    }
    recipe = {
        "name": "micro",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        # the micro model is not a billion-parameter model: its LR is far from the playbook's 1e-5
        "acknowledge": {"lr-deviates-while-mixing": "micro test model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": mode,
                "data": {"train": train, "validation": validation},
                "data_mixing": {
                    "customer_percent": 50,
                    "general": {"reasoning-instruction-following": 50, "math": 50},
                },
                "hyperparameters": hyper,
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_stage_writes_outputs_follows_schedule_and_keeps_top_k(tmp_path, micro_model_dir, mode) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, mode=mode)
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    run = tmp_path / "runs" / "micro"
    stage = run / "sft"
    for name in ("recipe.resolved.yaml", "plan.json", "manifest.json"):
        assert (run / name).exists()
    result = json.loads((stage / "result.json").read_text())
    assert result["steps"] == 8 and result["planned_steps"] == 8
    from tunesmith.recipe.plan import add_parameter_counts, plan

    planned = plan(recipe)
    add_parameter_counts(planned)
    assert planned.stages[0].numbers["trainable_parameters"] == result["trainable_parameters"]
    if mode == "lora":
        assert result["trainable_parameters"] < result["total_parameters"]
        assert (stage / "best" / "adapter" / "adapter_config.json").exists()
    else:
        assert result["trainable_parameters"] == result["total_parameters"]
    # the realized mix: 64 examples (8 steps x 8), half customer, a quarter per general category
    mix = json.loads((stage / "data" / "mix.json").read_text())
    assert len(_rows(stage / "data" / "train.jsonl")) == 64
    assert mix["sources"]["customer"]["examples"] == 32
    # metrics: one row per step with loss, grad norm, lr, tokens/s; the logged LR follows the schedule
    metrics = _rows(stage / "metrics.jsonl")
    steps = [r for r in metrics if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert all(r["grad_norm"] is not None and r["tokens_per_second"] > 0 for r in steps)
    schedule = {r["step"]: r["lr"] for r in _rows(stage / "schedule.jsonl")}
    for row in steps:
        assert row["lr"] == pytest.approx(schedule[row["step"] - 1], rel=1e-6, abs=1e-12)
    # validation every 2 steps and at the end; top-2 kept (+ latest); SFT's best = the highest validation
    # token accuracy (on a tie the lower validation loss, then the later step)
    losses = {r["step"]: r["eval_loss"] for r in metrics if "eval_loss" in r}
    assert sorted(losses) == [0, 2, 4, 6, 8]  # 0: the starting point, for comparison
    assert result["initial_eval_loss"] == pytest.approx(losses[0])
    accuracy = {r["step"]: r["eval_mean_token_accuracy"] for r in metrics if "eval_loss" in r and r["step"]}
    best = json.loads((stage / "best.json").read_text())
    assert best["eval_mean_token_accuracy"] == pytest.approx(max(accuracy.values()))
    assert best["selected_by"].startswith("validation token accuracy")
    assert best["eval_loss"] == pytest.approx(losses[best["step"]])
    kept = sorted(p.name for p in (stage / "checkpoints").glob("checkpoint-*"))
    top2 = sorted(accuracy, key=lambda step: (-accuracy[step], losses[step], -step))[:2]
    assert set(kept) == {f"checkpoint-{s}" for s in set(top2) | {8}}
    assert all((stage / "checkpoints" / k / "COMPLETE").exists() for k in kept)
    # the best model loads and is the selected checkpoint
    import torch
    from transformers import AutoModelForCausalLM

    best_model = AutoModelForCausalLM.from_pretrained(stage / "best")
    start_model = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    trained, start = best_model.state_dict(), start_model.state_dict()
    assert trained.keys() == start.keys()  # a plain model of the start's architecture (LoRA merged)
    assert any(not torch.equal(trained[k], v) for k, v in start.items())  # and not the start: it learned
    assert (
        json.loads((stage / "best" / "tunesmith_best.json").read_text())["checkpoint"] == best["checkpoint"]
    )


def _run_cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path, micro_model_dir) -> None:
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    recipe = _recipe(reference_dir, micro_model_dir, steps=12)
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    reference = json.loads((reference_dir / "runs" / "micro" / "sft" / "result.json").read_text())

    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    recipe = _recipe(crash_dir, micro_model_dir, steps=12)
    stage = crash_dir / "runs" / "micro" / "sft"
    process = _run_cli(["train", str(recipe), "--quiet", "--no-eval"])
    _wait_for(stage / "checkpoints" / "checkpoint-4" / "COMPLETE", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (stage / "result.json").exists()
    # a half-written checkpoint (no COMPLETE marker) must never be picked
    fake = stage / "checkpoints" / "checkpoint-10"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "model.safetensors").write_bytes(b"truncated")
    assert main(["train", "--resume", str(crash_dir / "runs" / "micro"), "--quiet", "--no-eval"]) == 0
    resumed = json.loads((stage / "result.json").read_text())
    assert resumed["steps"] == 12
    assert resumed["final_eval_loss"] == pytest.approx(reference["final_eval_loss"], abs=1e-4)
    assert resumed["final_train_loss"] == pytest.approx(reference["final_train_loss"], abs=1e-4)
    steps = [r["step"] for r in _rows(stage / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 13)), "metrics describe one consistent run after resume"


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, micro_model_dir) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, steps=400, val_check_interval=200)
    stage = tmp_path / "runs" / "micro" / "sft"
    process = _run_cli(["train", str(recipe), "--quiet", "--no-eval"])
    _wait_for(stage / "metrics.jsonl", process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    assert "tunesmith train --resume" in output
    saved = [p for p in (stage / "checkpoints").glob("checkpoint-*") if (p / "COMPLETE").exists()]
    assert saved and not (stage / "result.json").exists()


def test_train_refuses_a_recipe_with_lint_errors_unless_forced(tmp_path, micro_model_dir, capsys) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, steps=2)
    data = yaml.safe_load(recipe.read_text())
    del data["acknowledge"]
    recipe.write_text(yaml.safe_dump(data))
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "ERROR lr-deviates-while-mixing" in err and "pass --force" in err.splitlines()[-1]
    assert not (tmp_path / "runs" / "micro" / "sft").exists()
    assert main(["train", str(recipe), "--quiet", "--force", "--no-eval"]) == 0
    assert (tmp_path / "runs" / "micro" / "sft" / "result.json").exists()
