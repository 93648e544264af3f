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
guidance reads "general retained". `kept` is retention on the items the start solved: the share of them
still solved after (a category where the start solves few items moves little in the mean but shows here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    # retention on the items the start solved: the share of them (score 1 before) still solved after, and its
    # 95% bootstrap interval over those items; None without retention or when the start solved none
    kept: float | None = None
    kept_low: float | None = None
    kept_high: float | None = None

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
        *_kept(before, after, seed, num_resamples),
    )


def _kept(
    before: list[float], after: list[float], seed: int, num_resamples: int
) -> tuple[float | None, float | None, float | None]:
    """(kept, low, high): the share of the items solved before (score 1) that are still solved after, with a
    bootstrap percentile interval over those items: the forgetting of what the start could do, unmixed with
    the items it never could."""
    solved = [1.0 if a >= 1.0 else 0.0 for b, a in zip(before, after, strict=True) if b >= 1.0]
    if not solved:
        return None, None, None
    values = np.asarray(solved)
    picks = np.random.default_rng(seed).integers(0, len(values), size=(num_resamples, len(values)))
    low, high = _percentile_interval(values[picks].mean(axis=1), CONFIDENCE)
    return float(values.mean()), low, high


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
        rows = [replace(row, retention=None, kept=None, kept_low=None, kept_high=None) for row in rows]
    return rows


def _points(value: float) -> str:
    """A 0-1 change as signed percentage points: +41, -23, +0."""
    rounded = round(value * 100)
    return f"{'+' if rounded >= 0 else '-'}{abs(rounded)}"


def _overall(rows: Sequence[ChangeRow]) -> ChangeRow | None:
    return next((r for r in rows if r.category == OVERALL), None)


@dataclass(frozen=True)
class RunSettings:
    """What the verdict's advice reads from the run that produced the "after" checkpoint: its last stage's
    resolved values (`tunesmith.evaluation.runner.run_settings` fills it from the run folder). Plain values,
    so `advice` stays a pure function. Percents are 0-100; `general` is the share of each category within
    the general part of the mix (sums to 100)."""

    technique: str
    mode: str  # lora | full
    customer_percent: float
    general: dict[str, float]
    lr: float
    default_lr: float | None = None  # the family's default for this stage (None: the table has none)
    epochs: float | None = None  # passes over the customer data (None: not known)
    lora_rank: int | None = None
    lora_alpha: float | None = None
    run: str | None = None  # the run or stage folder, for the command lines the advice names

    @property
    def mixing(self) -> bool:
        """True when general data was mixed in (the rule `advisor.rules.mixing_on` applies to a recipe)."""
        return self.customer_percent < 100 and any(share > 0 for share in self.general.values())


@dataclass(frozen=True)
class Lever:
    """One lever against forgetting that a mixed run has left: when it applies, what it says, its source."""

    id: str
    applies: Callable[[RunSettings], bool]
    text: Callable[[RunSettings, str | None], str]
    source: str  # keys of docs/references.md


def _round5(value: float) -> int:
    return int(5 * round(value / 5))


def raised_share(current: float) -> int:
    """The share (0-100 of the general part) to try next for a category that dropped: about 1.5x its share,
    at least 10 points more, in steps of 5 (the service's own mix grid moves in such steps: 10/25/50/75%,
    [nova-sft-docs]); a category absent from the mix starts at 20 (an even fifth)."""
    if current <= 0:
        return 20
    return min(100, max(_round5(current * 1.5), _round5(current) + 10))


def _share_text(settings: RunSettings, category: str | None) -> str:
    general_percent = 100 - settings.customer_percent
    part = "of the general half" if general_percent == 50 else f"of the general {general_percent:g}%"
    if category is None:  # no single category dropped: the general part as a whole
        target = min(90, _round5(general_percent + 15))
        return f"raise the general share from {general_percent:g}% to ~{target}% (customer_percent {100 - target})"
    current = settings.general.get(category, 0.0)
    if current <= 0:
        return f"add {category} to the general mix (~{raised_share(0)}% {part})"
    return f"raise {category}'s share from {current:g}% to ~{raised_share(current)}% {part}"


def _lr_back_to_default(settings: RunSettings) -> bool:
    return settings.default_lr is not None and settings.lr > 1.01 * settings.default_lr


def _lr_text(settings: RunSettings, category: str | None) -> str:
    if _lr_back_to_default(settings):
        assert settings.default_lr is not None
        return (
            f"return the LR from {settings.lr:g} ({settings.lr / settings.default_lr:.3g}x the family default) "
            f"to {settings.default_lr:g}"
        )
    return f"lower the LR from {settings.lr:g} to ~{settings.lr * 0.5:.2g} (0.5x)"


def _lr_applies(settings: RunSettings) -> bool:
    """Not when the LR is already at or under half the family default (no default known: always)."""
    return settings.default_lr is None or settings.lr > 0.51 * settings.default_lr


def _high_alpha(settings: RunSettings) -> bool:
    """LoRA alpha above 2x the rank (the usual setting, [nova-recipes]): the update is scaled up."""
    return (
        settings.mode == "lora"
        and settings.lora_alpha is not None
        and settings.lora_rank is not None
        and settings.lora_alpha > 2 * settings.lora_rank
    )


def _blend_text(settings: RunSettings, category: str | None) -> str:
    return (
        f"blend back toward the start (`tunesmith eval {settings.run or 'runs/<name>'} --blend 0.9` measures it "
        "without training)"
    )


