"""The learning-rate schedule: linear warmup from 0 -> constant at `lr` -> ramp down to `min_lr`.

This is the managed service's `warmup_steps` / `constant_steps` / `min_lr` triplet (NeMo CosineAnnealing;
[nova-recipes]: "the learning rate linearly warms up from 0 to the target value",
then `constant_steps` at the peak, then a ramp down to the `min_lr` floor). The decay shape is cosine or
linear. `Schedule`/`lr_multiplier` are the pure math; `LRFactor` scales it after rollbacks, and
`PlaybookSchedule` (a trainer mixin) and `ApplyLRFactor` (a callback) put it into the trainer.

Kept instead of transformers' `get_wsd_schedule`: that one warms up from `min_lr_ratio` x lr, not from 0
as the service's schedule does, so with a floor (`min_lr` defaults to lr / 10) every warmup step's LR
differs; past the warmup (and everywhere when `min_lr` is 0) the two give the same LR at every step
(tests/unit/test_training_schedule.py compares them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunesmith.training.monitor import lr_scale_at


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


class LRFactor:
    """The LR multiplier at optimizer step `step`: the playbook schedule's shape x the rollback scale of
    that step (1 until a rollback; `rollback_lr_scale`^n after the n-th). The scheduler gets it wrapped in a
    plain function: LambdaLR's state_dict stores (and on resume restores) the attributes of callable
    objects, which would bring back the segments saved in the checkpoint; it skips functions."""

    def __init__(self, schedule: Schedule, segments: list[list[float]] | None = None) -> None:
        self.schedule, self.segments = schedule, [list(s) for s in segments or []]

    def __call__(self, step: int) -> float:
        return lr_scale_at(step, self.segments) * lr_multiplier(step, schedule=self.schedule)

    def lr_at(self, step: int) -> float:
        return self.schedule.lr * self(step)

    def rollback_scale(self, step: int) -> float:
        """The rollback scale in force at `step` (1 before any rollback)."""
        return self(step) / max(lr_multiplier(step, schedule=self.schedule), 1e-12)


class PlaybookSchedule:
    """Trainer mixin: the playbook's warmup -> constant -> ramp-down schedule (scaled after rollbacks), and
    with `lora_plus_ratio` > 1 the LoRA+ optimizer (`training/loraplus.py`): B matrices in their own
    parameter groups at that multiple of the LR; the schedule's multiplier applies to every group's base LR."""

    def __init__(
        self,
        *args: Any,
        schedule: Schedule,
        lr_factor: LRFactor | None = None,
        lora_plus_ratio: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self._tunesmith_schedule = schedule
        self._tunesmith_factor = lr_factor or LRFactor(schedule)
        self._tunesmith_lora_plus = lora_plus_ratio
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Optimizer:
        if self.optimizer is not None or self._tunesmith_lora_plus == 1.0:
            return super().create_optimizer(model)
        from tunesmith.training.loraplus import param_groups

        opt_model = self.model if model is None else model
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        groups = param_groups(
            opt_model.named_parameters(),
            self.args.learning_rate,
            self._tunesmith_lora_plus,
            self.args.weight_decay,
            set(self.get_decay_parameter_names(opt_model)),
        )
        self.optimizer = optimizer_cls(groups, **kwargs)  # each group's own lr overrides kwargs' lr
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: Optimizer | None = None):
        if self.lr_scheduler is None:
            factor = self._tunesmith_factor
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: factor(step))
            self._created_lr_scheduler = True
        return self.lr_scheduler


class ApplyLRFactor(TrainerCallback):
    """After a resume the optimizer's param groups hold the LR saved in the checkpoint; set them from the
    scheduler so the first resumed step already uses the (rollback-scaled) schedule."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        optimizer, scheduler = kw.get("optimizer"), kw.get("lr_scheduler")
        if optimizer is None or scheduler is None or not hasattr(scheduler, "lr_lambdas"):
            return
        for group, base, factor in zip(
            optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=False
        ):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what the trainer logs
