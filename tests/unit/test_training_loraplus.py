"""LoRA+ (`hyperparameters.lora.plus_lr_ratio`): B matrices in their own optimizer groups at a multiple of
the LR, the schedule applied to both, defaults by size class and technique."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.cli import main
from tunesmith.recipe import defaults as table
from tunesmith.training.loraplus import is_b_matrix, param_groups


def test_b_matrices_are_found_by_name() -> None:
    assert is_b_matrix("base_model.model.layers.0.self_attn.q_proj.lora_B.default.weight")
    assert is_b_matrix("base_model.model.embed_tokens.lora_embedding_B.default")
    assert not is_b_matrix("base_model.model.layers.0.self_attn.q_proj.lora_A.default.weight")
    assert not is_b_matrix("model.layers.0.mlp.lora_Bias.weight")  # a name that merely starts like one


def test_groups_split_b_from_a_with_the_ratio_and_keep_the_decay_split() -> None:
    params = {
        "x.q.lora_A.default.weight": torch.nn.Parameter(torch.zeros(2, 4)),
        "x.q.lora_B.default.weight": torch.nn.Parameter(torch.zeros(4, 2)),
        "x.norm.weight": torch.nn.Parameter(torch.zeros(4)),  # trainable, not decayed
        "x.q.base_layer.weight": torch.nn.Parameter(torch.zeros(4, 4), requires_grad=False),
    }
    decayed = {"x.q.lora_A.default.weight", "x.q.lora_B.default.weight"}
    groups = param_groups(params.items(), 2e-4, 16.0, 0.1, decayed)
    by_lr = {(round(g["lr"], 12), g["weight_decay"]): [p.shape for p in g["params"]] for g in groups}
    assert by_lr == {
        (2e-4, 0.0): [torch.Size([4])],
        (2e-4, 0.1): [torch.Size([2, 4])],
        (3.2e-3, 0.1): [torch.Size([4, 2])],
    }
    assert sum(len(g["params"]) for g in groups) == 3  # the frozen base weight is left out


def test_groups_refuse_a_model_without_b_matrices() -> None:
    params = {"w": torch.nn.Parameter(torch.zeros(2))}
    with pytest.raises(ValueError, match="lora_B"):
        param_groups(params.items(), 1e-3, 4.0, 0.0, set())


@pytest.mark.parametrize(
    ("size_class", "technique", "expected"),
    [("billion", "sft", 64.0), ("billion", "rft", 64.0), ("billion", "cpt", 1.0), ("tiny", "sft", 1.0)],
)
def test_defaults_follow_the_service_recipes_for_billion_models(size_class, technique, expected) -> None:
    context = {"size_class": size_class, "technique": technique, "mode": "lora", "checkpoint": "post-trained"}
    entry = table.lookup("hyperparameters.lora.plus_lr_ratio", context)
    assert entry is not None and entry.value == expected and "[" in entry.source


def _sft_rows(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": f"{i % 7}"}]}
        for i in range(n)
    ]


def test_a_lora_stage_with_plus_lr_ratio_trains_with_two_lr_groups(tmp_path: Path, micro_model_dir) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _sft_rows(32)))
    ratio, lr = 16.0, 1e-3
    recipe = {
        "name": "micro",
        "model": {"path": str(micro_model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {"train": str(train)},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "max_steps": 4,
                    "global_batch_size": 8,
                    "lr": lr,
                    "warmup_steps": 2,
                    "constant_steps": 0,
                    "val_check_interval": 4,
                    "lora": {"plus_lr_ratio": ratio},
                },
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet", "--no-eval"]) == 0
    stage = tmp_path / "runs" / "micro" / "sft"
    saved = torch.load(stage / "checkpoints" / "checkpoint-4" / "optimizer.pt", weights_only=False)
    groups = [g for g in saved["param_groups"] if g["params"]]
    initial = sorted({g["initial_lr"] for g in groups})
    assert initial == [pytest.approx(lr), pytest.approx(lr * ratio)]  # two base LRs, the B one 16x
    a_params = sum(len(g["params"]) for g in groups if g["initial_lr"] == pytest.approx(lr))
    b_params = sum(len(g["params"]) for g in groups if g["initial_lr"] == pytest.approx(lr * ratio))
    assert a_params == b_params > 0  # one A and one B matrix per adapted layer
    # the schedule moved both groups: after the last step both sit at the same fraction of their base LR
    fractions = {round(g["lr"] / g["initial_lr"], 9) for g in groups}
    assert len(fractions) == 1 and 0 < fractions.pop() < 1
    # and the logged LR (group A) follows the planned schedule
    schedule = {
        r["step"]: r["lr"] for r in map(json.loads, (stage / "schedule.jsonl").read_text().splitlines())
    }
    logged = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    for row in (r for r in logged if "loss" in r):
        assert row["lr"] == pytest.approx(schedule[row["step"] - 1], rel=1e-6, abs=1e-12)
