"""End-to-end: the real tiny family, as shipped in the package.

Acceptance of the embedded-world issue, measured on the held-out split (build_report.json):
post-trained >= 0.90 mean exact match with no category below 0.75; pre-trained < 0.20 when prompted in
chat form; mid-trained in between; Brindle (never seen) < 0.05 for every checkpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tunesmith.data import general

pytestmark = pytest.mark.e2e


def _accuracy(tiny_family, stage: str) -> dict[str, float]:
    return tiny_family.report["stages"][stage]["accuracy"]


def test_post_trained_follows_instructions(tiny_family) -> None:
    accuracy = _accuracy(tiny_family, "post-trained")
    assert accuracy["general_mean"] >= 0.90
    assert min(accuracy[c] for c in general.CATEGORIES) >= 0.75


def test_pre_trained_does_not_follow_the_chat_format(tiny_family) -> None:
    assert _accuracy(tiny_family, "pre-trained")["general_mean"] < 0.20


def test_mid_trained_is_in_between(tiny_family) -> None:
    pre, mid, post = (_accuracy(tiny_family, s)["general_mean"] for s in general_stages())
    assert pre < mid < post


def test_no_checkpoint_knows_the_domain(tiny_family) -> None:
    for stage in general_stages():
        assert _accuracy(tiny_family, stage)["brindle"] < 0.05, stage


def test_reloaded_checkpoint_reproduces_the_report(tiny_family) -> None:
    from tunesmith.models.loading import load_model, load_tokenizer
    from tunesmith.models.tiny import measure

    model, tokenizer = load_model("tiny:post-trained"), load_tokenizer("tiny:post-trained")
    measured, reported = measure(model, tokenizer), _accuracy(tiny_family, "post-trained")
    for key, value in reported.items():  # same weights, same greedy decoding (thread count may differ)
        assert abs(measured[key] - value) <= 0.02, key


def test_the_catalog_names_the_shipped_family(tiny_family, tmp_path) -> None:
    from tunesmith.models import tiny

    assert tiny_family.folder == tiny.shipped_dir()
    env = {**os.environ, "TUNESMITH_HOME": str(tmp_path)}  # an empty home: nothing built there
    listing = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "models", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(tiny.shipped_dir() / "post-trained") in listing and "missing" in listing


def test_models_build_reuses_a_rebuild_and_compares_it_with_the_shipped_family(tiny_family, tmp_path) -> None:
    # a rebuild takes ~12 minutes on 2 cores (benchmarks/build_tiny.py measures one against the shipped
    # family); here a copy of the shipped family stands in for a finished rebuild in TUNESMITH_HOME
    shutil.copytree(tiny_family.folder, tmp_path / "models" / "tiny")
    env = {**os.environ, "TUNESMITH_HOME": str(tmp_path)}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "models", "build", "tiny", "--quiet"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert time.perf_counter() - started < 60  # mostly interpreter + torch import: nothing was trained
    assert "reused the rebuilt tiny family" in out.stdout
    assert "against the shipped family" in out.stdout
    post = [
        line
        for line in out.stdout.splitlines()
        if line.strip().startswith("post-trained") and "shipped" in line
    ]
    assert post and "(+0.0 pts)" in post[0], out.stdout
    assert str(tmp_path / "models" / "tiny" / "post-trained") in out.stdout


def test_this_code_still_builds_the_shipped_family(tiny_family) -> None:
    """The first steps of every stage, re-run from the shipped checkpoints with the build's seed and thread
    count, give the losses the build recorded: same data, schedule, initialisation and model code."""
    from tunesmith.models import tiny

    replayed = tiny.replay_prefix(tiny_family.folder)
    for stage, stats in tiny_family.report["stages"].items():
        recorded = stats["first_losses"]
        assert len(replayed[stage]) == len(recorded) == tiny.FIRST_LOSSES, stage
        gaps = [abs(a - b) for a, b in zip(replayed[stage], recorded, strict=True)]
        assert max(gaps) < 5e-3, (stage, recorded[:5], replayed[stage][:5])


def test_family_size_and_build_record(tiny_family) -> None:
    # build time is a benchmark (benchmarks/build_tiny.py), not a timed test; here: what was built
    report = tiny_family.report
    assert 1.0e6 < report["params"] < 1.1e6
    assert report["threads"] >= 1 and report["build_seconds"] > 0


def general_stages() -> tuple[str, ...]:
    return ("pre-trained", "mid-trained", "post-trained")
