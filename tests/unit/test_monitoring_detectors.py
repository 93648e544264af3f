"""Detectors on synthetic streams (spikes, slow drift, noise, NaN): exactly when each one fires."""

from __future__ import annotations

import math
import random

import pytest

from tunesmith.monitoring import detectors as d


def noisy(n: int, level: float = 2.0, sigma: float = 0.05, seed: int = 0) -> list[float]:
    """A flat loss with multiplicative (log-normal) noise, like per-step loss on mixed batches."""
    rng = random.Random(seed)
    return [level * math.exp(rng.gauss(0, sigma)) for _ in range(n)]


def fire_steps(detector, stream, **kw) -> list[int]:
    """Steps (1-based) at which `detector` reported something."""
    steps = []
    for step, value in enumerate(stream, 1):
        found = detector.update(step, value, **kw)
        found = found if isinstance(found, list) else [found]
        steps += [step for f in found if f is not None]
    return steps


def names_by_step(detector, stream) -> list[tuple[int, str]]:
    out = []
    for step, value in enumerate(stream, 1):
        out += [(step, f.detector) for f in detector.update(step, value)]
    return out


# -- non-finite ---------------------------------------------------------------------------------------------
def test_non_finite_fires_on_the_first_nan_or_inf() -> None:
    det = d.NonFinite()
    assert det.update(1, loss=1.0, grad_norm=2.0) is None
    assert det.update(2, loss=None, grad_norm=None) is None  # not logged is not non-finite
    nan = det.update(3, loss=float("nan"), grad_norm=1.0)
    assert nan is not None and nan.step == 3 and nan.onset_step == 2 and "loss = nan" in nan.message
    inf = det.update(4, loss=1.0, grad_norm=float("inf"))
    assert inf is not None and "grad_norm = inf" in inf.message


# -- loss spike and spike frequency -----------------------------------------------------------------------------
def test_loss_spike_fires_exactly_at_the_spike_and_not_on_noise() -> None:
    stream = noisy(120)
    stream[59] *= 3.0  # step 60
    det = d.LossSpike()
    assert names_by_step(det, stream) == [(60, "loss_spike")]


def test_loss_spike_ignores_noise_over_a_long_run_and_a_falling_warmup() -> None:
    assert fire_steps(d.LossSpike(), noisy(2000, sigma=0.1, seed=1)) == []
    rng = random.Random(2)  # warmup: the loss falls from 5 to ~1 fast, with noise
    warm = [1 + 4 * math.exp(-t / 15) * math.exp(rng.gauss(0, 0.05)) for t in range(300)]
    assert fire_steps(d.LossSpike(), warm) == []


def test_loss_spike_needs_history_and_a_real_ratio() -> None:
    stream = noisy(40)
    stream[9] *= 5  # step 10: window not yet filled (min_history 20)
    assert fire_steps(d.LossSpike(), stream) == []
    flat = [1.0] * 40 + [1.2] + [1.0] * 10  # MAD ~ 0: a 20% bump is not a spike (min_ratio 1.25)
    assert fire_steps(d.LossSpike(), flat) == []
    flat[40] = 1.3
    assert fire_steps(d.LossSpike(), flat) == [41]


def test_spike_frequency_fires_on_the_third_spike_within_the_window() -> None:
    stream = noisy(150)
    for step in (40, 60, 80):
        stream[step - 1] *= 4
    events = names_by_step(d.LossSpike(), stream)
    assert events == [(40, "loss_spike"), (60, "loss_spike"), (80, "loss_spike"), (80, "spike_frequency")]
    sparse = noisy(200)
    for step in (40, 100, 160):  # 60 steps apart: never 3 within 50
        sparse[step - 1] *= 4
    assert [n for _, n in names_by_step(d.LossSpike(), sparse)] == ["loss_spike"] * 3


