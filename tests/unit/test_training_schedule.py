"""The LR schedule matches hand-computed values at every phase boundary."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.training.schedule import Schedule, lr_multiplier, make_scheduler


def test_phase_boundaries_cosine() -> None:
    s = Schedule(lr=1e-3, min_lr=1e-4, warmup_steps=15, constant_steps=25, total_steps=100, decay="cosine")
    assert s.lr_at(0) == 0.0
    assert s.lr_at(5) == pytest.approx(1e-3 * 5 / 15)
    assert s.lr_at(15) == pytest.approx(1e-3)  # end of warmup: the peak
    assert s.lr_at(39) == pytest.approx(1e-3)  # last constant step
    assert s.lr_at(40) == pytest.approx(1e-3)  # decay starts at the peak
    # middle of the 60 decay steps: cos(pi/2) = 0 -> halfway between peak and floor
    assert s.lr_at(70) == pytest.approx(1e-4 + (1e-3 - 1e-4) * 0.5)
    assert s.lr_at(55) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 15 / 60)))
    assert s.lr_at(100) == pytest.approx(1e-4)  # the floor at the end


def test_phase_boundaries_linear_no_constant() -> None:
    s = Schedule(lr=1e-5, min_lr=1e-6, warmup_steps=60, constant_steps=0, total_steps=400, decay="linear")
    assert s.lr_at(30) == pytest.approx(5e-6)
    assert s.lr_at(60) == pytest.approx(1e-5)
    assert s.lr_at(230) == pytest.approx(1e-6 + 9e-6 * 0.5)
    assert s.lr_at(400) == pytest.approx(1e-6)


def test_no_warmup_and_all_constant() -> None:
    s = Schedule(lr=2e-4, min_lr=2e-5, warmup_steps=0, constant_steps=10, total_steps=10)
    assert [s.lr_at(i) for i in range(10)] == [pytest.approx(2e-4)] * 10
    assert s.lr_at(10) == pytest.approx(2e-5)


def test_torch_scheduler_follows_the_schedule() -> None:
    s = Schedule(lr=1e-3, min_lr=1e-4, warmup_steps=3, constant_steps=2, total_steps=10)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=s.lr)
    scheduler = make_scheduler(optimizer, s)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [pytest.approx(s.lr_at(i)) for i in range(10)]
    # resuming from the state dict continues where it left off
    state = scheduler.state_dict()
    optimizer2 = torch.optim.SGD([param], lr=s.lr)
    scheduler2 = make_scheduler(optimizer2, s)
    scheduler2.load_state_dict(state)
    assert scheduler2.get_last_lr()[0] == pytest.approx(s.lr_at(10))


def test_invalid_phases_are_rejected() -> None:
    with pytest.raises(AssertionError):
        Schedule(lr=1e-3, min_lr=1e-4, warmup_steps=8, constant_steps=5, total_steps=10)


@pytest.mark.parametrize(
    ("warmup", "constant", "total", "min_ratio", "decay"),
    [
        (15, 25, 100, 0.1, "cosine"),
        (60, 0, 400, 0.1, "linear"),
        (0, 10, 40, 0.1, "cosine"),
        (8, 4, 30, 0.0, "cosine"),
        (5, 0, 20, 0.0, "linear"),
        (3, 7, 10, 0.1, "cosine"),
    ],
)
def test_transformers_wsd_schedule_differs_only_in_the_warmup_with_a_floor(
    warmup, constant, total, min_ratio, decay
) -> None:
    """Why schedule.py keeps its own math: transformers' `get_wsd_schedule` has the same stable and decay
    phases (the very same LR at every step there), but warms up from `min_lr_ratio` x lr instead of 0."""
    from transformers.optimization import get_wsd_schedule

    s = Schedule(
        lr=1e-3,
        min_lr=1e-3 * min_ratio,
        warmup_steps=warmup,
        constant_steps=constant,
        total_steps=total,
        decay=decay,
    )
    param = torch.nn.Parameter(torch.zeros(1))
    theirs = get_wsd_schedule(
        torch.optim.SGD([param], lr=s.lr),
        num_warmup_steps=warmup,
        num_decay_steps=s.decay_steps,
        num_stable_steps=constant,
        decay_type=decay,
        min_lr_ratio=min_ratio,
    ).lr_lambdas[0]
    ours = [lr_multiplier(step, schedule=s) for step in range(total + 1)]
    same = [step for step in range(total + 1) if theirs(step) == ours[step]]
    if min_ratio == 0 or warmup == 0:
        assert same == list(range(total + 1))  # identical at every step
    else:
        assert same == list(range(warmup, total + 1))  # identical from the end of the warmup on
        assert ours[0] == 0.0 and theirs(0) == pytest.approx(min_ratio)
