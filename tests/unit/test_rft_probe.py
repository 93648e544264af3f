"""The RFT readiness probe: statistics and verdicts (pure), and the real command on the micro model."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main
from tunesmith.evaluation.probe import ProbeSettings, histogram, render_report, summarize

S = ProbeSettings(generations=4)


def test_no_positive_reward_says_do_sft_first() -> None:
    stats = summarize([[0.0] * 4 for _ in range(20)], S)
    assert stats["positive_rate"] == 0.0 and stats["zero_variance_share"] == 1.0
    assert stats["verdict"] == "sft_first" and stats["verdict_text"] == "do SFT first"


def test_below_five_percent_positive_is_still_sft_first() -> None:
    # 3 positive samples of 80 = 3.75% < 5%
    groups = [[1.0, 0, 0, 0]] * 3 + [[0.0] * 4] * 17
    stats = summarize(groups, S)
    assert stats["positive_rate"] == pytest.approx(3 / 80)
    assert stats["verdict"] == "sft_first"


def test_almost_all_positive_says_rft_unnecessary() -> None:
    groups = [[1.0] * 4] * 19 + [[1.0, 1.0, 1.0, 0.0]]
    stats = summarize(groups, S)
    assert stats["positive_rate"] == pytest.approx(79 / 80)
    assert stats["verdict"] == "saturated"
    assert "not discriminative" in stats["verdict_text"]
    assert stats["full_score_rate"] == pytest.approx(79 / 80)


def test_mixed_groups_are_ready_with_the_useful_group_share() -> None:
    groups = [[1.0, 0, 1.0, 0]] * 5 + [[0.0] * 4] * 10 + [[1.0] * 4] * 5
    stats = summarize(groups, S)
    assert stats["positive_rate"] == pytest.approx(0.375)
    assert stats["useful_group_share"] == pytest.approx(0.25)
    assert stats["zero_variance_share"] == pytest.approx(0.75)
    assert stats["positives_per_group"] == {"0": 10, "2": 5, "4": 5}
    assert stats["verdict"] == "ready"


def test_in_band_but_no_group_varies_is_not_discriminative() -> None:
    groups = [[1.0] * 4] * 10 + [[0.0] * 4] * 10  # half the prompts always right, half always wrong
    stats = summarize(groups, S)
    assert stats["positive_rate"] == 0.5 and stats["useful_group_share"] == 0.0
    assert stats["verdict"] == "no_signal"


def test_threshold_defines_positive() -> None:
    groups = [[0.2, 0.2, 0.9, 0.9]] * 10
    assert summarize(groups, S)["positive_rate"] == 1.0
    assert summarize(groups, ProbeSettings(generations=4, positive_threshold=0.5))["positive_rate"] == 0.5


def test_histogram_counts_every_value() -> None:
    hist = histogram([0.0, 0.05, 0.5, 1.0, 1.0])
    assert sum(h["count"] for h in hist) == 5
    assert hist[0]["count"] == 2 and hist[-1]["count"] == 2 and hist[5]["count"] == 1


def test_render_report_names_the_verdict() -> None:
    stats = summarize([[1.0, 0, 0, 1.0]] * 8, S)
    report = {"model": "m", "reward": "r", "prompts": 8, "generations": 4, "seconds": 0.1, **stats}
    text = render_report(report)
    assert "verdict: ready" in text and "50.0% of samples" in text


def test_probe_command_on_the_micro_model(tmp_path, micro_model_dir, capsys) -> None:
    """The real command: samples the (random) micro model; a reward that is 1 for any completion is
    saturated (exit 1); a reward that never pays says do SFT first (exit 1)."""
    data = tmp_path / "prompts.jsonl"
    data.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}], "reference_answer": "x"}) + "\n"
            for i in range(6)
        )
    )
    module = tmp_path / "rewards_for_probe.py"
    module.write_text(
        "def always(completion, reference_answer, **kw):\n    return 1.0\n\n"
        "def never(completion, reference_answer, **kw):\n    return 0.0\n"
    )
    out = tmp_path / "probe.json"
    common = ["probe", "--model", str(micro_model_dir), "--data", str(data), "--prompts", "4"]
    common += ["--generations", "3", "--max-new-tokens", "4"]
    assert main([*common, "--reward", f"{module}:always", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["samples"] == 12 and report["positive_rate"] == 1.0 and report["verdict"] == "saturated"
    capsys.readouterr()
    assert main([*common, "--reward", f"{module}:never", "--format", "json"]) == 1
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{") :])
    assert report["positive_rate"] == 0.0 and report["verdict"] == "sft_first"


def test_the_probe_sizes_its_answers_to_the_task_not_512(stand_ins, tmp_path) -> None:
    from transformers import AutoTokenizer, Qwen3Config

    from tunesmith.evaluation.probe import default_max_new_tokens
    from tunesmith.models.stand_ins import SIZES

    model = str(stand_ins["qwen3"])
    rows = [{"prompt": [{"role": "user", "content": "q"}], "reference_answer": "Brindle tea, 12 brix"}]
    longest = len(
        AutoTokenizer.from_pretrained(model)("Brindle tea, 12 brix", add_special_tokens=False)["input_ids"]
    )
    tokens, why = default_max_new_tokens(model, rows)
    assert tokens == min(32, -(-3 * longest // 2) + 8) and "reference answers" in why
    assert default_max_new_tokens(model, [{"prompt": "q"}]) == (
        32,
        "no reference answers to size it from: the tiny-class RFT default",
    )
    Qwen3Config(**SIZES["0.5b"]).save_pretrained(tmp_path / "config-only")  # billion class, no references
    assert default_max_new_tokens(str(tmp_path / "config-only"), [{"prompt": "q"}])[0] == 2048
