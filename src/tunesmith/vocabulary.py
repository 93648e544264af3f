"""The names a recipe may use, shared by every layer (a leaf module: it imports nothing of tunesmith).

The modules that give the names their meaning import them from here and check at import time that they
still agree (`tunesmith.monitoring.policies` for the detectors, `tunesmith.models.catalog` for the
checkpoint stages, `tunesmith.data.general` for the categories), so the recipe schema can validate a
recipe without importing the layers that implement it.
"""

from __future__ import annotations

from typing import Literal

Technique = Literal["cpt", "sft", "rft", "dpo"]
TECHNIQUES: tuple[str, ...] = ("cpt", "sft", "rft", "dpo")
Mode = Literal["lora", "full"]
MODES: tuple[str, ...] = ("lora", "full")

CheckpointStage = Literal["pre-trained", "mid-trained", "post-trained"]
CHECKPOINT_STAGES: tuple[str, ...] = ("pre-trained", "mid-trained", "post-trained")
"""A family's checkpoints, from the most plastic to instruction-tuned [nova-cpt-docs]."""

CATEGORIES: tuple[str, ...] = (
    "reasoning-instruction-following",
    "instruction-following",
    "math",
    "reasoning",
    "knowledge",
)
"""The built-in general data's categories, named after the managed service's curated mix [nova-data-mixing]."""

_LOSS_SPIKE_THRESHOLDS = (
    "window",
    "z",
    "min_ratio",
    "min_history",
    "sigma_floor",
    "frequency_window",
    "max_spikes",
)

DETECTOR_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "non_finite": (),
    "loss_spike": _LOSS_SPIKE_THRESHOLDS,
    "spike_frequency": _LOSS_SPIKE_THRESHOLDS,  # the loss-spike detector reports both
    "grad_norm_explosion": ("window", "ratio", "z", "min_history", "sigma_floor"),
    "divergence": ("smooth", "rise", "min_rise", "patience", "min_history"),
    "overfitting": ("patience", "min_delta"),
    "plateau": ("patience", "min_improvement"),
    "forgetting": ("max_drop",),
    "collapse": ("min_ratio", "max_kl"),
    "kl_drift": ("max_kl",),
    "reward_collapse": ("window", "drop", "patience", "min_peak", "reward_min", "reward_max"),
    "reward_stuck_low": ("threshold", "window", "reward_min", "reward_max"),
    "reward_saturated": ("threshold", "window", "reward_min", "reward_max"),
    "kl_spike": ("window", "ratio", "z", "min_kl", "min_history"),
}
"""Each run-monitoring detector and its tunable thresholds (`monitoring.thresholds` of a recipe stage)."""

DETECTORS: tuple[str, ...] = tuple(DETECTOR_THRESHOLDS)


def threshold_names(detector: str) -> list[str]:
    """The tunable thresholds of `detector` (a name of `DETECTORS`)."""
    return list(DETECTOR_THRESHOLDS[detector])
