"""`tunesmith demo` end to end on the shipped tiny family, shrunk with `--quick` (a few steps per stage).

At that size the mixed SFT checkpoint earns no Brindle reward, so the readiness probe refuses RFT: the demo
must report that as a finding, not fail. The full-size demo's numbers are in benchmarks/RESULTS.md."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main

pytestmark = pytest.mark.e2e


def test_quick_demo_runs_both_arms_reports_the_probe_and_resumes(tiny_family, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert [row["arm"] for row in summary["rows"]][:3] == ["start", "domain-only", "mixed-rft"]
    assert summary["quick"] is True
    assert summary["probe"]["verdict"] != "ready"  # 4 SFT steps teach nothing: "do SFT first"
    assert not (out / "mixed-rft" / "rft" / "result.json").exists()
    text = (out / "summary.md").read_text()
    assert "not evidence" in text and "readiness probe before RFT" in text
    assert "SFT, domain data only" in text and "SFT, 50% general mixed in" in text
    assert captured.out.strip() == text.strip()
    assert captured.err == ""  # the runs' own output went to the log
    assert "readiness probe says" in (out / "demo.log").read_text()

    # a second call reuses both finished runs: nothing is trained or evaluated again
    before = {p: p.stat().st_mtime_ns for p in out.rglob("evaluation.json")}
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("evaluation.json")} == before


def test_summary_tells_the_story_with_numbers() -> None:
    from tunesmith.experiments.demo import render

    def row(arm, label, domain, general, low=None, high=None, significant=False):
        general_row = None
        if low is not None:
            general_row = {
                "items": 150,
                "ci_low": low,
                "ci_high": high,
                "significant": significant,
                "direction": "drop" if significant else "none",
            }
        return {"arm": arm, "label": label, "domain": domain, "general": general, "general_row": general_row}

    summary = {
        "seed": 0,
        "seconds": 300.0,
        "rows": [
            row("start", "start (tiny:post-trained)", 0.0, 96.0),
            row("domain-only", "domain-only/sft", 72.0, 5.0, -0.95, -0.86, True),
            row("mixed-rft", "mixed-rft/sft", 60.0, 95.3, -0.03, 0.02),
            row("mixed-rft", "mixed-rft/rft", 68.0, 94.7, -0.04, 0.01),
        ],
        "probe": {"verdict": "ready", "verdict_text": "ready", "positive_rate": 0.52, "samples": 512},
        "events": {"domain-only": ["sft: forgetting x3 (first at step 15)"], "mixed-rft": []},
        "verdicts": {"domain-only": "significant regression", "mixed-rft": "no significant regression"},
        "reports": {},
    }
    text = render(summary, __import__("pathlib").Path("runs/demo"))
    assert "+72.0" in text and "lost: a significant drop" in text
    assert "+60.0" in text and "kept: no significant drop" in text
    assert "+8.0 over SFT" in text  # what RFT added on top of the mixed SFT
    assert (
        "mixed vs domain-only SFT: general 95.3 vs 5.0 (+90.3 points), Brindle 60.0 vs 72.0 (-12.0)" in text
    )
    assert "52% of 512 samples" in text
    assert "domain-only: sft: forgetting x3" in text and "mixed-rft: none" in text


def test_the_eta_ignores_the_start_up_and_the_first_step() -> None:
    """The bar's rate is measured from the end of a stage's first step, not from the demo's start: 22 s of
    model loading and a slow first step must not read as hours to go (a fresh clone's demo showed 8:19:46
    first), and the first step still counts in the progress."""
    import io

    from tunesmith.experiments.demo import _Progress

    now = [0.0]
    progress = _Progress(1400, io.StringIO(), quiet=False)
    progress.bar._time = lambda: now[0]
    progress.bar.start_t = progress.bar.last_print_t = 0.0
    now[0] = 21.0  # imports, planning, the model load
    progress.training_begins()
    now[0] = 23.0  # the first step, slow
    progress.advance(1)
    assert progress.bar.n == 1 and progress.bar.format_dict["rate"] is None  # counted, not timed
    now[0] = 23.3
    progress.advance(1)
    remaining = (1400 - 2) / progress.bar.format_dict["rate"]
    assert 0.2 * 1398 < remaining < 0.4 * 1398  # ~7 min, not 8 h
    assert progress.bar.format_dict["elapsed"] == 23.3  # the elapsed time still counts the start-up
    progress.close()
