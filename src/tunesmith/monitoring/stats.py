"""Robust statistics over short windows of numbers (pure Python: no torch, no numpy).

The detectors use the median and the median absolute deviation (MAD) instead of the mean and standard
deviation, so one spike in the window does not hide the next one (a robust z-score of the log-loss and the
log-gradient-norm over a rolling window, as in the spike score of [olmo2-2025]).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

MAD_TO_SIGMA = 1.4826
"""MAD x 1.4826 estimates the standard deviation of normally distributed data (the consistency constant)."""


def is_finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    assert values, "median of an empty window"
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def mad_sigma(values: Sequence[float], center: float | None = None) -> float:
    """The MAD scaled to a standard deviation (1.4826 x median |x - median|)."""
    center = median(values) if center is None else center
    return MAD_TO_SIGMA * median([abs(v - center) for v in values])


def robust_z(value: float, window: Sequence[float], sigma_floor: float = 0.0) -> tuple[float, float, float]:
    """(z, median, sigma): how many robust standard deviations `value` lies above the window's median.
    `sigma_floor` keeps a near-constant window from turning a tiny wiggle into a huge z."""
    center = median(window)
    sigma = max(mad_sigma(window, center), sigma_floor, 1e-12)
    return (value - center) / sigma, center, sigma


def safe_log(value: float) -> float:
    return math.log(max(value, 1e-12))


def mean(values: Iterable[float]) -> float:
    items = list(values)
    assert items, "mean of an empty window"
    return sum(items) / len(items)
