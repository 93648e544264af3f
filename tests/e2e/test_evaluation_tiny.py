"""End-to-end evaluation on the real tiny family: the eval CLI, the build report agreement, and the
automatic evaluation at the end of a (short) `tunesmith train`.

The long acceptance runs (400-step domain-only vs mixed SFT) live in benchmarks/forgetting_acceptance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.data import general

pytestmark = pytest.mark.e2e


def _rows(comparison: dict, suite: str, metric: str = "exact_match") -> dict[str, dict]:
    return {r["category"]: r for r in comparison["rows"] if r["suite"] == suite and r["metric"] == metric}


def test_eval_cli_pre_vs_post_trained_agrees_with_the_build_report(tiny_family, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    argv = [
        "eval", "--model", "tiny:post-trained", "--baseline", "tiny:pre-trained",
        "--domain", "builtin:brindle/eval", "--out", str(out), "--format", "json",
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    comparison = report["comparisons"][0]
    general_rows = _rows(comparison, "general")
    built = tiny_family.report["stages"]
    for category in general.CATEGORIES:  # same 60 held-out items per category, same scorer
        row = general_rows[category]
        assert row["items"] == len(general.sample(category, "eval", 60, seed=0, split="eval"))
        assert abs(row["after"] - built["post-trained"]["accuracy"][category]) <= 1 / 60 + 1e-9, category
        assert abs(row["before"] - built["pre-trained"]["accuracy"][category]) <= 1 / 60 + 1e-9, category
    overall = general_rows["overall"]
    assert overall["direction"] == "gain" and overall["ci_low"] > 0.5
    assert _rows(comparison, "domain")["overall"]["after"] < 0.05  # Brindle is never seen
    assert "no significant regression" in report["verdict"] and "(improved)" in report["verdict"]
    text_ppl = [c["suites"]["general"]["perplexity"]["general_text"] for c in report["checkpoints"]]
    assert 1.0 < text_ppl[0] < 3.0  # pre-trained: a character-level model on its own kind of prose
    assert text_ppl[1] > 10 * text_ppl[0]  # post-trained saw chat only (assistant-token loss): prose is lost
    assert (out / "forgetting.csv").read_text().count("\n") == 1 + len(comparison["rows"])


def test_train_ends_with_the_forgetting_report(tiny_family, tmp_path, capsys) -> None:
    recipe = {
        "name": "e2e-eval",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {"lr": 3e-3, "max_steps": 40, "val_check_interval": 20},
                "monitoring": {"enabled": False},  # measure the forgetting, don't roll it back
            }
        ],
        "evaluation": {"domain": "builtin:brindle/eval", "general_items_per_category": 20},
        "acknowledge": {
            "customer-share-far-from-50@sft": "short e2e run: domain-only on purpose",
            "full-rank-without-lora@sft": "test",
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    run = tmp_path / "runs" / "e2e-eval"
    report = json.loads((run / "eval" / "evaluation.json").read_text())
    assert [c["label"] for c in report["checkpoints"]] == ["start (tiny:post-trained)", "e2e-eval/sft"]
    comparison = report["comparisons"][0]
    assert f"eval: {report['verdict']}" in printed
    general_rows, domain_rows = _rows(comparison, "general"), _rows(comparison, "domain")
    assert general_rows["overall"]["items"] == sum(
        len(general.sample(c, "eval", 20, seed=0, split="eval")) for c in general.CATEGORIES
    )
    # 40 domain-only steps at 3e-3: general skill goes down, the verdict names it
    assert general_rows["overall"]["change"] < 0
    if general_rows["overall"]["direction"] == "drop":
        assert "significant regression" in report["verdict"]
    assert domain_rows["overall"]["after"] >= domain_rows["overall"]["before"]
    assert (
        Path(run / "eval" / "forgetting.csv").is_file() and Path(run / "eval" / "predictions.jsonl").is_file()
    )

    capsys.readouterr()
    assert main(["eval", "--model", str(run / "sft"), "--format", "json"]) == 0  # defaults from the run
    again = json.loads(capsys.readouterr().out)
    assert again["verdict"] == report["verdict"]
    assert all(s["cached"] for c in again["checkpoints"] for s in c["suites"].values())
