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
    assert best["checkpoint"] == "checkpoint-360"  # the earliest of the tied best
    assert best["eval_mean_token_accuracy"] == 0.969 and best["eval_loss"] == 0.29
    assert best["selected_by"].startswith("validation token accuracy among checkpoints within 10 points")
    assert CPT.selection == CheckpointKeeper(tmp_path, tmp_path, 1).selection  # CPT: the keeper's default