LEVERS: tuple[Lever, ...] = (
    Lever(
        "share",
        lambda s: True,
        _share_text,
        "[nova-data-mixing]; [nova-sft-docs]",  # shares per category; the 10/25/50/75% grid
    ),
    Lever(
        "lr",
        _lr_applies,
        _lr_text,
        "[nova-hpo-blog]; [nova-sft-docs]",  # LR with mixing: the first suspect; the 0.5x/1x/2x grid
    ),
    Lever(
        "lora",
        lambda s: s.mode == "full",
        lambda s, c: "train LoRA instead of full rank (LoRA forgets less)",
        "[biderman-2024]; [nova-hpo-blog]",
    ),
    Lever(
        "alpha",
        _high_alpha,
        lambda s, c: (
            f"lower LoRA alpha from {s.lora_alpha:g} to ~{2 * (s.lora_rank or 0)} (2x rank {s.lora_rank}; a "
            "higher alpha cost more general skill)"
        ),
        "[nova-hpo-blog]",  # rank 32 alpha 128 vs alpha 64: similar gain, more general regression
    ),
    Lever(
        "epochs",
        lambda s: s.epochs is not None and s.epochs >= 1.5,
        lambda s, c: (
            f"train fewer epochs (the run saw your data {s.epochs:.1f} times; try ~{max(1, round((s.epochs or 0) / 2))})"
        ),
        "[nova-hpo-blog]",  # 1 -> 2 epochs on narrow data: 63.54% -> 61.42%
    ),
    Lever(
        "blend", lambda s: True, _blend_text, "[nova-recipes]; [tiny-results]"
    ),  # merge-back; W 0.9 measured
)
"""The levers left to a run that already mixes general data, in the order to try them. Each names numbers
from the run's recipe; `advice` lists the ones that apply."""


def levers(settings: RunSettings, category: str | None) -> list[dict[str, str]]:
    """The levers that apply to `settings` for a drop in `category` (None: overall), as `{id, text, source}`."""
    return [
        {"id": lever.id, "text": lever.text(settings, category), "source": lever.source}
        for lever in LEVERS
        if lever.applies(settings)
    ]


def _drops(general: Sequence[ChangeRow] | None) -> list[ChangeRow]:
    """The categories with a significant drop, the worst first."""
    rows = (r for r in general or [] if r.category != OVERALL and r.direction == "drop")
    return sorted(rows, key=lambda r: r.change)


def regression_levers(
    general: Sequence[ChangeRow] | None, settings: RunSettings | None
) -> list[dict[str, str]]:
    """The levers the verdict names (`levers`) when a mixed run regressed significantly, else none."""
    overall = _overall(general or [])
    drops = _drops(general)
    if settings is None or not settings.mixing or overall is None:
        return []
    if not drops and overall.direction != "drop":
        return []
    return levers(settings, drops[0].category if drops else None)


def advice(settings: RunSettings | None, category: str | None) -> str:
    """What to do about a significant drop in `category` (None: overall only). A run that mixes no general
    data (or an unknown run) is told to mix it in; a mixed run gets the levers it has left, with its numbers —
    never "mix general data in" again."""
    if settings is None or not settings.mixing:
        if category is None:
            return "mix more general data in"
        return f"mix general data in and raise {category}'s share"
    already = f"the run already mixes {100 - settings.customer_percent:g}% general data; levers left: "
    return already + "; ".join(lever["text"] for lever in levers(settings, category))


def verdict(
    general: Sequence[ChangeRow] | None,
    domain: Sequence[ChangeRow] | None,
    settings: RunSettings | None = None,
) -> str:
    """The one line a user reads first, e.g.

    - `domain exact_match +41 points; general retained 98% — no significant regression`
    - `domain reward +95 points; general retained 40% — significant regression: dropped 83 points in
      instruction-following (also: math, reasoning): mix general data in and raise instruction-following's
      share` (a run without mixing; `settings` describes the run, and a mixed run gets `advice`'s levers)
    """
    parts: list[str] = []
    domain_row = _overall(domain or [])
    if domain_row is not None:
        note = "" if domain_row.significant else " (within noise)"
        parts.append(
            f"domain {domain_row.metric} {_points(domain_row.change)} points ({domain_row.before:.2f} -> {domain_row.after:.2f}){note}"
        )
    general_row = _overall(general or [])
    if general_row is None:
        return "; ".join(parts) if parts else "nothing to compare"
    retained = (
        f"general retained {general_row.retention:.0%}"
        if general_row.retention is not None
        else f"general {general_row.before:.2f} -> {general_row.after:.2f}"
    )
    drops = _drops(general)
    if not drops and general_row.direction != "drop":
        if general_row.direction == "gain":
            retained = f"general {_points(general_row.change)} points (improved)"
        parts.append(f"{retained} — no significant regression")
        return "; ".join(parts)
    if not drops:
        parts.append(
            f"{retained} — significant regression overall ({_points(general_row.change)} points, "
            f"95% CI {_points(general_row.ci_low)} to {_points(general_row.ci_high)}): {advice(settings, None)}"
        )
        return "; ".join(parts)
    worst = drops[0]
    also = f" (also: {', '.join(r.category for r in drops[1:])})" if len(drops) > 1 else ""
    parts.append(
        f"{retained} — significant regression: dropped {abs(round(worst.change * 100))} points in "
        f"{worst.category}{also}: {advice(settings, worst.category)}"
    )
    return "; ".join(parts)
