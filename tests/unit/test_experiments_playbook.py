"""The playbook's table from arm records (no training): every claim gets a row, the pairwise comparisons
pair the arms' items, missing arms make their claims inconclusive, and the files are written whole."""

from __future__ import annotations

import json

from tunesmith.experiments import playbook
from tunesmith.experiments.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE


def _items(scores: list[float], suite: str) -> list[dict]:
    return [
        {
            "id": f"{suite}-{i}",
            "category": "brindle" if suite == "domain" else f"c{i % 2}",
            "scores": {"exact_match": s},
        }
        for i, s in enumerate(scores)
    ]


def _row(before: float, after: float, low: float, high: float) -> dict:
    return {
        "before": before, "after": after, "change": after - before, "ci_low": low, "ci_high": high,
        "retention": after / before if before else None,
    }  # fmt: skip


def _record(name: str, general: float, domain: float, events: dict | None = None, lr: float = 5e-3) -> dict:
    n = 40
    g = [1.0] * round(general * n) + [0.0] * (n - round(general * n))
    d = [1.0] * round(domain * n) + [0.0] * (n - round(domain * n))
    return {
        "arm": name, "what": name, "overrides": [], "lr": lr, "steps": 10, "planned_steps": 10,
        "events": events or {}, "stopped": None,
        "vs_start": {
            "general": _row(0.95, general, general - 0.95 - 0.03, general - 0.95 + 0.03),
            "domain": _row(0.0, domain, domain - 0.06, domain + 0.06),
            "reward": None,
        },
        "items": {"general": _items(g, "general"), "domain": _items(d, "domain")},
    }  # fmt: skip


def test_claims_table_from_records(tmp_path) -> None:
    records = {
        "lora-mix50": _record("lora-mix50", 0.95, 0.40),
        "lora-domain-only": _record("lora-domain-only", 0.30, 0.45),
        "lora-lr-x10": _record("lora-lr-x10", 0.5, 0.3, {"collapse": {"count": 2}}, lr=5e-2),
        "lora-2-epochs": _record("lora-2-epochs", 0.95, 0.40),
    }
    results = playbook.decide_claims(records)
    status = {r.claim: r.status for r in results}
    assert status[1] == HOLDS  # -65 points without mixing; the mix keeps 100% and gains 40
    assert status[3] == HOLDS and "lr 0.05: 2 (collapse x2)" in results[2].measured[0]
    # identical item scores: the paired change is exactly 0 with a zero-width CI
    assert status[4] == HOLDS and "+0.0 [+0.0, +0.0]" in results[3].measured[0]
    for claim in (2, 5, 6, 7):  # their arms have no records
        assert status[claim] == INCONCLUSIVE and "did not finish" in results[claim - 1].reason
    assert results[0].arms == ["lora-mix50", "lora-domain-only"]

    meta = {
        "quick": False,
        "seed": 0,
        "arms_run": 4,
        "arms_reused": 0,
        "seconds": 12.0,
        "arms": list(records.values()),
    }
    payload = playbook.write_table(tmp_path, results, meta)
    table = (tmp_path / "playbook.md").read_text()
    assert json.loads((tmp_path / "playbook.json").read_text()) == payload
    assert "items" not in payload["arms"][0]  # the per-item scores stay in the arms' own records
    assert table == playbook.render(payload) and "quick" not in table
    for claim in range(1, 8):
        assert f"\n| {claim} | " in table
    assert "| lora-lr-x10 | lora-lr-x10 | 10/10 | collapse x2 |" in table


def test_two_epochs_that_help_the_domain_contradict_claim_4() -> None:
    records = {
        "lora-mix50": _record("lora-mix50", 0.95, 0.40),
        "lora-2-epochs": _record("lora-2-epochs", 0.95, 0.80),
    }
    result = playbook.decide_claims(records)[3]
    assert result.status == DOES_NOT_HOLD and "the domain does not gain: no" in result.reason


def test_every_arm_is_planned_from_its_base_recipe(tmp_path) -> None:
    setup = playbook.Setup(tmp_path, seed=3, quick=True)
    setup.write_recipes()
    arms = playbook.arms(playbook.QUICK_EPOCHS)
    assert len({a.name for a in arms}) == len(arms)
    served = {claim for arm in arms for claim in arm.claims}
    assert served == set(range(1, 8))
    after = next(a for a in arms if a.after)
    assert any(o.startswith("model=") and "lora-mix50" in o for o in setup.overrides(after))
    steps, units = playbook.planned_work(setup, next(a for a in arms if a.name == "lora-2-epochs"))
    base_steps, base_units = playbook.planned_work(setup, arms[0])
    assert steps >= 2 * base_steps - 1 and units == steps * 8
