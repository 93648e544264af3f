"""The forgetting table and the one-line verdict: pure functions over per-item scores, no model.

Both checkpoints answer the *same* items, so the comparison is paired: the change of a category is the
mean over its items of (after - before), and its uncertainty comes from a paired bootstrap over items
(Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13 percentile intervals; the paired
bootstrap for comparing two systems on one test set: Koehn 2004, "Statistical Significance Tests for
Machine Translation Evaluation"). "Overall" is the macro mean of the categories (each category weighs the
same, as in the tiny family's `general_mean`); its bootstrap resamples within each category (stratified),
so a small category is not drowned by a large one.

A change is *significant* when its 95% interval excludes zero. Greedy decoding is deterministic, so the
only noise is which items were drawn: that is what the interval measures.

Retention is after / before of the overall score (1.0 = nothing lost), as the managed service's
guidance reads "general retained".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

CONFIDENCE = 0.95
NUM_RESAMPLES = 2000
"""Bootstrap resamples: 2000 gives percentile bounds stable to ~0.5 points for 60-item categories."""
OVERALL = "overall"


@dataclass(frozen=True)
class ChangeRow:
    """One line of the forgetting table (scores are 0-1; `change`, `ci_low`, `ci_high` too)."""

    suite: str
    category: str
    metric: str
    items: int
    before: float
    after: float
    change: float
    retention: float | None  # after / before; None when before is 0
    ci_low: float
    ci_high: float
    significant: bool

    @property
    def direction(self) -> str:
        """ "drop", "gain" or "same" (same = within noise)."""
        if not self.significant:
            return "same"
        return "drop" if self.change < 0 else "gain"

    def to_dict(self) -> dict:
        return {**asdict(self), "direction": self.direction}


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_change(
    before: Sequence[float],
    after: Sequence[float],
    strata: Sequence[str] | None = None,
    *,
    num_resamples: int = NUM_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(change, ci_low, ci_high) of the macro mean over `strata` of (after - before), paired by item.

    Items are resampled with replacement within each stratum (one stratum when `strata` is None).
    """
    assert len(before) == len(after), "before and after must score the same items"
    assert len(before) > 0, "no items to compare"
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    labels = np.asarray(strata if strata is not None else ["all"] * len(diff))
    rng = np.random.default_rng(seed)
    groups = [diff[labels == label] for label in dict.fromkeys(labels.tolist())]
    point = float(np.mean([g.mean() for g in groups]))
    resampled = np.zeros(num_resamples)
    for group in groups:
        picks = rng.integers(0, len(group), size=(num_resamples, len(group)))
        resampled += group[picks].mean(axis=1)
    resampled /= len(groups)
    low, high = _percentile_interval(resampled, confidence)
    return point, low, high


def _row(
    suite: str,
    category: str,
    metric: str,
    before: list[float],
    after: list[float],
    strata: list[str] | None,
    seed: int,
    num_resamples: int,
) -> ChangeRow:
    labels = strata if strata is not None else [category] * len(before)
    order = list(dict.fromkeys(labels))
    mean_before = float(
        np.mean([np.mean([b for b, s in zip(before, labels, strict=True) if s == c]) for c in order])
    )
    mean_after = float(
        np.mean([np.mean([a for a, s in zip(after, labels, strict=True) if s == c]) for c in order])
    )
    change, low, high = bootstrap_change(before, after, labels, num_resamples=num_resamples, seed=seed)
    retention = mean_after / mean_before if mean_before > 0 else None
    significant = low > 0 or high < 0
    return ChangeRow(
        suite,
        category,
        metric,
        len(before),
        mean_before,
        mean_after,
        change,
        retention,
        low,
        high,
        significant,
    )


