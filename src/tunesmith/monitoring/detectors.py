"""Detectors: small stateful objects fed one number at a time; `update(...)` returns a `Detection` or None.

Pure Python (no torch): they read loss, gradient-norm, validation-loss, probe, reward and KL streams as
plain floats, so the same code watches SFT/CPT losses and RFT rewards, and the unit tests drive them with
synthetic streams.

Every threshold below names its source, by its key in docs/references.md (`[nova-hpo-blog]` is the
playbook's pitfalls and monitoring advice, `[tiny-feasibility]` the tiny-model measurements; the
instability papers are `[olmo2-2025]`, `[palm-2022]`, `[spam-2025]`, `[wortsman-2023]`). "Calibrated"
marks a number chosen on this project's
healthy tiny-family runs (benchmarks/monitoring.py; benchmarks/RESULTS.md, "Run monitoring"): each is set
well above the largest value those healthy runs produced.

Each detector reports an *episode* once: after it fires it stays quiet until its condition clears (so a
persistent anomaly is one event, not one per step).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from tunesmith.monitoring.events import Detection
from tunesmith.monitoring.stats import is_finite, mean, median, robust_z, safe_log


@dataclass
class NonFinite:
    """Loss or gradient norm is NaN or infinite: flagged at once (a NaN or Inf step poisons the weights at once; [palm-2022] restarts before the problem)."""

    name: ClassVar[str] = "non_finite"

    def update(self, step: int, **values: float | None) -> Detection | None:
        bad = {k: v for k, v in values.items() if v is not None and not is_finite(v)}
        if not bad:
            return None
        what = ", ".join(f"{k} = {v}" for k, v in bad.items())
        return Detection(self.name, step, f"{what} (not a finite number)", onset_step=step - 1)


@dataclass
class LossSpike:
    """One step far above a robust rolling baseline of the log-loss, and the frequency of such steps.

    A spike: log(loss) >= median + `z` x sigma(MAD) of the previous `window` steps AND loss >= `min_ratio` x
    the window's median loss. `z` = 7 is OLMo 2's "spike score" threshold (7 sigma, [olmo2-2025]); the window is
    50 steps instead of OLMo's 1000 because fine-tuning runs are hundreds of steps, not hundreds of thousands.
    `min_ratio` 1.25 (calibrated) keeps a nearly constant, converged loss (MAD ~ 0) from turning a 5% wiggle
    into "7 sigma". The first `min_history` steps only fill the window (warmup moves the loss fast; the
    falling loss stays *below* a lagging median, so the one-sided test never fires on healthy warmup).

    Spike frequency: `max_spikes` spikes within the last `frequency_window` steps is the persistence check
    that keeps an isolated, self-resolving spike ([palm-2022], [llm360-k2]) from triggering a rollback.
    """

    name: ClassVar[str] = "loss_spike"
    frequency_name: ClassVar[str] = "spike_frequency"
    window: int = 50
    z: float = 7.0
    min_ratio: float = 1.25
    min_history: int = 20
    sigma_floor: float = 0.02  # in log-loss units: 2% of the loss
    frequency_window: int = 50
    max_spikes: int = 3
    _history: deque = field(init=False, repr=False)
    _spikes: deque = field(init=False, repr=False)
    _in_spike: bool = field(default=False, init=False, repr=False)
    _frequency_fired: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.window)
        self._spikes = deque()

    def update(self, step: int, loss: float | None) -> list[Detection]:
        if not is_finite(loss):
            return []
        x = safe_log(loss)
        found: list[Detection] = []
        spike = False
        if len(self._history) >= self.min_history:
            z, center, sigma = robust_z(x, list(self._history), self.sigma_floor)
            base = math.exp(center)
            spike = z >= self.z and loss >= self.min_ratio * base
            if spike and not self._in_spike:
                found.append(
                    Detection(
                        self.name,
                        step,
                        f"loss {loss:.4g} is {z:.1f} robust sigma above the median {base:.4g} of the last "
                        f"{len(self._history)} steps ({loss / base:.2f}x)",
                        value=loss,
                        threshold=math.exp(center + self.z * sigma),
                        onset_step=step - 1,
                        details={"z": round(z, 2), "median": base, "ratio": loss / base},
                    )
                )
        self._in_spike = spike
        self._history.append(x)
        if spike:
            self._spikes.append(step)
        while self._spikes and self._spikes[0] <= step - self.frequency_window:
            self._spikes.popleft()
        if not self._spikes:
            self._frequency_fired = False
        if len(self._spikes) >= self.max_spikes and not self._frequency_fired:
            self._frequency_fired = True
            first = self._spikes[0]
            found.append(
                Detection(
                    self.frequency_name,
                    step,
                    f"{len(self._spikes)} loss spikes in the last {self.frequency_window} steps "
                    f"(since step {first}; limit {self.max_spikes - 1})",
                    value=float(len(self._spikes)),
                    threshold=float(self.max_spikes),
                    onset_step=first - 1,
                    details={"spike_steps": list(self._spikes)},
                )
            )
        return found


@dataclass
class GradNormExplosion:
    """Gradient norm far above its own recent history: >= `ratio` x the median of the previous `window`
    steps and >= `z` robust sigma above it (in log space).

    SPAM ([spam-2025]) counts a gradient spike when |g| exceeds 50x its running average per
    coordinate and observes spikes up to 1000x; the *global* norm averages over all coordinates, so its
    spikes are smaller: 10x (calibrated) with the OLMo 2 7-sigma test. The norm is the pre-clipping norm
    the trainer logs, so clipping does not hide the explosion.
    """

    name: ClassVar[str] = "grad_norm_explosion"
    window: int = 50
    ratio: float = 10.0
    z: float = 7.0
    min_history: int = 20
    sigma_floor: float = 0.05
    _history: deque = field(init=False, repr=False)
    _active: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.window)

    def update(self, step: int, grad_norm: float | None) -> Detection | None:
        if not is_finite(grad_norm):
            return None
        x = safe_log(grad_norm)
        finding = None
        hit = False
        if len(self._history) >= self.min_history:
            z, center, _ = robust_z(x, list(self._history), self.sigma_floor)
            base = math.exp(center)
            hit = z >= self.z and grad_norm >= self.ratio * base
            if hit and not self._active:
                finding = Detection(
                    self.name,
                    step,
                    f"gradient norm {grad_norm:.4g} is {grad_norm / base:.1f}x the median {base:.4g} of the "
                    f"last {len(self._history)} steps",
                    value=grad_norm,
                    threshold=self.ratio * base,
                    onset_step=step - 1,
                    details={"z": round(z, 2), "median": base, "ratio": grad_norm / base},
                )
        self._active = hit
        self._history.append(x)
        return finding


@dataclass
class Divergence:
    """The smoothed loss trends up: the rolling median of the last `smooth` losses stays above
    (1 + `rise`) x its own running minimum (and at least `min_rise` nats above it) for `patience`
    consecutive steps.

    The rolling median filters the per-step noise of mixed batches (each batch draws from several sources);
    the running minimum is the best the run has been. The playbook's healthy curve "falls steadily without
    sudden spikes" ([nova-hpo-blog]); a sustained rise is the divergence that PaLM and Wortsman et al. ([palm-2022], [wortsman-2023])
    answer with a restart from an earlier checkpoint at a lower LR. `rise` 0.3, `min_rise` 0.05 nats and
    `patience` 5 are calibrated. `onset_step` is the step of the running minimum: the last healthy point.
    """

    name: ClassVar[str] = "divergence"
    smooth: int = 9
    rise: float = 0.3
    min_rise: float = 0.05
    patience: int = 5
    min_history: int = 9
    _recent: deque = field(init=False, repr=False)
    _best: float = field(default=math.inf, init=False, repr=False)
    _best_step: int = field(default=0, init=False, repr=False)
    _streak: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)
    _seen: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.smooth)

    def update(self, step: int, loss: float | None) -> Detection | None:
        if loss is None:
            return None
        self._recent.append(loss if is_finite(loss) else math.inf)
        self._seen += 1
        if self._seen < self.min_history:
            return None
        smoothed = median(list(self._recent))
        if smoothed < self._best:
            self._best, self._best_step = smoothed, step
        limit = max(self._best * (1 + self.rise), self._best + self.min_rise)
        if smoothed > limit:
            self._streak += 1
        else:
            self._streak = 0
            self._fired = False
        if self._streak >= self.patience and not self._fired:
            self._fired = True
            return Detection(
                self.name,
                step,
                f"smoothed loss {smoothed:.4g} (median of {len(self._recent)} steps) has stayed above "
                f"{limit:.4g} for {self._streak} steps; its best was {self._best:.4g} at step {self._best_step}",
                value=smoothed,
                threshold=limit,
                onset_step=self._best_step,
                details={"best": self._best, "best_step": self._best_step},
            )
        return None


@dataclass
class Overfitting:
    """Validation loss rose at `patience` successive evaluations while the training loss fell.

    The playbook: "If validation loss increases while training loss decreases, you are overfitting"
    ([nova-hpo-blog]). `patience` 3 successive increases is Prechelt's UP_s criterion with s = 3 ([prechelt-1998]); each rise must exceed `min_delta` (relative) to count, so evaluation noise
    on a flat curve does not. `onset_step` is the evaluation with the lowest validation loss.
    """

    name: ClassVar[str] = "overfitting"
    patience: int = 3
    min_delta: float = 0.001
    _evals: list = field(default_factory=list, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def update(self, step: int, eval_loss: float | None, train_loss: float | None) -> Detection | None:
        if not is_finite(eval_loss):
            return None
        self._evals.append((step, eval_loss, train_loss))
        tail = self._evals[-(self.patience + 1) :]
        if len(tail) < self.patience + 1:
            return None
        rising = all(b[1] > a[1] * (1 + self.min_delta) for a, b in zip(tail, tail[1:], strict=False))
        trains = [t for _, _, t in tail if is_finite(t)]
        falling = len(trains) >= 2 and trains[-1] < trains[0]
        if not (rising and falling):
            self._fired = False
            return None
        if self._fired:
            return None
        self._fired = True
        best_step, best_loss, _ = min(self._evals, key=lambda e: e[1])
        return Detection(
            self.name,
            step,
            f"validation loss rose {self.patience} evaluations in a row ({tail[0][1]:.4g} at step {tail[0][0]} "
            f"-> {eval_loss:.4g}) while the training loss fell ({trains[0]:.4g} -> {trains[-1]:.4g})",
            value=eval_loss,
            threshold=tail[0][1],
            onset_step=best_step,
            details={"best_eval_loss": best_loss, "best_step": best_step},
        )


@dataclass
class Plateau:
    """No meaningful improvement: the best validation loss (or, without validation, the smoothed training
    loss sampled at the same interval) improved by less than `min_improvement` (relative) over the last
    `patience` evaluations.

    The RFT docs list "rewards plateau" and "validation degrades" among the reasons to stop ([nova-hpo-blog]);
    `patience` 5 evaluations (half a default run, which validates ~10 times) and 1% are calibrated. The
    starting point's evaluation (step 0) counts as the first best.
    """

    name: ClassVar[str] = "plateau"
    patience: int = 5
    min_improvement: float = 0.01
    _best: float = field(default=math.inf, init=False, repr=False)
    _since: int = field(default=0, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)
    _best_step: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def update(self, step: int, value: float | None) -> Detection | None:
        if not is_finite(value):
            return None
        self._count += 1
        if value < self._best * (1 - self.min_improvement) or self._best == math.inf:
            self._best, self._best_step, self._since = value, step, 0
            self._fired = False
            return None
        self._since += 1
        if self._since >= self.patience and not self._fired:
            self._fired = True
            return Detection(
                self.name,
                step,
                f"no {100 * self.min_improvement:g}% improvement in {self._since} evaluations: best {self._best:.4g} "
                f"at step {self._best_step}, now {value:.4g}",
                value=value,
                threshold=self._best * (1 - self.min_improvement),
                onset_step=self._best_step,
            )
        return None


@dataclass
class Forgetting:
    """The general-capability probe's accuracy (0-1) dropped more than `max_drop` below its value at the
    start of the stage.

    10 points (calibrated): on the tiny family, healthy 50%-mixed runs kept general accuracy within 5
    points of the start (0.99 -> 0.945-1.00), while the unstable and unmixed runs lost 17-79 points ([tiny-feasibility],
    domain fine-tuning tables); with mixing the managed service reports MMLU 0.75 -> 0.74 and 0.47 without
    ([nova-mixing-blog]). `onset_step` is the last probe that was within the limit.
    """

    name: ClassVar[str] = "forgetting"
    max_drop: float = 0.10
    _baseline: float | None = field(default=None, init=False, repr=False)
    _last_ok: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def update(self, step: int, accuracy: float | None) -> Detection | None:
        if not is_finite(accuracy):
            return None
        if self._baseline is None:
            self._baseline, self._last_ok = accuracy, step
            return None
        drop = self._baseline - accuracy
        if drop <= self.max_drop:
            self._last_ok, self._fired = step, False
            return None
        if self._fired:
            return None
        self._fired = True
        return Detection(
            self.name,
            step,
            f"general probe accuracy {accuracy:.3f} is {100 * drop:.1f} points below the start ({self._baseline:.3f}; "
            f"limit {100 * self.max_drop:g})",
            value=accuracy,
            threshold=self._baseline - self.max_drop,
            onset_step=self._last_ok,
            details={"baseline": self._baseline, "drop": drop},
        )


@dataclass
class Collapse:
    """General skill destroyed, not dipped: the probe's accuracy fell below `min_ratio` of its start, or the
    KL to the starting model rose above `max_kl` nats/token.

    Calibrated on the tiny family's real probe streams (benchmarks/monitoring.py, LoRA SFT, 50% mix, 200
    steps): 10 healthy seeds dipped to at worst 0.375 of 0.95 (39% of the start) with KL <= 0.505, and
    recovered; LR x10 / x30 / x100 fell to 0.000-0.025 with KL 1.98-4.45 at the first probe. 15% and 1.5
    nats leave a margin of >2.5x to the healthy side and >1.3x to the divergent side. Unlike `forgetting`
    (a dip that mixing usually repairs), a collapse does not come back by itself.
    """

    name: ClassVar[str] = "collapse"
    min_ratio: float = 0.15
    max_kl: float = 1.5
    _baseline: float | None = field(default=None, init=False, repr=False)
    _last_ok: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def update(self, step: int, accuracy: float | None, kl: float | None = None) -> Detection | None:
        if self._baseline is None:
            if is_finite(accuracy):
                self._baseline, self._last_ok = accuracy, step
            return None
        low = is_finite(accuracy) and self._baseline > 0 and accuracy < self.min_ratio * self._baseline
        far = kl is not None and (not is_finite(kl) or kl > self.max_kl)
        if not (low or far):
            self._last_ok, self._fired = step, False
            return None
        if self._fired:
            return None
        self._fired = True
        what = []
        if low:
            what.append(
                f"general probe accuracy {accuracy:.3f} is below {100 * self.min_ratio:g}% of the start ({self._baseline:.3f})"
            )
        if far:
            what.append(f"KL to the starting model {kl:.3g} nats/token exceeds {self.max_kl:g}")
        return Detection(
            self.name,
            step,
            "general skill collapsed: " + "; ".join(what),
            value=accuracy if low else kl,
            threshold=self.min_ratio * self._baseline if low else self.max_kl,
            onset_step=self._last_ok,
            details={"baseline": self._baseline, "accuracy": accuracy, "kl": kl},
        )


@dataclass
class KLDrift:
    """Label-free forgetting proxy: KL(start model || current model), nats per token, on a fixed prompt set
    rose above `max_kl`.

    Forward KL to the starting policy predicts forgetting (RL's Razor, [rls-razor-2025]: R^2 0.71 on
    LLMs). 0.5 nats/token is calibrated on the tiny family; the scale depends on the
    model and the prompts, so the default policy is `warn`.
    """

    name: ClassVar[str] = "kl_drift"
    max_kl: float = 0.5
    _last_ok: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def update(self, step: int, kl: float | None) -> Detection | None:
        if kl is None:
            return None
        if is_finite(kl) and kl <= self.max_kl:
            self._last_ok, self._fired = step, False
            return None
        if self._fired:
            return None
        self._fired = True
        return Detection(
            self.name,
            step,
            f"KL to the starting model {kl:.3g} nats/token on the probe prompts exceeds {self.max_kl:g}",
            value=kl,
            threshold=self.max_kl,
            onset_step=self._last_ok,
        )


# --- RFT streams (reward in [reward_min, reward_max], KL to the reference policy) ---------------------------


@dataclass
class RewardCollapse:
    """The mean reward fell from its peak and did not recover: the rolling mean over `window` steps stays
    below (1 - `drop`) x its peak for `patience` consecutive steps (peak above `min_peak` of the range).

    "Reward that rises fast and then plateaus or drops -> possible reward hacking" ([nova-hpo-blog]). `drop` 0.3,
    `window` 10 and `patience` 10 steps (10% of the tiny family's 100-step RFT default) are calibrated on
    synthetic streams: no RFT trainer exists yet to measure real ones.
    """

    name: ClassVar[str] = "reward_collapse"
    window: int = 10
    drop: float = 0.3
    patience: int = 10
    min_peak: float = 0.1
    reward_min: float = 0.0
    reward_max: float = 1.0
    _recent: deque = field(init=False, repr=False)
    _peak: float = field(default=-math.inf, init=False, repr=False)
    _peak_step: int = field(default=0, init=False, repr=False)
    _streak: int = field(default=0, init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def update(self, step: int, reward: float | None) -> Detection | None:
        if not is_finite(reward):
            return None
        self._recent.append((reward - self.reward_min) / (self.reward_max - self.reward_min))
        if len(self._recent) < self.window:
            return None
        level = mean(self._recent)
        if level > self._peak:
            self._peak, self._peak_step = level, step
        limit = (1 - self.drop) * self._peak
        if self._peak >= self.min_peak and level < limit:
            self._streak += 1
        else:
            self._streak, self._fired = 0, False
        if self._streak >= self.patience and not self._fired:
            self._fired = True
            return Detection(
                self.name,
                step,
                f"mean reward {level:.3f} (last {self.window} steps, 0-1 scale) has stayed below {limit:.3f} "
                f"for {self._streak} steps; it peaked at {self._peak:.3f} at step {self._peak_step}",
                value=level,
                threshold=limit,
                onset_step=self._peak_step,
            )
        return None


@dataclass
class _RewardLevel:
    """Shared core of the reward-level detectors: the mean reward (scaled to 0-1) over the last `window`
    steps, compared with `threshold`; fires once per episode (until the level comes back)."""

    name: ClassVar[str] = ""
    below: ClassVar[bool] = True  # fire when the level is below (True) or above (False) the threshold
    threshold: float = 0.05
    window: int = 20
    reward_min: float = 0.0
    reward_max: float = 1.0
    _recent: deque = field(init=False, repr=False)
    _fired: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def update(self, step: int, reward: float | None) -> Detection | None:
        if not is_finite(reward):
            return None
        self._recent.append((reward - self.reward_min) / (self.reward_max - self.reward_min))
        if len(self._recent) < self.window:
            return None
        level = mean(self._recent)
        if (level >= self.threshold) if self.below else (level <= self.threshold):
            self._fired = False
            return None
        if self._fired:
            return None
        self._fired = True
        side = "below" if self.below else "above"
        return Detection(
            self.name,
            step,
            f"mean reward {level:.3f} over the last {self.window} steps (0-1 scale) is {side} {self.threshold:g}",
            value=level,
            threshold=self.threshold,
            onset_step=step - self.window,
        )


@dataclass
class RewardStuckLow(_RewardLevel):
    """The mean reward stays near zero: below `threshold` of the reward range over `window` steps.

    5%: "Proceed with RFT directly if the base model achieves more than approximately 5 percent positive
    reward" ([nova-hpo-blog] readiness probe; `tunesmith.advisor.rules.RFT_PROBE_THRESHOLD`).
    """

    name: ClassVar[str] = "reward_stuck_low"
    below: ClassVar[bool] = True
    threshold: float = 0.05


@dataclass
class RewardSaturated(_RewardLevel):
    """The mean reward sits near the maximum: above `threshold` of the range over `window` steps, so
    groups of samples score alike and the advantage (the learning signal) vanishes.

    "If everything scores high, RFT has no gradient to optimize" ([nova-hpo-blog]); DAPO drops groups whose
    accuracy is 1 for the same reason ([dapo-2025]). 0.95 is calibrated on synthetic streams.
    """

    name: ClassVar[str] = "reward_saturated"
    below: ClassVar[bool] = False
    threshold: float = 0.95


@dataclass
class KLSpike:
    """The policy's KL to the reference jumps: >= `ratio` x the median of the previous `window` steps,
    >= `z` robust sigma above it, and above `min_kl` (KL starts at 0, where any change is a large ratio).

    "KL divergence spikes -> increase the KL coefficient" ([nova-hpo-blog]); 7 sigma as OLMo 2's spike score
    ([olmo2-2025]); `ratio` 5 from synthetic streams. `min_kl` 0.1 nats/token is calibrated on the tiny family's
    healthy RFT run (recipes/tiny-sft-rft.yaml, benchmarks/RESULTS.md): its KL grows from 0 to ~0.1 over the
    first 20 steps (0.003 -> 0.054 between steps 6 and 12, which 0.01 flagged as a spike) and then hovers at
    0.05-0.17, one step at 0.27.
    """

    name: ClassVar[str] = "kl_spike"
    window: int = 20
    ratio: float = 5.0
    z: float = 7.0
    min_kl: float = 0.1
    min_history: int = 10
    _history: deque = field(init=False, repr=False)
    _active: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.window)

    def update(self, step: int, kl: float | None) -> Detection | None:
        if not is_finite(kl):
            return None
        finding = None
        hit = False
        if len(self._history) >= self.min_history:
            z, center, _ = robust_z(kl, list(self._history), sigma_floor=self.min_kl / 10)
            hit = (
                kl >= self.min_kl and z >= self.z and kl >= self.ratio * max(center, self.min_kl / self.ratio)
            )
            if hit and not self._active:
                finding = Detection(
                    self.name,
                    step,
                    f"KL {kl:.4g} is {z:.1f} robust sigma above the median {center:.4g} of the last "
                    f"{len(self._history)} steps",
                    value=kl,
                    threshold=self.ratio * center,
                    onset_step=step - 1,
                    details={"z": round(z, 2), "median": center},
                )
        self._active = hit
        self._history.append(kl)
        return finding
