"""One `observe` path: rows fed live and the same rows replayed after a resume leave every detector in the
same state, for loss-watching (CPT/SFT) and reward-watching (RFT) stages alike."""

from __future__ import annotations

import math

import pytest

from tunesmith.monitoring import Monitor


def _rft_rows(n: int) -> list[dict]:
    return [
        {"step": s, "loss": 1e-9 * (-1) ** s, "grad_norm": 0.5 + 0.01 * (s % 3), "reward": 0.4, "kl": 0.001}
        for s in range(1, n + 1)
    ]


def _sft_rows(n: int) -> list[dict]:
    rows = [{"step": s, "loss": 2.0 - 0.01 * s, "grad_norm": 1.0 + 0.01 * (s % 3)} for s in range(1, n + 1)]
    return rows + [{"step": s, "eval_loss": 2.0 - 0.01 * s} for s in range(5, n + 1, 5)]


def _detector_state(monitor: Monitor) -> dict:
    return {
        name: {k: (list(v) if hasattr(v, "maxlen") else v) for k, v in vars(detector).items()}
        for name, detector in vars(monitor).items()
        if hasattr(detector, "update")
    }


@pytest.mark.parametrize(("watch", "rows"), [("reward", _rft_rows(30)), ("loss", _sft_rows(30))])
def test_replayed_rows_leave_the_detectors_as_the_live_rows_did(watch, rows) -> None:
    live = Monitor(watch=watch)
    for row in sorted(rows, key=lambda r: r["step"]):
        live.observe(row["step"], row)
    resumed = Monitor(watch=watch)
    resumed.replay(rows)
    assert _detector_state(resumed) == _detector_state(live)
    assert resumed.events == []  # replaying is silent


def test_after_a_resume_an_rft_gradient_explosion_and_a_nan_are_still_caught() -> None:
    """The RFT gradient-norm detector needs a history to compare with: a resumed stage has it from the
    replayed rows, so the first exploding step after the resume is an event, as it would have been live."""
    resumed = Monitor(watch="reward")
    resumed.replay(_rft_rows(30))
    spike = {"loss": 0.0, "grad_norm": 500.0, "reward": 0.4, "kl": 0.001}
    assert [e.detector for e in resumed.observe(31, spike)] == ["grad_norm_explosion"]
    nan = {"loss": 0.0, "grad_norm": math.nan, "reward": 0.4, "kl": 0.001}
    assert [e.detector for e in resumed.observe(32, nan)] == ["non_finite"]


def test_rft_rows_feed_the_reward_streams_not_the_loss_detectors() -> None:
    monitor = Monitor(watch="reward")
    monitor.replay(_rft_rows(10))
    assert len(monitor.reward_collapse._recent) == 10 and len(monitor.grad._history) == 10
    assert len(monitor.loss_spike._history) == 0  # GRPO's surrogate loss is not a loss curve