def forgetting_table(
    suite: str,
    before_items: Sequence[dict],
    after_items: Sequence[dict],
    metric: str = "exact_match",
    *,
    seed: int = 0,
    num_resamples: int = NUM_RESAMPLES,
    with_retention: bool = True,
) -> list[ChangeRow]:
    """Rows per category (sorted by name) and an `overall` row (macro mean, stratified bootstrap).

    `*_items` are per-item records `{"id", "category", "scores": {metric: float}}` of the same items (paired
    by `id`; an item missing on one side is an error: both must have answered the same set).
    `with_retention=False` (a skill being learned, e.g. the domain) leaves `retention` empty: a ratio to a
    near-zero start means nothing.
    """
    after_by_id = {item["id"]: item for item in after_items}
    assert len(after_by_id) == len(after_items) == len(before_items), "items must match one to one"
    categories: list[str] = []
    before: list[float] = []
    after: list[float] = []
    for item in before_items:
        other = after_by_id.get(item["id"])
        assert other is not None, f"item {item['id']!r} was not evaluated on both checkpoints"
        categories.append(item["category"])
        before.append(float(item["scores"][metric]))
        after.append(float(other["scores"][metric]))
    rows = []
    for index, category in enumerate(sorted(set(categories))):
        picked = [i for i, c in enumerate(categories) if c == category]
        rows.append(
            _row(
                suite,
                category,
                metric,
                [before[i] for i in picked],
                [after[i] for i in picked],
                None,
                seed + index + 1,
                num_resamples,
            )  # fmt: skip
        )
    rows.append(_row(suite, OVERALL, metric, before, after, categories, seed, num_resamples))
    if not with_retention:
        rows = [replace(row, retention=None) for row in rows]
    return rows


def _points(value: float) -> str:
    """A 0-1 change as signed percentage points: +41, -23, +0."""
    rounded = round(value * 100)
    return f"{'+' if rounded >= 0 else '-'}{abs(rounded)}"


def _overall(rows: Sequence[ChangeRow]) -> ChangeRow | None:
    return next((r for r in rows if r.category == OVERALL), None)


def verdict(general: Sequence[ChangeRow] | None, domain: Sequence[ChangeRow] | None) -> str:
    """The one line a user reads first, e.g.

    - `domain +41 points; general retained 98% — no significant regression`
    - `domain +95 points; general retained 40% — significant regression: dropped 83 points in
      instruction-following (also: math, reasoning): mix general data in and raise instruction-following's
      share`
    """
    parts: list[str] = []
    domain_row = _overall(domain or [])
    if domain_row is not None:
        note = "" if domain_row.significant else " (within noise)"
        parts.append(
            f"domain {_points(domain_row.change)} points ({domain_row.before:.2f} -> {domain_row.after:.2f}){note}"
        )
    general_row = _overall(general or [])
    if general_row is None:
        return "; ".join(parts) if parts else "nothing to compare"
    retained = (
        f"general retained {general_row.retention:.0%}"
        if general_row.retention is not None
        else f"general {general_row.before:.2f} -> {general_row.after:.2f}"
    )
    drops = sorted(
        (r for r in general or [] if r.category != OVERALL and r.direction == "drop"), key=lambda r: r.change
    )
    if not drops and general_row.direction != "drop":
        if general_row.direction == "gain":
            retained = f"general {_points(general_row.change)} points (improved)"
        parts.append(f"{retained} — no significant regression")
        return "; ".join(parts)
    if not drops:
        parts.append(
            f"{retained} — significant regression overall ({_points(general_row.change)} points, "
            f"95% CI {_points(general_row.ci_low)} to {_points(general_row.ci_high)}): mix more general data in"
        )
        return "; ".join(parts)
    worst = drops[0]
    also = f" (also: {', '.join(r.category for r in drops[1:])})" if len(drops) > 1 else ""
    parts.append(
        f"{retained} — significant regression: dropped {abs(round(worst.change * 100))} points in "
        f"{worst.category}{also}: mix general data in and raise {worst.category}'s share"
    )
    return "; ".join(parts)
