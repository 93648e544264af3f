"""Diagnosis: the likely causes of each event, in the order a practitioner would check them.

The order follows the playbook's pitfalls table and monitoring advice ([nova-hpo-blog]): "Deviating from the default LR with data mixing" is "the most common mistake", and loss
spikes "point to the LR or to data quality". So for instability events the LR comes first when the run
deviates from the family's default LR (with the factor, computed like the lint rule
`lr-deviates-while-mixing`: lr / the family default for technique x mode x checkpoint), and data quality
comes first when the LR is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunesmith.monitoring.events import Detection

CHANCE_MARGIN = 0.1
"""A loss within 10% of ln(vocab) counts as chance level: a unigram model of real text already sits well
below it, so a loss this high means the weights have hardly moved from a random-like prediction."""


@dataclass(frozen=True)
class RunContext:
    """Plain facts about the run that the causes refer to (all optional)."""

    stage: str | None = None
    technique: str = "sft"
    mode: str | None = None
    lr: float | None = None
    default_lr: float | None = None  # the family's default for this technique x mode x checkpoint
    general_percent: float = 0.0  # 0-100: general data mixed in
    checkpoint: str | None = None  # pre-trained | mid-trained | post-trained
    warmup_steps: int | None = None
    total_steps: int | None = None
    grad_clip: float | None = None
    global_batch_size: int | None = None
    train_file: str | None = None  # the mixed training file, in training order
    lora_alpha: float | None = None
    kl_coef: float | None = None
    lr_scale: float = 1.0  # < 1 after rollbacks
    vocab_size: int | None = None  # the tokenizer's: ln(vocab_size) is the loss of uniform guessing

    def at_chance(self, loss: float | None) -> bool:
        """True when `loss` (nats per token) is within `CHANCE_MARGIN` of ln(vocab_size): the model predicts
        no better than a uniform guess, so it has learned nothing yet."""
        if loss is None or not self.vocab_size or self.vocab_size < 2:
            return False
        return loss >= (1 - CHANCE_MARGIN) * math.log(self.vocab_size)

    @property
    def lr_ratio(self) -> float | None:
        if self.lr is None or not self.default_lr:
            return None
        return self.lr / self.default_lr

    def lr_deviates(self, tolerance: float = 0.01) -> bool:
        ratio = self.lr_ratio
        return ratio is not None and abs(ratio - 1) > tolerance

    def lines_for_steps(self, first_step: int, last_step: int) -> str | None:
        """The lines of the training file trained at optimizer steps first..last (1-based steps; training
        reads the mixed file in order, `global_batch_size` examples per step)."""
        if not self.global_batch_size or not self.train_file:
            return None
        first = (max(first_step, 1) - 1) * self.global_batch_size + 1
        last = max(last_step, first_step) * self.global_batch_size
        return f"{self.train_file} lines {first}-{last}"


def _lr_first(ctx: RunContext) -> str:
    ratio = ctx.lr_ratio
    mixing = f" while {ctx.general_percent:g}% general data is mixed in" if ctx.general_percent > 0 else ""
    return (
        f"learning rate is the first suspect: you deviated from the default by x{ratio:.3g} (lr {ctx.lr:g} vs the "
        f"{ctx.technique} {ctx.mode or ''} default {ctx.default_lr:g}){mixing} — 'the most common mistake' "
        "([nova-hpo-blog] pitfall 2); go back to the default and tune the mix instead"
    )


def _lr_lower(ctx: RunContext) -> str:
    lr = f"lr {ctx.lr:g}" if ctx.lr is not None else "the LR"
    return f"learning rate too high for this data: lower {lr} by x0.5 (the service's sweep grid is x0.5-x2)"


def _data_quality(ctx: RunContext, step: int, window: int = 1) -> str:
    lines = ctx.lines_for_steps(step - window + 1, step)
    where = f": inspect {lines}" if lines else ""
    return (
        "data quality: garbage, truncated, duplicated or mis-formatted examples in the batches trained just "
        f"before the event{where} (`tunesmith data inspect`)"
    )


def _warmup(ctx: RunContext) -> str | None:
    if ctx.warmup_steps is None or not ctx.total_steps:
        return None
    share = 100 * ctx.warmup_steps / ctx.total_steps
    if share >= 10:
        return None
    return f"warmup too short: {ctx.warmup_steps} steps ({share:.0f}% of the run); the playbook uses ~15%"


def _clip(ctx: RunContext) -> str | None:
    if ctx.grad_clip is None or 0 < ctx.grad_clip <= 1.0:
        return None
    state = "off" if ctx.grad_clip == 0 else f"{ctx.grad_clip:g}"
    return f"gradient clipping is {state}: the default is 1.0 ([wortsman-2023]; [nova-recipes])"


def _instability(ctx: RunContext, finding: Detection, data_window: int) -> list[str]:
    causes: list[str | None] = []
    if ctx.lr_deviates() and (ctx.lr_ratio or 0) > 1:
        causes += [_lr_first(ctx), _data_quality(ctx, finding.step, data_window)]
    elif finding.detector in ("loss_spike", "spike_frequency", "grad_norm_explosion"):
        causes += [_data_quality(ctx, finding.step, data_window), _lr_lower(ctx)]
    else:
        causes += [_lr_lower(ctx), _data_quality(ctx, finding.step, data_window)]
    causes += [_warmup(ctx), _clip(ctx)]
    if finding.detector == "non_finite":
        causes.append("numerics: fp16/bf16 overflow or an empty completion (no tokens to score) in the batch")
    if finding.detector == "loss_spike":
        causes.append(
            "if it stays isolated it is harmless; repeated spikes trigger spike_frequency (PaLM: roll back ~100 steps, skip the batches)"
        )
    return [c for c in causes if c]


def _forgetting(ctx: RunContext) -> list[str]:
    causes = [
        f"raise the general share (now {ctx.general_percent:g}% of the mix; the playbook balances customer data "
        "around 50%)"
        if ctx.general_percent < 50
        else f"raise the general share further (now {ctx.general_percent:g}%) or add the categories that dropped",
    ]
    ratio = ctx.lr_ratio
    lr_part = (
        f"lower the LR (x{ratio:.3g} the default)" if ratio is not None and ratio > 1.01 else "lower the LR"
    )
    alpha = f" or LoRA alpha ({ctx.lora_alpha:g})" if ctx.mode == "lora" and ctx.lora_alpha else ""
    causes.append(lr_part + alpha)
    if ctx.mode == "full":
        causes.append("use LoRA: it forgets less than full fine-tuning (Biderman et al., [biderman-2024])")
    if ctx.checkpoint != "post-trained":
        causes.append(
            "start from a later checkpoint (post-trained keeps general skills best, [nova-cpt-docs])"
        )
    else:
        causes.append(
            "fewer steps: most forgetting happens early ([tiny-feasibility]: within the first 100 steps)"
        )
    return causes


def causes_for(finding: Detection, ctx: RunContext) -> list[str]:
    """The likely causes of `finding`, most likely first."""
    detector = finding.detector
    if detector in ("non_finite", "loss_spike", "grad_norm_explosion"):
        return _instability(ctx, finding, 1)
    if detector == "spike_frequency":
        first = min(finding.details.get("spike_steps") or [finding.step])
        return _instability(ctx, finding, max(1, finding.step - first + 1))
    if detector == "divergence":
        start = finding.onset_step or finding.step
        return _instability(ctx, finding, max(1, finding.step - start))
    if detector == "overfitting":
        best = finding.onset_step
        keep = f" (the best checkpoint, step {best}, is kept)" if best is not None else ""
        return [
            f"too many epochs/steps for this data: train fewer{keep} — 'at most one epoch' for CPT ([nova-hpo-blog] "
            "pitfall 4)",
            "more (or more diverse) data",
            f"a larger general mix (now {ctx.general_percent:g}%)",
            "more regularization: weight decay, LoRA dropout, a lower LR",
        ]
    if detector == "plateau":
        causes = []
        if ctx.at_chance(finding.value):
            chance = math.log(ctx.vocab_size or 2)
            return [
                f"the loss {finding.value:.4g} sits at chance, ln({ctx.vocab_size}) = {chance:.4g} (a uniform guess over "
                "the vocabulary): the model has learned nothing yet",
                f"learning rate too low for this model (lr {ctx.lr:g}"
                + (
                    f", x{ctx.lr_ratio:.3g} the default {ctx.default_lr:g}"
                    if ctx.lr_ratio is not None
                    else ""
                )
                + "): check `tunesmith plan`'s size class, then raise the LR in x2 steps",
                "a randomly initialized or broken checkpoint: check model.path points at trained weights",
                "the loss is computed on the wrong tokens: check the rendered examples (`tunesmith data inspect`)",
            ]
        if ctx.lr_ratio is not None and ctx.lr_ratio < 0.99:
            causes.append(f"learning rate too low: x{ctx.lr_ratio:.3g} the default {ctx.default_lr:g}")
        causes += [
            "the model already fits this data: stop here or train fewer steps",
            "the LR has decayed to min_lr: fine if the run is nearly done",
            "the data is too easy or repeats (check duplicates with `tunesmith data inspect`)",
        ]
        return causes
    if detector == "collapse":
        start = finding.onset_step or 0
        return _instability(ctx, finding, max(1, finding.step - start))
    if detector in ("forgetting", "kl_drift"):
        return _forgetting(ctx)
    if detector == "reward_stuck_low":
        return [
            "run SFT first: the model rarely produces a rewarded answer ([nova-hpo-blog]: proceed with RFT only above "
            "~5% positive reward; pitfall 1 'Skipping SFT before RFT')",
            "the reward function: check it scores a known-correct answer positively",
            "the prompts are too hard or their format differs from what the model was trained on",
        ]
    if detector == "reward_saturated":
        return [
            "the reward is not discriminative: everything scores high, so RFT has no gradient ([nova-hpo-blog]); make "
            "it graded or harder",
            "the prompts are already solved: filter prompts whose samples all score the maximum (DAPO)",
            "the target is met: stop here",
        ]
    if detector == "reward_collapse":
        kl = f" (kl_coef {ctx.kl_coef:g})" if ctx.kl_coef is not None else ""
        return [
            "reward hacking: inspect the highest-reward samples before the drop; validate the reward with at "
            "least two independent judges ([nova-hpo-blog])",
            _lr_lower(ctx),
            f"KL penalty too weak{kl}: raise it to keep the policy near the reference",
        ]
    if detector == "kl_spike":
        kl = f" (now {ctx.kl_coef:g})" if ctx.kl_coef is not None else ""
        return [
            f"increase the KL coefficient{kl} ([nova-hpo-blog])",
            _lr_lower(ctx),
            "reward hacking: the policy found an exploit far from the reference",
        ]
    return []
