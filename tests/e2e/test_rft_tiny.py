"""The RFT readiness probe on the real tiny family: "do SFT first" on the post-trained checkpoint (it has
never seen the demo domain), "ready" after a short domain SFT stage. The RFT run itself (SFT -> probe -> GRPO
-> evaluation) is benchmarks/rft_acceptance.py (about 5 minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PROBE = [
    "--data",
    "builtin:brindle/rft",
    "--reward",
    "builtin:brindle",
    "--prompts",
    "48",
    "--format",
    "json",
]


def _report(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_probe_says_do_sft_first_on_the_post_trained_checkpoint(tiny_family, capsys) -> None:
    assert main(["probe", "--model", "tiny:post-trained", *PROBE]) == 1
    report = _report(capsys)
    assert report["samples"] == 48 * 8
    assert report["positive_rate"] < 0.05 and report["verdict"] == "sft_first"


def test_probe_says_ready_after_a_short_domain_sft_stage(tiny_family, tmp_path, capsys) -> None:
    recipe = yaml.safe_load((REPO / "recipes" / "tiny-sft-rft.yaml").read_text())
    recipe["stages"] = recipe["stages"][:1]  # the SFT stage alone (100 LoRA steps, 50% general mix)
    recipe.pop("acknowledge")  # it names the rft stage
    recipe["output_dir"] = str(tmp_path / "runs")
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet", "--no-eval"]) == 0
    capsys.readouterr()
    best = tmp_path / "runs" / recipe["name"] / "sft" / "best"
    assert main(["probe", "--model", str(best), *PROBE]) == 0
    report = _report(capsys)
    assert 0.05 < report["positive_rate"] < 0.95 and report["verdict"] == "ready"
    assert report["useful_group_share"] > 0.3  # most groups carry a learning signal
