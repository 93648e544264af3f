"""Policies as data: what each detector does when it fires, by default, and why.

`warn` records and prints the event; `stop` saves a checkpoint and ends the stage; `rollback` restores the
last good complete checkpoint and continues with the LR scaled down (at most `max_rollbacks` times; after
that a rollback becomes a stop); `off` disables the detector. A recipe overrides any of these per stage
under `monitoring:` (`tunesmith.recipe.schema.MonitoringSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tunesmith import vocabulary
from tunesmith.monitoring import detectors as d

DETECTOR_CLASSES: dict[str, type] = {
    "non_finite": d.NonFinite,
    "loss_spike": d.LossSpike,
    "spike_frequency": d.LossSpike,  # the same detector reports both (thresholds under loss_spike)
    "grad_norm_explosion": d.GradNormExplosion,
    "divergence": d.Divergence,
    "overfitting": d.Overfitting,
    "plateau": d.Plateau,
    "forgetting": d.Forgetting,
    "collapse": d.Collapse,
    "kl_drift": d.KLDrift,
    "reward_collapse": d.RewardCollapse,
    "reward_stuck_low": d.RewardStuckLow,
    "reward_saturated": d.RewardSaturated,
    "kl_spike": d.KLSpike,
}
DETECTORS: tuple[str, ...] = vocabulary.DETECTORS


@dataclass(frozen=True)
class PolicyDefault:
    policy: str
    source: str


DEFAULT_POLICIES: dict[str, PolicyDefault] = {
    "non_finite": PolicyDefault(
        "rollback",
        "a NaN/Inf step poisons the weights and optimizer state; PaLM restarts from a checkpoint before the "
        "problem ([palm-2022])",
    ),
    "loss_spike": PolicyDefault(
        "warn",
        "isolated spikes often resolve by themselves (PaLM: ~20 spikes in one run; LLM360 K2's second spike "
        "lasted ~8 checkpoints; [palm-2022], [llm360-k2]): record, and let spike_frequency / divergence decide",
    ),
    "spike_frequency": PolicyDefault(
        "rollback",
        "several spikes in a short window are no longer isolated, unlike the self-resolving ones of "
        "[llm360-k2]: PaLM-style rollback ([palm-2022])",
    ),
    "grad_norm_explosion": PolicyDefault(
        "warn",
        "gradient clipping (grad_clip 1.0) bounds the update; the loss detectors decide whether it hurt "
        "([wortsman-2023]: clipping at 1.0)",
    ),
    "divergence": PolicyDefault(
        "rollback",
        "restart from a checkpoint before the divergence at a lower LR (PaLM; Wortsman et al.: instabilities "
        "are an LR effect; [palm-2022], [wortsman-2023])",
    ),
    "overfitting": PolicyDefault(
        "warn",
        "top-k checkpoint selection by validation already keeps the pre-overfitting checkpoint; the "
        "playbook's advice is to change epochs/data next time ([nova-hpo-blog])",
    ),
    "plateau": PolicyDefault(
        "warn", "a plateau wastes compute but does no harm ([nova-hpo-blog]: 'when to stop')"
    ),
    "forgetting": PolicyDefault(
        "warn",
        "mid-run general dips with mixing recover as the LR decays ([tiny-feasibility]: LoRA 1e-2 mixed dipped to "
        "0.82 and ended at 0.97; LR x10 mixed dipped to 0.70 and recovered to 0.95); measured here, the default "
        "LoRA run's probe fell 32 points at step 40 and rollbacks at LR x0.5 and x0.25 fell again; the "
        "end-of-train forgetting table judges the result. Set `rollback` to intervene in-run",
    ),
    "collapse": PolicyDefault(
        "rollback",
        "a destroyed model does not recover (LR x10-x100 on the tiny family: probe 0.00-0.03 for the rest of the "
        "run); restart from the last good checkpoint at a lower LR (PaLM-style, [palm-2022])",
    ),
    "kl_drift": PolicyDefault(
        "warn",
        "a label-free proxy whose scale depends on model and prompts (RL's Razor, [rls-razor-2025]): informs, the "
        "accuracy probe decides",
    ),
    "reward_collapse": PolicyDefault(
        "rollback",
        "a drop that does not recover ([nova-hpo-blog]: possible reward hacking): go back to the peak at a lower LR",
    ),
    "reward_stuck_low": PolicyDefault(
        "stop",
        "without positive rewards RFT has nothing to reinforce: 'run SFT first' ([nova-hpo-blog] pitfall 1)",
    ),
    "reward_saturated": PolicyDefault(
        "stop",
        "'if everything scores high, RFT has no gradient to optimize' ([nova-hpo-blog]): further steps are wasted",
    ),
    "kl_spike": PolicyDefault(
        "warn", "'KL divergence spikes -> increase the KL coefficient' ([nova-hpo-blog])"
    ),
}

MAX_ROLLBACKS = 2
MAX_ROLLBACKS_SOURCE = (
    "PaLM restarted many times ([palm-2022]); two restarts at a halved LR each (x0.25) cover the x10-x100 LR "
    "mistakes of the playbook's pitfall 2 within a run, after which the recipe, not the run, needs fixing"
)
ROLLBACK_LR_SCALE = 0.5
ROLLBACK_LR_SCALE_SOURCE = (
    "the service's one-at-a-time LR sweep grid is default x0.5 .. x2 ([nova-recipes], the lint rule "
    "lr-deviates-while-mixing): x0.5 is its nearest lower step"
)


def threshold_names(detector: str) -> list[str]:
    """The tunable thresholds of `detector` (dataclass fields without a leading underscore)."""
    cls = DETECTOR_CLASSES[detector]
    return [f.name for f in fields(cls) if f.init and not f.name.startswith("_")]


# the recipe schema validates against the vocabulary: it must name exactly these detectors and thresholds
assert tuple(DETECTOR_CLASSES) == DETECTORS
assert all(tuple(threshold_names(name)) == vocabulary.DETECTOR_THRESHOLDS[name] for name in DETECTORS)


@dataclass(frozen=True)
class MonitorSettings:
    """Resolved monitoring settings for one stage (what `MonitoringSpec` overrides)."""

    policies: dict[str, str]
    thresholds: dict[str, dict[str, float]]
    probe_interval: int | None = None  # steps between forgetting probes; None: the validation interval
    probe_items_per_category: int = 8
    max_rollbacks: int = MAX_ROLLBACKS
    rollback_lr_scale: float = ROLLBACK_LR_SCALE
    enabled: bool = True
    skip_data: bool = False  # a rollback also skips the rows its event named as outliers (training/trace.py)

    @classmethod
    def from_spec(cls, spec: Any | None) -> MonitorSettings:
        """Defaults, overridden by a `MonitoringSpec` (or any object with the same attributes)."""
        policies = {name: default.policy for name, default in DEFAULT_POLICIES.items()}
        thresholds: dict[str, dict[str, float]] = {}
        if spec is None:
            return cls(policies, thresholds)
        policies.update(getattr(spec, "policies", None) or {})
        for detector, values in (getattr(spec, "thresholds", None) or {}).items():
            thresholds[detector] = dict(values)
        kwargs: dict[str, Any] = {}
        for name in (
            "probe_interval",
            "probe_items_per_category",
            "max_rollbacks",
            "rollback_lr_scale",
            "enabled",
            "skip_data",
        ):
            value = getattr(spec, name, None)
            if value is not None:
                kwargs[name] = value
        return cls(policies, thresholds, **kwargs)

    @property
    def probes(self) -> bool:
        """Whether the stage runs the forgetting probe: monitoring on and a detector that reads it."""
        return self.enabled and any(self.policies.get(name) != "off" for name in ("forgetting", "kl_drift"))

    def probe_items(self) -> int:
        """Items one probe scores (a forward pass each): `probe_items_per_category` per general category;
        0 when the stage does not probe."""
        return self.probe_items_per_category * len(vocabulary.CATEGORIES) if self.probes else 0

    def make(self, detector: str) -> Any:
        """A fresh detector with this stage's threshold overrides."""
        values = dict(self.thresholds.get(detector, {}))
        if detector == "loss_spike":  # one detector reports both loss_spike and spike_frequency
            values.update(self.thresholds.get("spike_frequency", {}))
        cls = DETECTOR_CLASSES[detector]
        counts = {f.name for f in fields(cls) if f.type in ("int", int)}  # windows: a recipe's 20.0 is 20
        return cls(**{k: int(v) if k in counts and float(v).is_integer() else v for k, v in values.items()})
