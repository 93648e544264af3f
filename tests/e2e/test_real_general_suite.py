"""The real-model general suite on the real SmolLM2-135M-Instruct (`smollm2_path`), on a handful of items.

`tunesmith eval` picks the real bank for it (not the tiny world's terse items), answers by generation,
scores with `real.score` and measures the prose perplexity; the one measurement gives the same scores when
the monitor's probe calls it. Kept short for CI: 2 items per category.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from tunesmith.cli import main
from tunesmith.data.general import real
from tunesmith.evaluation import retention
from tunesmith.vocabulary import CATEGORIES

pytestmark = pytest.mark.e2e


def test_eval_of_a_real_model_uses_the_real_bank(smollm2_path, tmp_path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["eval", "--model", str(smollm2_path), "--suites", "general", "--items-per-category", "2",
             "--lm-eval", "none", "--no-cache", "--out", str(tmp_path), "--format", "json"]
        )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    (checkpoint,) = report["checkpoints"]
    general = checkpoint["suites"]["general"]
    assert set(general["summary"]) == {"score"}  # the bank's metric, not the tiny world's exact match
    assert set(general["summary"]["score"]["by_category"]) == set(CATEGORIES)
    prose = general["perplexity"]["prose"]
    assert 1.0 < prose < general["uniform_perplexity"] / 10  # real prose: far better than a uniform guess
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(CATEGORIES)
    assert all(row["prediction"].strip() for row in rows)  # it answered every item
    assert all(row["scores"]["score"] in (0.0, 1.0) for row in rows)


def test_the_probe_and_the_evaluation_measure_alike(smollm2_path) -> None:
    """The monitor's probe and the evaluation's suite call the same measurement: same items, same scores."""
    from tunesmith.models.loading import load_model, load_tokenizer
    from tunesmith.training.monitor import ForgettingProbe

    tokenizer = load_tokenizer(smollm2_path)
    model = load_model(smollm2_path, dtype=torch.float32)
    probe = ForgettingProbe(tokenizer, 1, None, model_ref=smollm2_path)
    assert probe.mode == "generate"
    result = probe.measure(model)
    suite = retention.measure(model, tokenizer, retention.general_items(smollm2_path, 1), batch_size=32)
    assert result["items"] == "".join("1" if v >= 1.0 else "0" for v in suite.values())
    # a fact every instruct model knows, in its own words ("The capital of France is Paris.")
    (france,) = [i for s in real.SPLITS for i in real.items(s, "knowledge") if "of France?" in i["prompt"]]
    items = [
        {"id": "france", "category": "knowledge", "messages": [{"role": "user", "content": france["prompt"]}],
         "reference": france["reference"], "checks": france["checks"], "max_new_tokens": 24, "item": france}
    ]  # fmt: skip
    (row,) = retention.measure(model, tokenizer, items).rows
    assert row["scores"]["score"] == 1.0, row["prediction"]