def test_a_level_shift_is_one_spike_episode_then_frequency() -> None:
    stream = noisy(50) + noisy(30, level=6.0, seed=3)  # from step 51 the loss triples and stays
    events = names_by_step(d.LossSpike(), stream)
    assert events[:2] == [(51, "loss_spike"), (53, "spike_frequency")]
    assert [n for _, n in events].count("loss_spike") == 1


# -- gradient norm ---------------------------------------------------------------------------------------------
def test_grad_norm_explosion_fires_at_10x_its_median_only() -> None:
    stream = noisy(100, level=1.0, sigma=0.1)
    stream[49] = 15.0  # step 50: 15x
    stream[79] = 5.0  # step 80: 5x, below the ratio
    det = d.GradNormExplosion()
    found = [det.update(s, v) for s, v in enumerate(stream, 1)]
    fired = [f for f in found if f is not None]
    assert [f.step for f in fired] == [50]
    assert fired[0].details["ratio"] == pytest.approx(15.0, rel=0.15)


# -- divergence ----------------------------------------------------------------------------------------------------
def test_divergence_fires_after_patience_steps_of_a_slow_drift() -> None:
    # flat at 1.0 until step 50, then +3.5% per step; smoothed (median of 9) = loss 4 steps back.
    stream = [1.0 if t <= 50 else 1.0 + 0.035 * (t - 50) for t in range(1, 120)]
    # smoothed > 1.3 first at step 63 (loss(59) = 1.315); patience 5 -> fires at 67
    det = d.Divergence()
    found = [f for f in (det.update(s, v) for s, v in enumerate(stream, 1)) if f is not None]
    assert [f.step for f in found] == [67]
    assert found[0].onset_step == 9 and found[0].details["best"] == 1.0


def test_divergence_ignores_noise_short_spikes_and_healthy_decay() -> None:
    assert fire_steps(d.Divergence(), noisy(2000, sigma=0.1)) == []
    spiky = noisy(100)
    spiky[40] = spiky[41] = 20.0  # two huge steps: the median filter absorbs them
    assert fire_steps(d.Divergence(), spiky) == []
    rng = random.Random(4)
    decay = [0.2 + 3 * math.exp(-t / 40) * math.exp(rng.gauss(0, 0.1)) for t in range(400)]
    assert fire_steps(d.Divergence(), decay) == []


def test_divergence_counts_nan_as_up() -> None:
    stream = [1.0] * 20 + [float("nan")] * 10
    assert fire_steps(d.Divergence(), stream) == [29]  # median of 9 is inf from step 25; patience 5


# -- overfitting and plateau ----------------------------------------------------------------------------------
def test_overfitting_needs_three_rising_evals_while_train_falls() -> None:
    evals = [2.0, 1.5, 1.2, 1.1, 1.15, 1.2, 1.3]
    trains = [2.0, 1.4, 1.0, 0.8, 0.7, 0.6, 0.5]
    det = d.Overfitting()
    found = [det.update(40 * i, e, t) for i, (e, t) in enumerate(zip(evals, trains, strict=True))]
    fired = [f for f in found if f is not None]
    assert [f.step for f in fired] == [240] and fired[0].onset_step == 120
    rising_train = d.Overfitting()  # both rise: divergence, not overfitting
    assert all(rising_train.update(40 * i, e, e) is None for i, e in enumerate(evals))
    flat = d.Overfitting()  # eval noise of 0.05% on a flat curve does not count as rising
    assert all(flat.update(i, 1.1 * (1 + 0.0005 * (i % 2)), 1.0 - i / 100) is None for i in range(20))


def test_plateau_fires_after_five_evals_without_one_percent() -> None:
    values = [2.0, 1.5, 1.2, 1.19, 1.195, 1.19, 1.188, 1.189, 1.18]
    det = d.Plateau()
    found = [f for f in (det.update(40 * i, v) for i, v in enumerate(values)) if f is not None]
    assert [f.step for f in found] == [280] and found[0].onset_step == 80
    improving = d.Plateau()
    assert all(improving.update(i, 2.0 * 0.98**i) is None for i in range(30))


