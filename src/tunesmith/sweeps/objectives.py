"""A trial's two objectives, the Pareto front, and the recommendation rule: pure functions over numbers.

The objectives come from the run's own end-of-training evaluation (`evaluation.runner.evaluate_run`: the
starting checkpoint and the last stage's best on the same held-out items), last comparison = last stage vs
start:

- **domain gain** (points, higher is better): the change of the domain suite's primary metric, overall;
- **general retention** (percent, higher is better): after / before of the general suite's overall accuracy.

A trial has a *significant general regression* when the comparison's general rows show a drop beyond noise
(a 95% paired-bootstrap interval below zero, overall or in any category): the same rule the one-line
verdict applies (`evaluation.forgetting.verdict`).

**Recommendation rule**: among completed trials with no significant general regression, the highest domain
gain (ties: the higher retention, then the lower trial number). If every trial regressed, none is
recommended: the sweep says so rather than pick a forgetting configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tunesmith.errors import UserError

RULE = (
    "the highest domain gain among completed trials with no significant general regression "
    "(95% paired-bootstrap CI, overall and per category)"
)


@dataclass(frozen=True)
class Objectives:
    domain_gain_points: float
    domain_score: float  # 0-100, the last stage's domain score
    general_retention_percent: float
    general_score: float  # 0-100
    significant_regression: bool
    verdict: str

    @property
    def values(self) -> tuple[float, float]:
        """What the study maximizes, in order."""
        return (self.domain_gain_points, self.general_retention_percent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DIRECTIONS = ("maximize", "maximize")
OBJECTIVE_NAMES = ("domain_gain_points", "general_retention_percent")


def _overall(rows: Sequence[Mapping[str, Any]], suite: str) -> Mapping[str, Any] | None:
    return next((r for r in rows if r["suite"] == suite and r["category"] == "overall"), None)


def objectives_from_evaluation(payload: Mapping[str, Any]) -> Objectives:
    """From `evaluation.json` (`evaluate_run`'s payload): the last comparison (last stage vs start)."""
    comparisons = payload.get("comparisons") or []
    if not comparisons:
        raise UserError(
            "sweep: the trial's evaluation has no comparison — the recipe's evaluation needs suites: [general, domain]"
        )
    rows = comparisons[-1]["rows"]
    domain = _overall(rows, "domain")  # the first domain rows are the primary metric's
    general = _overall(rows, "general")
    if domain is None or general is None:
        missing = "domain" if domain is None else "general"
        raise UserError(
            f"sweep: the evaluation has no {missing} suite — set evaluation.suites: [general, domain]"
            + (" and evaluation.domain: FILE" if missing == "domain" else "")
        )
    retention = (
        general["retention"]
        if general["retention"] is not None
        else (1.0 if general["after"] >= general["before"] else 0.0)
    )
    regression = any(r["suite"] == "general" and r["direction"] == "drop" for r in rows)
    return Objectives(
        domain_gain_points=round(100 * domain["change"], 3),
        domain_score=round(100 * domain["after"], 3),
        general_retention_percent=round(100 * retention, 3),
        general_score=round(100 * general["after"], 3),
        significant_regression=regression,
        verdict=comparisons[-1]["verdict"],
    )


def pareto_front(points: Mapping[int, tuple[float, ...]]) -> list[int]:
    """The ids whose objective tuples (all maximized) no other point dominates, in id order."""

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    return sorted(
        i for i, p in points.items() if not any(dominates(q, p) for j, q in points.items() if j != i)
    )


def recommend(trials: Mapping[int, Objectives]) -> int | None:
    """The trial id the rule picks (None: every trial regressed, or none completed)."""
    eligible = [
        (o.domain_gain_points, o.general_retention_percent, -i)
        for i, o in trials.items()
        if not o.significant_regression
    ]
    return -max(eligible)[2] if eligible else None
