"""Best-checkpoint selection: the stage's metric (CPT validation loss, SFT validation token accuracy, RFT
validation reward), best among checkpoints that kept general skill (the probe results the monitor shares
in memory)."""

from __future__ import annotations

from pathlib import Path

from tunesmith.training.callbacks import CheckpointKeeper
from tunesmith.training.cpt import CPT
from tunesmith.training.rft import RFT
from tunesmith.training.sft import SFT


def _keeper(
    tmp_path: Path, probes: dict[int, float], losses: dict[int, float], drop: float | None
) -> CheckpointKeeper:
    keeper = CheckpointKeeper(
        tmp_path, tmp_path / "checkpoints", save_top_k=2, max_general_drop=drop, general_probe=probes
    )
    keeper.index = {
        f"checkpoint-{s}": {"step": s, "eval_loss": loss, "general_probe": probes.get(s)}
        for s, loss in losses.items()
    }
    return keeper


def test_a_checkpoint_in_a_general_dip_is_not_picked(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path, {0: 0.95, 2: 0.70, 4: 0.90, 6: 0.93}, {2: 0.30, 4: 0.40, 6: 0.45}, drop=0.10)
    best = keeper.best()
    assert best["checkpoint"] == "checkpoint-4" and best["general_probe"] == 0.90
    assert "within 10 points" in best["selected_by"]
    assert [name for *_, name in keeper._ranked()] == ["checkpoint-4", "checkpoint-6", "checkpoint-2"]


def test_without_a_limit_or_probe_the_lowest_loss_wins(tmp_path: Path) -> None:
    assert (
        _keeper(tmp_path, {0: 0.95, 2: 0.70}, {2: 0.30, 4: 0.40}, drop=None).best()["checkpoint"]
        == "checkpoint-2"
    )
    keeper = _keeper(tmp_path, {}, {2: 0.30, 4: 0.40}, drop=0.10)
    assert keeper.best()["checkpoint"] == "checkpoint-2" and keeper.best()["selected_by"] == "validation loss"


def test_when_every_checkpoint_forgot_the_lowest_loss_wins_and_says_so(tmp_path: Path) -> None:
    best = _keeper(tmp_path, {0: 0.95, 2: 0.50, 4: 0.60}, {2: 0.30, 4: 0.40}, drop=0.10).best()
    assert best["checkpoint"] == "checkpoint-2" and "every checkpoint forgot" in best["selected_by"]


def test_rft_selection_takes_the_highest_validation_reward_within_the_limit(tmp_path: Path) -> None:
    probes = {0: 0.95, 2: 0.94, 4: 0.70, 6: 0.93}
    keeper = CheckpointKeeper(
        tmp_path, tmp_path / "checkpoints", 2, 0.10, selection=RFT.selection, general_probe=probes
    )
    keeper.index = {
        f"checkpoint-{s}": {"step": s, "eval_reward": r, "general_probe": p}
        for s, r, p in [(2, 0.40, 0.94), (4, 0.80, 0.70), (6, 0.55, 0.93)]
    }
    best = keeper.best()
    # step 4 has the highest reward but forgot 25 points: step 6 wins
    assert best["checkpoint"] == "checkpoint-6" and best["eval_reward"] == 0.55
    assert best["selected_by"].startswith("validation reward among checkpoints within 10 points")
    assert best["eval_loss"] is None


def test_sft_selection_takes_the_highest_token_accuracy_not_the_lowest_loss(tmp_path: Path) -> None:
    """The tiny-family pattern: the validation loss bottoms out mid-run (in the general dip) and rises as
    the model grows over-confident, while token accuracy keeps improving; SFT picks by accuracy."""
    probes = {0: 0.95, 160: 0.86, 360: 0.93, 400: 0.93}
    keeper = CheckpointKeeper(
        tmp_path, tmp_path / "checkpoints", 3, 0.10, selection=SFT.selection, general_probe=probes
    )
    keeper.index = {
        f"checkpoint-{s}": {"step": s, "eval_loss": loss, "eval_mean_token_accuracy": acc, "general_probe": p}
        for s, loss, acc, p in [(160, 0.27, 0.955, 0.86), (360, 0.29, 0.969, 0.93), (400, 0.30, 0.969, 0.93)]
    }
    best = keeper.best()
    assert best["checkpoint"] == "checkpoint-360"  # of the tied best, the lower validation loss
    assert best["eval_mean_token_accuracy"] == 0.969 and best["eval_loss"] == 0.29
    assert best["selected_by"].startswith("validation token accuracy among checkpoints within 10 points")
    assert CPT.selection == CheckpointKeeper(tmp_path, tmp_path, 1).selection  # CPT: the keeper's default


def test_ties_go_to_the_lower_loss_then_the_later_checkpoint(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, tmp_path / "checkpoints", 5, selection=SFT.selection)
    keeper.index = {
        f"checkpoint-{s}": {"step": s, "eval_loss": loss, "eval_mean_token_accuracy": 0.5, "moved": True}
        for s, loss in [(2, 3.0), (4, 2.0), (6, 2.0), (8, None)]
    }
    assert [name for *_, name in keeper._ranked()] == [
        "checkpoint-6",  # tied accuracy and loss with step 4: the later one
        "checkpoint-4",
        "checkpoint-2",
        "checkpoint-8",  # no validation loss: after every measured one
    ]


