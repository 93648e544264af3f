"""The multi-turn readiness probe on the real tiny family: the post-trained checkpoint has never seen the
catalog protocol (`lookup:` then `answer:`), so its pass@k is 0 and the verdict is "do SFT first"."""

from __future__ import annotations

import pytest
import torch

from tunesmith.evaluation.environment_probe import model_policy, probe_environment
from tunesmith.evaluation.probe import ProbeSettings
from tunesmith.models.loading import load_model, load_tokenizer
from tunesmith.rewards.environments import BrindleCatalog, brindle_catalog_tasks

pytestmark = pytest.mark.e2e


def test_the_post_trained_tiny_model_needs_sft_before_the_catalog(tiny_family) -> None:
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny:post-trained"), load_tokenizer("tiny:post-trained")
    act = model_policy(model, tokenizer, temperature=1.0, max_new_tokens=24)
    report = probe_environment(
        BrindleCatalog,
        brindle_catalog_tasks(8, seed=3),
        act,
        settings=ProbeSettings(generations=4),
        max_turns=3,
    )
    assert report["samples"] == 32 and report["failed_samples"] == 0 and report["faults"] == {}
    assert report["pass_at_k"] <= 0.125 and report["verdict"] == "sft_first"
    assert 1 <= report["mean_turns"] <= 3