# -- forgetting ------------------------------------------------------------------------------------------------
def test_forgetting_fires_past_ten_points_below_the_start() -> None:
    det = d.Forgetting()
    accuracies = [0.99, 0.98, 0.95, 0.90, 0.85, 0.80]
    found = [f for f in (det.update(40 * i, a) for i, a in enumerate(accuracies)) if f is not None]
    assert [f.step for f in found] == [160]  # 0.85: 14 points down; 0.90 (9 points) is still fine
    assert found[0].onset_step == 120 and found[0].details["baseline"] == 0.99
    rng = random.Random(5)
    steady = d.Forgetting()
    assert all(steady.update(i, 0.97 + rng.uniform(-0.03, 0.03)) is None for i in range(50))


def test_kl_drift_fires_above_the_limit_and_on_nan() -> None:
    det = d.KLDrift()
    found = [det.update(i, kl) for i, kl in enumerate([0.0, 0.1, 0.3, 0.6, 0.7])]
    assert [f.step for f in found if f] == [3]
    assert d.KLDrift().update(1, float("nan")) is not None


# -- RFT ---------------------------------------------------------------------------------------------------------
def test_reward_collapse_fires_when_the_drop_does_not_recover() -> None:
    rewards = [min(0.8, t * 0.8 / 30) if t < 60 else 0.3 for t in range(1, 120)]
    # rolling mean (10) < 0.7 x 0.8 = 0.56 from step 64; patience 10 -> step 73
    det = d.RewardCollapse()
    found = [f for f in (det.update(s, r) for s, r in enumerate(rewards, 1)) if f is not None]
    assert [f.step for f in found] == [73] and found[0].onset_step == 39
    recovering = [min(0.8, t * 0.8 / 30) if not 60 <= t < 65 else 0.3 for t in range(1, 120)]
    assert fire_steps(d.RewardCollapse(), recovering) == []


def test_reward_stuck_low_and_saturated_fire_when_the_window_fills() -> None:
    assert fire_steps(d.RewardStuckLow(), [0.01] * 30) == [20]
    assert fire_steps(d.RewardStuckLow(), [0.2] * 30) == []
    assert fire_steps(d.RewardSaturated(), [0.99] * 30) == [20]
    assert fire_steps(d.RewardSaturated(), [0.8] * 30) == []
    # a -1..1 reward: 0.9 is 95% of the range
    scaled = d.RewardSaturated(reward_min=-1.0)
    assert fire_steps(scaled, [0.95] * 30) == [20]


def test_kl_spike_fires_on_a_jump_not_on_a_small_start() -> None:
    rng = random.Random(6)
    stream = [0.02 * math.exp(rng.gauss(0, 0.1)) for _ in range(60)]
    stream[29] = 0.5  # step 30
    assert fire_steps(d.KLSpike(), stream) == [30]
    tiny = [0.0] * 15 + [0.005] + [0.0] * 10  # below min_kl: not a spike
    assert fire_steps(d.KLSpike(), tiny) == []


# the KL stream (per step) of the tiny family's healthy RFT run (recipes/tiny-sft-rft.yaml, full rank 3e-4)
HEALTHY_RFT_KL = [
    0.0, 0.0, 0.0, 0.001, 0.002, 0.003, 0.01, 0.008, 0.018, 0.016, 0.018, 0.054, 0.03, 0.042, 0.058, 0.069,
    0.067, 0.048, 0.098, 0.081, 0.084, 0.12, 0.097, 0.085, 0.07, 0.142, 0.12, 0.113, 0.091, 0.108, 0.089,
    0.071, 0.093, 0.088, 0.087, 0.273, 0.086, 0.115, 0.063, 0.113, 0.105, 0.13, 0.064, 0.106, 0.082, 0.094,
    0.133, 0.082, 0.087, 0.14, 0.147, 0.105, 0.093, 0.154, 0.089, 0.069, 0.093, 0.141, 0.079, 0.067, 0.095,
    0.065, 0.149, 0.097, 0.096, 0.104, 0.12, 0.105, 0.05, 0.101, 0.15, 0.068, 0.108, 0.103, 0.089, 0.172,
    0.108, 0.103, 0.114, 0.102,
]  # fmt: skip