def test_a_checkpoint_trained_only_at_lr_0_is_never_the_best_while_another_exists(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, tmp_path / "checkpoints", 5, selection=SFT.selection)
    keeper.index = {
        "checkpoint-1": {"step": 1, "eval_loss": 7.0, "eval_mean_token_accuracy": 0.9, "moved": False},
        "checkpoint-2": {"step": 2, "eval_loss": 7.1, "eval_mean_token_accuracy": 0.1, "moved": True},
    }
    best = keeper.best()
    assert best["checkpoint"] == "checkpoint-2" and best["moved"] is True
    del keeper.index["checkpoint-2"]
    alone = keeper.best()
    assert alone["checkpoint"] == "checkpoint-1" and alone["moved"] is False
    assert "no checkpoint moved the weights" in alone["selected_by"]


def test_the_keeper_records_whether_an_update_ran_at_a_positive_lr(tmp_path: Path) -> None:
    import torch
    from transformers import TrainerControl, TrainerState, TrainingArguments

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.0)
    keeper = CheckpointKeeper(tmp_path, tmp_path / "checkpoints", 5)
    args, state, control = (
        TrainingArguments(str(tmp_path), report_to="none"),
        TrainerState(),
        TrainerControl(),
    )
    keeper.on_pre_optimizer_step(args, state, control, optimizer=optimizer)
    assert keeper.moved is False  # the first warmup step runs at LR 0
    optimizer.param_groups[0]["lr"] = 1e-3
    keeper.on_pre_optimizer_step(args, state, control, optimizer=optimizer)
    assert keeper.moved is True


def _sft_on_the_qwen3_stand_in(tmp_path: Path, stand_in: Path, capsys, **hp: float) -> tuple[Path, str]:
    """6 full-rank SFT steps on the bf16 Qwen3 stand-in, validated every step from step 1 (trained at LR 0,
    the first of 2 warmup steps) unless `hp` says otherwise; returns the stage folder and train's stderr."""
    import json

    import yaml

    from tunesmith.cli import main

    rows = [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": f"{i % 7}"}]}
        for i in range(40)
    ]
    for name, part in (("train", rows[:32]), ("val", rows[32:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    recipe = {
        "name": "ties",
        "model": {"path": str(stand_in)},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "val.jsonl")},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "max_steps": 6,
                    "global_batch_size": 8,
                    "val_check_interval": 1,
                    "save_top_k": 6,
                    "warmup_steps": 2,
                    **hp,
                },
            }
        ],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "recipe.yaml"), "--quiet", "--no-eval", "--force"]) == 0
    return tmp_path / "runs" / "ties" / "sft", capsys.readouterr().err


def test_an_sft_run_whose_validation_ties_never_exports_the_start(tmp_path: Path, stand_ins, capsys) -> None:
    """The bf16 Qwen3 stand-in at lr 1e-5 (the billion-class default the issue's 1.4M model got): random
    weights, so token accuracy ties with step 1's (trained at LR 0); best/ is a later checkpoint, differs
    from the start, and keeps the start's bf16."""
    import json

    from safetensors import safe_open

    stage, err = _sft_on_the_qwen3_stand_in(tmp_path, stand_ins["qwen3"], capsys, lr=1e-5)
    index = json.loads((stage / "checkpoints.json").read_text())
    assert index["checkpoint-1"]["moved"] is False and index["checkpoint-2"]["moved"] is True
    accuracy = {v["step"]: v["eval_mean_token_accuracy"] for v in index.values()}
    assert accuracy[1] >= max(accuracy.values()) - 1e-9  # the premise: step 1 ties with (or beats) the best
    result = json.loads((stage / "result.json").read_text())
    assert result["best"]["checkpoint"] != "checkpoint-1" and result["best"]["moved"] is True
    assert result["weights_change"]["tensors_changed"] > 0 and result["weights_change"]["dtype"] == "bfloat16"
    assert "did not move the weights" not in err
    config = json.loads((stage / "best" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    with safe_open(str(stage / "best" / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.bfloat16"}  # noqa: SIM118


def test_a_stage_that_did_not_move_the_weights_says_so(tmp_path: Path, stand_ins, capsys) -> None:
    """One step, and it is the warmup's first (LR 0): the only checkpoint is the start, and train says so."""
    import json

    stage, err = _sft_on_the_qwen3_stand_in(tmp_path, stand_ins["qwen3"], capsys, max_steps=1, warmup_steps=1)
    result = json.loads((stage / "result.json").read_text())
    assert result["best"]["checkpoint"] == "checkpoint-1" and result["best"]["moved"] is False
    assert result["weights_change"]["tensors_changed"] == 0
    assert "sft: the stage did not move the weights: best/ (checkpoint-1) equals its input" in err
    assert "in bfloat16 (every update before it ran at LR 0) — train longer or at a higher LR" in err


def test_weight_change_counts_the_tensors_a_stage_moved(micro_model) -> None:
    import copy

    import torch

    from tunesmith.training.stage import weight_change

    start = micro_model.model
    same = weight_change(start, copy.deepcopy(start))
    assert same["tensors_changed"] == 0 and same["max_abs_change"] == 0.0 and same["tensors"] > 2
    moved = copy.deepcopy(start)
    with torch.no_grad():
        next(moved.parameters()).add_(0.5)
    change = weight_change(start, moved)
    assert change["tensors_changed"] == 1 and change["max_abs_change"] == 0.5
    # a tiny fp32 update that bf16 rounds away leaves a bf16 export equal to its bf16 start
    start16 = copy.deepcopy(start).to(torch.bfloat16)
    nudged = copy.deepcopy(start16).to(torch.float32)  # trained in fp32 from the bf16 start
    with torch.no_grad():
        for parameter in nudged.parameters():
            parameter.mul_(1 + 1e-5)
    assert weight_change(start16, nudged.to(torch.bfloat16))["tensors_changed"] == 0
