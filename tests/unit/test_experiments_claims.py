"""The playbook claims' decision rules (`tunesmith.experiments.claims`) on synthetic numbers: each claim
holds, does not hold, and is inconclusive where its rule says so."""

from __future__ import annotations

import pytest

from tunesmith.experiments import claims
from tunesmith.experiments.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Change


def ch(change: float, low: float, high: float, before: float = 0.9, retention: float | None = None) -> Change:
    return Change(before, before + change, change, low, high, retention)


def test_change_is_significant_only_when_its_ci_excludes_zero() -> None:
    assert ch(-0.05, -0.08, -0.01).significant
    assert ch(0.05, 0.01, 0.09).significant
    assert not ch(-0.01, -0.03, 0.01).significant
    assert ch(-0.007, -0.03, 0.013, before=0.936).text() == "93.6 -> 92.9, -0.7 [-3.0, +1.3]"


def test_decide_combines_checks() -> None:
    yes, no, open_ = (claims.Check("a", True, ""), claims.Check("b", False, ""), claims.Check("c", None, "x"))
    assert claims.decide([yes, yes])[0] == HOLDS
    assert claims.decide([yes, open_])[0] == INCONCLUSIVE
    assert claims.decide([open_, no])[0] == DOES_NOT_HOLD  # a contradiction outweighs a wide CI
    assert "b: no" in claims.decide([no])[1]


@pytest.mark.parametrize(
    ("only_general", "mixed_general", "mixed_domain", "status"),
    [
        (ch(-0.70, -0.75, -0.65), ch(-0.01, -0.03, 0.01, retention=0.99), ch(0.88, 0.84, 0.92, 0.0), HOLDS),
        # the mix loses 7 points (93% retained, significant): the cure is not shown
        (
            ch(-0.70, -0.75, -0.65),
            ch(-0.07, -0.10, -0.03, retention=0.93),
            ch(0.39, 0.32, 0.46, 0.0),
            DOES_NOT_HOLD,
        ),
        # domain-only barely moves: its CI rules out a 5-point loss
        (
            ch(-0.01, -0.03, 0.01),
            ch(-0.01, -0.03, 0.01, retention=0.99),
            ch(0.5, 0.4, 0.6, 0.0),
            DOES_NOT_HOLD,
        ),
        # domain-only -4 [-8, -0]: significant, but whether it exceeds 5 points is unresolved
        (
            ch(-0.04, -0.08, -0.002),
            ch(-0.01, -0.03, 0.01, retention=0.99),
            ch(0.5, 0.4, 0.6, 0.0),
            INCONCLUSIVE,
        ),
        # the mix retains 96% but the drop is significant: neither kept nor clearly lost
        (
            ch(-0.70, -0.75, -0.65),
            ch(-0.04, -0.07, -0.01, retention=0.96),
            ch(0.5, 0.4, 0.6, 0.0),
            INCONCLUSIVE,
        ),
    ],
)
def test_claim_mixing(only_general, mixed_general, mixed_domain, status) -> None:
    result = claims.claim_mixing(
        {"general": only_general, "domain": ch(0.9, 0.85, 0.95, 0.0)},
        {"general": mixed_general, "domain": mixed_domain},
    )
    assert result.status == status, result
    assert result.claim == 1 and len(result.measured) == 3


def test_claim_mixing_without_its_arms_is_inconclusive() -> None:
    result = claims.claim_mixing(None, None)
    assert result.status == INCONCLUSIVE and "did not finish" in result.reason


@pytest.mark.parametrize(
    ("general", "domain", "status"),
    [
        (ch(0.08, 0.04, 0.12), ch(-0.03, -0.08, 0.02), HOLDS),
        (ch(-0.04, -0.07, -0.01), ch(-0.03, -0.08, 0.02), DOES_NOT_HOLD),  # general falls
        (ch(0.08, 0.04, 0.12), ch(-0.30, -0.36, -0.24), DOES_NOT_HOLD),  # the domain falls 30 points
        (ch(0.02, -0.01, 0.05), ch(-0.03, -0.08, 0.02), INCONCLUSIVE),  # a rise within noise
        (ch(0.08, 0.04, 0.12), ch(-0.09, -0.15, -0.03), INCONCLUSIVE),  # domain CI straddles -10
    ],
)
def test_claim_share(general, domain, status) -> None:
    result = claims.claim_share(general, domain, {10: 0.85, 75: 0.93}, {10: 0.40, 75: 0.37})
    assert result.status == status, result
    assert "10%: general 85.0 / domain 40.0" in result.measured[-1]


