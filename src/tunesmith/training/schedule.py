"""The learning-rate schedule: linear warmup from 0 -> constant at `lr` -> ramp down to `min_lr`.

This is the managed service's `warmup_steps` / `constant_steps` / `min_lr` triplet (NeMo CosineAnnealing;
[nova-recipes]: "the learning rate linearly warms up from 0 to the target value",
then `constant_steps` at the peak, then a ramp down to the `min_lr` floor). The decay shape is cosine or
linear. Pure math here; `make_scheduler` wraps it in a torch `LambdaLR` for the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class Schedule:
    lr: float
    min_lr: float
    warmup_steps: int
    constant_steps: int
    total_steps: int
    decay: str = "cosine"  # "cosine" | "linear"

    def __post_init__(self) -> None:
        assert self.total_steps >= 1 and self.warmup_steps >= 0 and self.constant_steps >= 0
        assert self.warmup_steps + self.constant_steps <= self.total_steps, "phases exceed total_steps"
        assert 0 <= self.min_lr <= self.lr and self.decay in ("cosine", "linear")

    @property
    def decay_steps(self) -> int:
        return self.total_steps - self.warmup_steps - self.constant_steps

    def lr_at(self, step: int) -> float:
        """The learning rate used for optimizer step `step` (0-based: step 0 is the first update)."""
        return self.lr * lr_multiplier(step, schedule=self)

    def boundaries(self) -> dict[str, float]:
        """The LR at each phase boundary (what `plan` shows and the tests check)."""
        end_warm = self.warmup_steps
        end_const = self.warmup_steps + self.constant_steps
        return {
            "start": self.lr_at(0),
            "end_of_warmup": self.lr_at(end_warm),
            "end_of_constant": self.lr_at(end_const),
            "middle_of_decay": self.lr_at(end_const + self.decay_steps // 2),
            "end": self.lr_at(self.total_steps),
        }


def lr_multiplier(step: int, *, schedule: Schedule) -> float:
    """Factor on the peak LR at `step`: linear 0 -> 1 over warmup, 1 while constant, then down to min/peak."""
    s = schedule
    floor = s.min_lr / s.lr if s.lr > 0 else 0.0
    if step < s.warmup_steps:
        return step / s.warmup_steps
    if step < s.warmup_steps + s.constant_steps:
        return 1.0
    if s.decay_steps == 0:
        return 1.0 if step < s.total_steps else floor
    progress = min(1.0, (step - s.warmup_steps - s.constant_steps) / s.decay_steps)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if s.decay == "cosine" else 1.0 - progress
    return floor + (1.0 - floor) * shape


def make_scheduler(optimizer: Optimizer, schedule: Schedule) -> LambdaLR:
    """A torch scheduler following `schedule` (its state_dict resumes with the trainer's checkpoints)."""
    return LambdaLR(optimizer, partial(lr_multiplier, schedule=schedule))
