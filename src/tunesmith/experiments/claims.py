"""The playbook's claims as decision rules over measured numbers (pure: plain values in, a verdict out).

Each claim is decided from the arms' evaluations (`evaluation.forgetting`'s paired bootstrap: a change, its
95% CI, significant when the CI excludes 0). A claim is made of checks; each check is True (the numbers
support it), False (the numbers contradict it) or None (the CI is too wide to tell). A claim *holds* when
every check is True, *does not hold* when any check is False, and is *inconclusive* otherwise — with the
reason. The rules are fixed here, before any run: they are never tuned to the result.

Scores are 0-1 (exact match, mean reward); thresholds are in the same unit (0.05 = 5 points).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

INSTABILITY_DETECTORS = (
    "non_finite",
    "loss_spike",
    "spike_frequency",
    "grad_norm_explosion",
    "divergence",
    "forgetting",
    "collapse",
    "kl_drift",
)
"""The detectors whose events count as "training destabilized" (claim 3): not plateau or overfitting."""

LOSES_GENERAL = 0.05
"""Claim 1: domain-only SFT "loses general ability" = a significant drop of more than 5 points."""
KEEPS_GENERAL = 0.95
"""Claim 1: mixing "keeps it" = >= 95% of general accuracy retained, no significant drop (the forgetting
acceptance's bar, benchmarks/RESULTS.md)."""
DOMAIN_FLAT = 0.10
"""Claim 2: the domain score "stays roughly flat" = its change between the 10% and 75% arms is within 10
points."""
EPOCH_GAIN = 0.05
"""Claim 4: "two epochs do not help" is shown when the CI rules out a domain gain of 5 points."""
LITTLE = 0.05
"""Claim 5: RFT "learns little" = the CI of the reward change rules out a 5-point gain; "near zero" = the
starting reward is below 5 points."""
MATCHED_DOMAIN = 0.10
"""Claim 6: a full-rank arm matches LoRA's domain gain when their domain scores are within 10 points."""
LORA_ADVANTAGE = 0.02
"""Claim 6: "LoRA forgets less" is contradicted when the CI rules out a 2-point general advantage."""
LOW_BASELINE = 0.20
"""Claim 7: the baseline is "low" when the starting domain score is below 20 points."""


@dataclass(frozen=True)
class Change:
    """A paired before -> after change with its 95% CI (0-1), as the forgetting table reports it."""

    before: float
    after: float
    change: float
    ci_low: float
    ci_high: float
    retention: float | None = None

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Change:
        return cls(
            float(row["before"]),
            float(row["after"]),
            float(row["change"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
            row.get("retention"),
        )

    def text(self) -> str:
        """`93.6 -> 92.9, -0.7 [-3.0, +1.3]` (points)."""
        p = 100
        return (
            f"{p * self.before:.1f} -> {p * self.after:.1f}, {p * self.change:+.1f} "
            f"[{p * self.ci_low:+.1f}, {p * self.ci_high:+.1f}]"
        )


@dataclass(frozen=True)
class Check:
    what: str
    outcome: bool | None
    numbers: str

    def line(self) -> str:
        mark = {True: "yes", False: "no", None: "unresolved"}[self.outcome]
        return f"{self.what}: {mark} ({self.numbers})"


@dataclass
class ClaimResult:
    """One row of the playbook table."""

    claim: int
    statement: str
    expected: str
    rule: str
    status: str
    measured: list[str] = field(default_factory=list)
    reason: str = ""
    arms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(checks: Sequence[Check]) -> tuple[str, str]:
    """(status, reason) from the checks: any False -> does not hold, all True -> holds, else inconclusive."""
    failed = [c for c in checks if c.outcome is False]
    open_ = [c for c in checks if c.outcome is None]
    if failed:
        return DOES_NOT_HOLD, "; ".join(f"{c.what}: no" for c in failed)
    if open_:
        return INCONCLUSIVE, "; ".join(f"{c.what}: the CI is too wide to tell ({c.numbers})" for c in open_)
    return HOLDS, "every check holds"


def _tri(yes: bool, no: bool) -> bool | None:
    """A check's outcome: True when the numbers show it, False when they contradict it, else None."""
    return True if yes else False if no else None


def _result(
    claim: int,
    spec: tuple[str, str, str],
    checks: Sequence[Check],
    *,
    before: Sequence[str] = (),
    after: Sequence[str] = (),
    arms: Sequence[str] = (),
) -> ClaimResult:
    """The claim's row from its checks (`decide`); `measured` is `before`, the checks' lines, `after`."""
    status, reason = decide(checks)
    measured = [*before, *(c.line() for c in checks), *after]
    return ClaimResult(claim, *spec, status, measured, reason, list(arms))


def _inconclusive(
    claim: int, spec: tuple[str, str, str], why: str, measured: Sequence[str] = (), arms: Sequence[str] = ()
) -> ClaimResult:
    return ClaimResult(claim, *spec, INCONCLUSIVE, list(measured), why, list(arms))


def _gain(change: Change, *, at_least: float = 0.0) -> bool | None:
    """A significant rise above `at_least`: True; the CI entirely at or below it: False; else None."""
    return _tri(change.ci_low > at_least, change.ci_high <= at_least)


# --- the claims ------------------------------------------------------------------------------------------
CLAIM_1 = (
    "domain-only SFT loses general ability; ~50% general mixing keeps it while gaining the domain",
    "domain-only: general down; 50% mix: general kept, domain up",
    f"domain-only general change < -{100 * LOSES_GENERAL:g} points and significant; 50% mix retains >= "
    f"{100 * KEEPS_GENERAL:g}% of general accuracy with no significant drop, and its domain gain is significant",
)


def claim_mixing(domain_only: Mapping[str, Change] | None, mixed: Mapping[str, Change] | None) -> ClaimResult:
    """Claim 1. Arms: `{"general": Change, "domain": Change}` against the start, for each arm."""
    if domain_only is None or mixed is None:
        return _inconclusive(1, CLAIM_1, "an arm did not finish with an evaluation")
    g0, g1, d1 = domain_only["general"], mixed["general"], mixed["domain"]
    loses = _tri(g0.ci_high < 0 and g0.change < -LOSES_GENERAL, g0.ci_low > -LOSES_GENERAL)
    retention = g1.retention if g1.retention is not None else 1.0
    keeps = _tri(retention >= KEEPS_GENERAL and g1.ci_high >= 0, retention < KEEPS_GENERAL and g1.ci_high < 0)
    checks = [
        Check("domain-only loses general ability", loses, f"general {g0.text()}"),
        Check("the 50% mix keeps it", keeps, f"general {g1.text()}, retained {100 * retention:.1f}%"),
        Check("the 50% mix gains the domain", _gain(d1), f"domain {d1.text()}"),
    ]
    return _result(1, CLAIM_1, checks)


CLAIM_2 = (
    "general ability rises with the general share (10/25/50/75%) while the domain score stays roughly flat",
    "general up from 10% to 75%; domain within +-10 points",
    "paired bootstrap, the 75% arm against the 10% arm on the same items: the general change is significant "
    f"and positive; the domain change lies within +-{100 * DOMAIN_FLAT:g} points (its CI)",
)


def claim_share(
    general_75_vs_10: Change | None,
    domain_75_vs_10: Change | None,
    general_by_share: Mapping[int, float],
    domain_by_share: Mapping[int, float],
) -> ClaimResult:
    """Claim 2. `*_75_vs_10`: the 75%-share arm's scores against the 10%-share arm's (paired, same items);
    `*_by_share`: general share (percent) -> score, for the table."""
    if general_75_vs_10 is None or domain_75_vs_10 is None:
        return _inconclusive(2, CLAIM_2, "the 10% or 75% arm did not finish with an evaluation")
    d = domain_75_vs_10
    flat = _tri(
        d.ci_low >= -DOMAIN_FLAT and d.ci_high <= DOMAIN_FLAT,
        d.ci_high < -DOMAIN_FLAT or d.ci_low > DOMAIN_FLAT,
    )
    by_share = ", ".join(
        f"{share}%: general {100 * general_by_share[share]:.1f} / domain {100 * domain_by_share[share]:.1f}"
        for share in sorted(general_by_share)
        if share in domain_by_share
    )
    checks = [
        Check("general rises from 10% to 75%", _gain(general_75_vs_10), f"{general_75_vs_10.text()}"),
        Check("the domain stays within 10 points", flat, f"{d.text()}"),
    ]
    return _result(2, CLAIM_2, checks, after=[by_share])


CLAIM_3 = (
    "leaving the default LR by x10 while mixing destabilizes training (monitoring events fire)",
    "x10 arm: instability events; reference arm: fewer",
    "the x10 arm logs >= 1 event of an instability detector (" + ", ".join(INSTABILITY_DETECTORS) + ") and "
    "more of them than the same recipe at its reference LR",
)


def instability_events(by_detector: Mapping[str, Mapping[str, Any]]) -> int:
    """Events of the instability detectors in a stage's `events.by_detector` summary."""
    return sum(int(v.get("count", 0)) for k, v in by_detector.items() if k in INSTABILITY_DETECTORS)


def claim_lr(reference: Mapping[str, Any] | None, raised: Mapping[str, Any] | None) -> ClaimResult:
    """Claim 3. Arms: `{"lr": float, "by_detector": {...}, "stopped": str | None}`. Counts, not a sample:
    no CI (one seed; the run is deterministic per seed)."""
    if reference is None or raised is None:
        return _inconclusive(3, CLAIM_3, "an arm did not run")
    n_ref, n_raised = instability_events(reference["by_detector"]), instability_events(raised["by_detector"])

    def names(arm: Mapping[str, Any]) -> str:
        found = [f"{k} x{v['count']}" for k, v in arm["by_detector"].items() if k in INSTABILITY_DETECTORS]
        stop = f"; stopped: {arm['stopped']}" if arm.get("stopped") else ""
        return (", ".join(found) or "none") + stop

    checks = [
        Check(
            "events fire at x10 and more than at the reference LR",
            n_raised >= 1 and n_raised > n_ref,
            f"lr {raised['lr']:g}: {n_raised} ({names(raised)}); lr {reference['lr']:g}: {n_ref} "
            f"({names(reference)})",
        )
    ]
    return _result(3, CLAIM_3, checks)


CLAIM_4 = (
    "two epochs instead of one on narrow data do not help and can hurt both scores "
    "(the article's example: 63.54% -> 61.42%)",
    "2 epochs vs 1: domain not better, general not better",
    "paired bootstrap, the 2-epoch arm against the 1-epoch arm: no significant gain in general accuracy, and "
    f"the domain change's CI rules out a gain of {100 * EPOCH_GAIN:g} points (a significant gain in either: "
    "does not hold)",
)


def claim_epochs(domain_2_vs_1: Change | None, general_2_vs_1: Change | None) -> ClaimResult:
    """Claim 4: the 2-epoch arm against the 1-epoch arm (paired, same items)."""
    if domain_2_vs_1 is None or general_2_vs_1 is None:
        return _inconclusive(4, CLAIM_4, "an arm did not finish with an evaluation")
    d, g = domain_2_vs_1, general_2_vs_1
    checks = [
        Check(
            "the domain does not gain", _tri(d.ci_low <= 0 and d.ci_high < EPOCH_GAIN, d.ci_low > 0), d.text()
        ),
        Check("general does not gain", g.ci_low <= 0, g.text()),
    ]
    both = d.ci_high < 0 and g.ci_high < 0
    hurt = ["two epochs hurt both scores (both drops significant)"] if both else []
    return _result(4, CLAIM_4, checks, after=hurt)


CLAIM_5 = (
    "RFT from a near-zero baseline learns little; after SFT it improves the reward",
    "from the start: reward ~flat; after SFT: reward up",
    f"held-out domain reward, each arm's best against its own start: from a start below {100 * LITTLE:g} points "
    f"the CI rules out a {100 * LITTLE:g}-point gain; after SFT the gain is significant",
)


def claim_rft(from_start: Change | None, after_sft: Change | None) -> ClaimResult:
    """Claim 5: the domain reward change of RFT from the post-trained start and from the SFT checkpoint."""
    if from_start is None or after_sft is None:
        return _inconclusive(5, CLAIM_5, "an RFT arm did not finish with an evaluation")
    if from_start.before >= LITTLE:
        why = f"the baseline reward {100 * from_start.before:.1f} is not near zero (< {100 * LITTLE:g})"
        return _inconclusive(5, CLAIM_5, why, [f"start reward {from_start.text()}"])
    little = _tri(from_start.ci_high < LITTLE, from_start.ci_low > LITTLE)
    checks = [
        Check("RFT from the near-zero start learns little", little, f"reward {from_start.text()}"),
        Check("RFT after SFT improves the reward", _gain(after_sft), f"reward {after_sft.text()}"),
    ]
    return _result(5, CLAIM_5, checks)


CLAIM_6 = (
    "LoRA forgets less than full rank at a matched domain gain ([biderman-2024])",
    "LoRA general > full-rank general at the same domain score",
    f"the full-rank arm whose domain score is closest to LoRA's, within {100 * MATCHED_DOMAIN:g} points "
    "(else inconclusive); paired bootstrap of LoRA's general accuracy against it: significant and positive "
    f"holds; the CI below +{100 * LORA_ADVANTAGE:g} points does not hold",
)


def claim_lora(
    lora_domain: float | None,
    full_domain: Mapping[str, float],
    lora_vs_full_general: Callable[[str], Change],
) -> ClaimResult:
    """Claim 6. `full_domain`: full-rank arm -> its domain score; `lora_vs_full_general(arm)`: LoRA's general
    scores against that arm's (paired)."""
    if lora_domain is None or not full_domain:
        return _inconclusive(6, CLAIM_6, "the LoRA or the full-rank arms did not finish")
    arm = min(full_domain, key=lambda a: abs(full_domain[a] - lora_domain))
    gap = full_domain[arm] - lora_domain
    scores = ", ".join(f"{a} {100 * v:.1f}" for a, v in full_domain.items())
    match = f"domain: LoRA {100 * lora_domain:.1f}; full rank {scores}"
    if abs(gap) > MATCHED_DOMAIN:
        why = (
            f"no full-rank arm within {100 * MATCHED_DOMAIN:g} points of LoRA's domain score (closest: {arm}, "
            f"{100 * gap:+.1f})"
        )
        return _inconclusive(6, CLAIM_6, why, [match], [arm])
    g = lora_vs_full_general(arm)
    less = _tri(g.ci_low > 0, g.ci_high < LORA_ADVANTAGE)
    checks = [Check(f"LoRA forgets less than {arm}", less, f"general, {arm} -> LoRA: {g.text()}")]
    return _result(6, CLAIM_6, checks, before=[match], arms=[arm])


CLAIM_7 = (
    "when the baseline is low, a higher LoRA rank helps more than a higher alpha",
    "rank x4 gains more domain than alpha x4",
    f"start domain score < {100 * LOW_BASELINE:g} points; paired bootstrap of the rank-x4 arm's domain score "
    "against the alpha-x4 arm's: significant and positive holds, significant and negative does not",
)


def claim_rank(
    baseline: float | None, rank_vs_alpha: Change | None, gains: Mapping[str, float]
) -> ClaimResult:
    """Claim 7. `rank_vs_alpha`: the rank-x4 arm's domain scores against the alpha-x4 arm's (paired);
    `gains`: arm -> domain score, for the table."""
    if baseline is None or rank_vs_alpha is None:
        return _inconclusive(7, CLAIM_7, "an arm did not finish with an evaluation")
    scores = ", ".join(f"{a} {100 * v:.1f}" for a, v in gains.items())
    if baseline >= LOW_BASELINE:
        why = f"the baseline {100 * baseline:.1f} is not low (< {100 * LOW_BASELINE:g})"
        return _inconclusive(7, CLAIM_7, why, [scores])
    r = rank_vs_alpha
    outcome = _tri(r.ci_low > 0, r.ci_high < 0)
    checks = [Check("rank x4 beats alpha x4 on the domain", outcome, f"alpha x4 -> rank x4: {r.text()}")]
    return _result(7, CLAIM_7, checks, before=[f"domain: {scores}"])