def test_claim_lr_counts_instability_events_only() -> None:
    reference = {"lr": 5e-3, "by_detector": {"plateau": {"count": 3}}, "stopped": None}
    raised = {
        "lr": 5e-2,
        "by_detector": {"collapse": {"count": 2}, "forgetting": {"count": 1}},
        "stopped": None,
    }
    assert claims.instability_events(reference["by_detector"]) == 0  # a plateau is not instability
    held = claims.claim_lr(reference, raised)
    assert held.status == HOLDS and "collapse x2" in held.measured[0]
    calm = {"lr": 5e-2, "by_detector": {"plateau": {"count": 5}}, "stopped": None}
    assert claims.claim_lr(reference, calm).status == DOES_NOT_HOLD
    # events at the reference LR too, as many as at x10: not shown to be the LR's doing
    same = {"lr": 5e-3, "by_detector": {"forgetting": {"count": 3}}, "stopped": None}
    assert claims.claim_lr(same, raised).status == DOES_NOT_HOLD


@pytest.mark.parametrize(
    ("domain", "general", "status"),
    [
        (ch(-0.02, -0.06, 0.02), ch(-0.01, -0.04, 0.02), HOLDS),  # rules out a 5-point domain gain
        (ch(-0.05, -0.09, -0.01), ch(-0.04, -0.07, -0.01), HOLDS),  # hurts both
        (ch(0.06, 0.02, 0.10), ch(-0.01, -0.04, 0.02), DOES_NOT_HOLD),  # a significant domain gain
        (ch(0.00, -0.03, 0.03), ch(0.04, 0.01, 0.07), DOES_NOT_HOLD),  # general gains
        (ch(0.03, -0.02, 0.08), ch(-0.01, -0.04, 0.02), INCONCLUSIVE),  # cannot rule out a 5-point gain
    ],
)
def test_claim_epochs(domain, general, status) -> None:
    result = claims.claim_epochs(domain, general)
    assert result.status == status, result
    assert ("hurt both" in " ".join(result.measured)) == (domain.ci_high < 0 and general.ci_high < 0)


@pytest.mark.parametrize(
    ("from_start", "after_sft", "status"),
    [
        (ch(0.0, 0.0, 0.0, before=0.0), ch(0.066, 0.02, 0.11, before=0.45), HOLDS),
        (ch(0.0, 0.0, 0.0, before=0.0), ch(0.01, -0.03, 0.05, before=0.45), INCONCLUSIVE),
        (ch(0.0, 0.0, 0.0, before=0.0), ch(-0.05, -0.09, -0.01, before=0.45), DOES_NOT_HOLD),
        (ch(0.12, 0.08, 0.16, before=0.01), ch(0.066, 0.02, 0.11, before=0.45), DOES_NOT_HOLD),
        (ch(0.05, 0.0, 0.1, before=0.2), ch(0.066, 0.02, 0.11, before=0.45), INCONCLUSIVE),  # not near zero
    ],
)
def test_claim_rft(from_start, after_sft, status) -> None:
    assert claims.claim_rft(from_start, after_sft).status == status


def test_claim_lora_matches_the_closest_full_rank_arm() -> None:
    seen = []

    def versus(arm: str) -> Change:
        seen.append(arm)
        return {"full-a": ch(0.05, 0.02, 0.08), "full-b": ch(-0.03, -0.06, 0.0)}[arm]

    held = claims.claim_lora(0.40, {"full-a": 0.43, "full-b": 0.70}, versus)
    assert held.status == HOLDS and seen == ["full-a"] and held.arms == ["full-a"]
    assert claims.claim_lora(0.72, {"full-a": 0.43, "full-b": 0.70}, versus).status == DOES_NOT_HOLD
    unmatched = claims.claim_lora(0.10, {"full-a": 0.43, "full-b": 0.70}, versus)
    assert unmatched.status == INCONCLUSIVE and "no full-rank arm within 10 points" in unmatched.reason
    wide = claims.claim_lora(0.40, {"full-a": 0.43}, lambda arm: ch(0.01, -0.02, 0.04))
    assert wide.status == INCONCLUSIVE


@pytest.mark.parametrize(
    ("baseline", "rank_vs_alpha", "status"),
    [
        (0.0, ch(0.10, 0.04, 0.16, before=0.3), HOLDS),
        (0.0, ch(-0.10, -0.16, -0.04, before=0.3), DOES_NOT_HOLD),
        (0.0, ch(0.02, -0.04, 0.08, before=0.3), INCONCLUSIVE),
        (0.5, ch(0.10, 0.04, 0.16, before=0.6), INCONCLUSIVE),  # the baseline is not low
    ],
)
def test_claim_rank(baseline, rank_vs_alpha, status) -> None:
    result = claims.claim_rank(baseline, rank_vs_alpha, {"r8 alpha16": 0.39, "r32 alpha64": 0.5})
    assert result.status == status
    assert "r32 alpha64 50.0" in result.measured[0]