def test_kl_spike_is_quiet_on_a_real_healthy_rft_run_and_fires_on_a_real_jump() -> None:
    assert fire_steps(d.KLSpike(), HEALTHY_RFT_KL) == []
    jumped = HEALTHY_RFT_KL[:50] + [10 * k for k in HEALTHY_RFT_KL[50:]]  # e.g. the LR raised x10 at step 51
    assert fire_steps(d.KLSpike(), jumped) == [51]


def test_collapse_fires_on_a_destroyed_model_not_on_a_healthy_dip() -> None:
    from tunesmith.monitoring.detectors import Collapse

    # probe streams (step, accuracy, KL) measured on the tiny family (benchmarks/monitoring.py)
    healthy_worst = [(0, 0.95, 0.0), (20, 0.55, 0.36), (40, 0.375, 0.40), (60, 0.80, 0.16), (80, 0.9, 0.1)]
    detector = Collapse()
    assert [detector.update(s, a, k) for s, a, k in healthy_worst] == [None] * 5
    lr_x30 = [(0, 0.95, 0.0), (20, 0.0, 4.45), (40, 0.0, 3.98)]
    detector = Collapse()
    findings = [detector.update(s, a, k) for s, a, k in lr_x30]
    assert findings[0] is None and findings[2] is None  # fires once per episode
    assert findings[1].step == 20 and findings[1].onset_step == 0 and "collapsed" in findings[1].message
    # KL alone (a model that still answers a few probes right) and a non-finite KL
    detector = Collapse()
    detector.update(0, 0.95, 0.0)
    assert detector.update(20, 0.5, 1.98) is not None
    detector = Collapse()
    detector.update(0, 0.95, 0.0)
    assert detector.update(20, 0.9, float("nan")) is not None


# the mean reward (per step) of the same run: it climbs from ~0.27 to ~0.45 with step-to-step noise
HEALTHY_RFT_REWARD = [
    0.29, 0.24, 0.23, 0.24, 0.33, 0.28, 0.28, 0.3, 0.26, 0.33, 0.4, 0.27, 0.31, 0.33, 0.2, 0.38, 0.38, 0.25,
    0.37, 0.32, 0.25, 0.28, 0.32, 0.41, 0.3, 0.38, 0.38, 0.37, 0.52, 0.44, 0.3, 0.37, 0.45, 0.34, 0.38, 0.49,
    0.33, 0.32, 0.4, 0.45, 0.42, 0.4, 0.52, 0.4, 0.51, 0.48, 0.49, 0.38, 0.42, 0.51, 0.44, 0.49, 0.43, 0.52,
    0.5, 0.43, 0.54, 0.44, 0.43, 0.5, 0.46, 0.38, 0.33, 0.54, 0.56, 0.33, 0.42, 0.44, 0.56, 0.45, 0.41, 0.47,
    0.55, 0.38, 0.42, 0.44, 0.42, 0.4, 0.64, 0.37,
]  # fmt: skip


def test_reward_detectors_are_quiet_on_the_real_healthy_rft_run() -> None:
    for detector in (d.RewardCollapse(), d.RewardStuckLow(), d.RewardSaturated()):
        assert fire_steps(detector, HEALTHY_RFT_REWARD) == [], detector.name
    collapsed = HEALTHY_RFT_REWARD[:50] + [0.05] * 30  # the reward drops and does not recover
    assert fire_steps(d.RewardCollapse(), collapsed) != []
