"""`tunesmith experiments playbook --quick` on the real tiny family: the arms train through the pipeline,
the table (markdown + JSON) has a row for every claim, and a second call resumes without retraining.
Two arms keep it short (each is a real `train` + evaluation); the full set is benchmarks/RESULTS.md's
playbook section."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main
from tunesmith.experiments.playbook import ARM_RECORD

pytestmark = pytest.mark.e2e

ARMS = "lora-mix50,lora-lr-x10"


def test_quick_playbook_writes_every_claim_and_resumes(tiny_family, tmp_path, capsys) -> None:
    out = tmp_path / "playbook"
    assert main(["experiments", "playbook", "--quick", "--quiet", "--out", str(out), "--arms", ARMS]) == 0
    printed = capsys.readouterr().out
    payload = json.loads((out / "playbook.json").read_text())
    table = (out / "playbook.md").read_text()
    assert printed.endswith(table) and "quick: not evidence" in table
    assert [c["claim"] for c in payload["claims"]] == [1, 2, 3, 4, 5, 6, 7]
    for claim in payload["claims"]:
        assert f"| {claim['claim']} | " in table
        assert claim["status"] in {"holds", "does not hold", "inconclusive"}
    assert payload["quick"] is True and payload["arms_run"] == 2 and payload["arms_reused"] == 0
    by_arm = {a["arm"]: a for a in payload["arms"]}
    assert set(by_arm) == {"lora-mix50", "lora-lr-x10"}
    mixed = by_arm["lora-mix50"]
    assert mixed["steps"] == mixed["planned_steps"] >= 1
    assert mixed["vs_start"]["general"]["items"] == 10  # 2 per category x 5, the quick evaluation
    assert (out / "lora-mix50" / "eval" / "evaluation.json").exists()
    # claim 3 is decided from its two arms; the claims whose arms did not run say so
    lr_claim = payload["claims"][2]
    assert "lr 0.05" in lr_claim["measured"][0] and "lr 0.005" in lr_claim["measured"][0]
    assert (
        payload["claims"][4]["status"] == "inconclusive"
        and "did not finish" in payload["claims"][4]["reason"]
    )

    metrics = out / "lora-mix50" / "sft" / "metrics.jsonl"
    stamp = metrics.stat().st_mtime_ns, (out / "lora-mix50" / ARM_RECORD).stat().st_mtime_ns
    assert main(["experiments", "playbook", "--quick", "--quiet", "--out", str(out), "--arms", ARMS]) == 0
    again = json.loads((out / "playbook.json").read_text())
    assert again["arms_run"] == 0 and again["arms_reused"] == 2
    assert (metrics.stat().st_mtime_ns, (out / "lora-mix50" / ARM_RECORD).stat().st_mtime_ns) == stamp
    assert again["claims"] == payload["claims"]
    capsys.readouterr()

    # the same folder with other settings is refused, not mixed in; an unknown arm is named
    assert main(["experiments", "playbook", "--quiet", "--out", str(out), "--arms", ARMS]) == 2
    assert "made with seed 0 and --quick" in capsys.readouterr().err
    assert main(["experiments", "playbook", "--quick", "--out", str(out), "--arms", "lora-mix5"]) == 2
    assert "no such arm" in capsys.readouterr().err
