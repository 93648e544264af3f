"""The RFT readiness probe: statistics and verdicts (pure), and the real command on the micro model (also
with a reward that fails to score: "the reward failed", exit 3)."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main
from tunesmith.evaluation.probe import (
    EXIT_CODES,
    ProbeSettings,
    histogram,
    probe_rows,
    render_report,
    summarize,
)

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


def test_more_failures_than_the_policy_allows_is_reward_failed_whatever_the_scores() -> None:
    in_band = [[1.0, 0, 0, 1.0]] * 8  # would be "ready"
    stats = summarize(in_band, S, failed=16, reward_failure="reward r: 16 of 32 samples failed — fix it")
    assert stats["verdict"] == "reward_failed" and stats["verdict_text"] == "the reward failed"
    assert stats["advice"] == "reward r: 16 of 32 samples failed — fix it"
    assert summarize(in_band, S, failed=1)["verdict"] == "ready"  # failures within the policy: a verdict
    assert EXIT_CODES == {"ready": 0, "sft_first": 1, "saturated": 1, "no_signal": 1, "reward_failed": 3}
    report = {"model": "m", "reward": "r", "prompts": 8, "generations": 4, "seconds": 0.1, **stats}
    assert render_report(report).splitlines()[-1] == (
        "verdict: the reward failed (reward r: 16 of 32 samples failed — fix it)"
    )


def _prompts(tmp_path, references: list[str]):
    data = tmp_path / "prompts.jsonl"
    data.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}], "reference_answer": ref}) + "\n"
            for i, ref in enumerate(references)
        )
    )
    module = tmp_path / "flaky_rewards.py"
    module.write_text(
        "def flaky(completion, reference_answer, **kw):\n"
        "    if reference_answer == 'boom':\n"
        "        raise ValueError('cannot score this one')\n"
        "    return 0.0\n"
    )
    return data, module


def _probe_flaky(tmp_path, model_dir, references: list[str], generations: int) -> tuple[int, dict]:
    """`tunesmith probe` with the flaky reward on every reference; (exit code, the report)."""
    data, module = _prompts(tmp_path, references)
    out = tmp_path / "probe.json"
    args = ["probe", "--model", str(model_dir), "--data", str(data), "--reward", f"{module}:flaky"]
    args += ["--prompts", str(len(references)), "--generations", str(generations), "--max-new-tokens", "4"]
    code = main([*args, "--out", str(out)])
    return code, json.loads(out.read_text())


def test_probe_command_exits_3_when_the_reward_fails_past_its_policy(
    tmp_path, micro_model_dir, capsys
) -> None:
    code, report = _probe_flaky(tmp_path, micro_model_dir, ["x", "boom", "x", "x"], 3)  # 3 of 12 fail: 25%
    assert code == 3
    assert (report["verdict"], report["failed_samples"], report["samples"]) == ("reward_failed", 3, 12)
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert verdict.startswith("verdict: the reward failed (reward ")
    assert "3 of 12 samples failed (25.0%) > max_failure_rate 10.0% (faults: exception 3)" in verdict
    assert "fix the reward function" in verdict


def test_failures_at_the_policy_share_still_give_a_readiness_verdict(tmp_path, micro_model_dir) -> None:
    code, report = _probe_flaky(
        tmp_path, micro_model_dir, ["boom"] + ["x"] * 9, 2
    )  # 2 of 20: 10% is not > 10%
    assert code == 1
    assert (report["verdict"], report["failed_samples"], report["samples"]) == ("sft_first", 2, 20)


def test_probe_on_an_endpoint_replying_bad_json_is_reward_failed(tmp_path, micro_model_dir) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class BadJson(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            self.wfile.write(b"not json")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), BadJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data, _ = _prompts(tmp_path, ["x", "x"])
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    spec = {"function": f"http://127.0.0.1:{server.server_port}/", "retries": 0}
    try:
        report = probe_rows(
            micro_model_dir, rows, spec, ProbeSettings(prompts=2, generations=2, max_new_tokens=4)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (report.verdict, report.failed_samples, report.samples) == ("reward_failed", 4, 4)
    assert "4 of 4 samples failed" in report.advice and "malformed_json 4" in report.advice
    assert "make the endpoint reply with a JSON list" in report.advice


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


def test_a_training_file_that_repeats_its_prompts_is_probed_once_per_prompt(micro_model_dir) -> None:
    """An RFT stage's prepared training file repeats prompts to fill its steps (same ids): the probe scores
    each distinct prompt, instead of failing on repeated sample ids."""
    rows = [
        {"id": f"p{i % 3}", "messages": [{"role": "user", "content": f"q{i % 3}"}], "reference_answer": "a"}
        for i in range(9)
    ]
    report = probe_rows(
        micro_model_dir, rows, "exact_match", ProbeSettings(prompts=8, generations=2, max_new_tokens=2)
    )
    assert (report.prompts, report.samples) == (3, 6)
