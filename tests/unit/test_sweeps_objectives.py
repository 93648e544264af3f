"""The two objectives from an evaluation report, the Pareto front and the recommendation rule."""

from __future__ import annotations

import pytest

from tunesmith.errors import UserError
from tunesmith.sweeps.objectives import Objectives, objectives_from_evaluation, pareto_front, recommend


def _row(suite: str, category: str, before: float, after: float, direction: str = "same") -> dict:
    return {
        "suite": suite,
        "category": category,
        "before": before,
        "after": after,
        "change": after - before,
        "retention": after / before if before else None,
        "direction": direction,
    }


def _payload(rows: list[dict]) -> dict:
    return {"comparisons": [{"rows": [], "verdict": "earlier"}, {"rows": rows, "verdict": "last stage"}]}


def test_objectives_read_the_last_comparison() -> None:
    rows = [
        _row("general", "overall", 0.80, 0.76),
        _row("general", "math", 0.70, 0.50, "drop"),
        _row("domain", "overall", 0.10, 0.85, "gain"),
        _row("domain", "overall", 0.20, 0.90, "gain"),  # a secondary metric: the primary comes first
    ]
    o = objectives_from_evaluation(_payload(rows))
    assert o.domain_gain_points == pytest.approx(75.0)
    assert o.domain_score == pytest.approx(85.0)
    assert o.general_retention_percent == pytest.approx(95.0)
    assert o.significant_regression  # a category dropped beyond noise
    assert o.verdict == "last stage"
    clean = objectives_from_evaluation(_payload(rows[:1] + rows[2:]))
    assert not clean.significant_regression
    with pytest.raises(UserError, match="no domain suite"):
        objectives_from_evaluation(_payload(rows[:2]))


def _o(gain: float, retention: float, regression: bool = False) -> Objectives:
    return Objectives(gain, gain, retention, retention, regression, "")


def test_pareto_front_and_the_rule() -> None:
    trials = {0: _o(40, 99), 1: _o(60, 90, True), 2: _o(50, 97), 3: _o(30, 98), 4: _o(50, 97)}
    assert pareto_front({n: o.values for n, o in trials.items()}) == [0, 1, 2, 4]
    # the highest gain without a significant regression (trial 1 regressed); ties -> lower trial number
    assert recommend(trials) == 2
    assert recommend({0: _o(60, 80, True)}) is None
