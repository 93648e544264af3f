"""A real (micro) RFT stage: GRPO via TRL, the readiness gate, selection by validation reward, and the
reward endpoint's failure policy against a real loopback server that injects faults."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

REWARD_MODULE = '''
def parity(completion, reference_answer, **extra):
    """1 when the completion's first character has an even code point: about half of a random model's
    samples, so groups vary and the probe says ready."""
    return 1.0 if completion and ord(completion[0]) % 2 == 0 else 0.0


def never(completion, reference_answer, **extra):
    return 0.0


def broken(completion, reference_answer, **extra):
    raise KeyError("score")
'''


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _prompts(path: Path, n: int, offset: int = 0) -> str:
    rows = [
        {
            "id": f"p{i + offset}",
            "messages": [{"role": "user", "content": f"q {i + offset}"}],
            "reference_answer": "a",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _recipe(tmp_path: Path, model_dir: Path, reward, *, steps: int = 4, name: str = "micro-rft") -> Path:
    module = tmp_path / "micro_rewards.py"
    module.write_text(REWARD_MODULE)
    if isinstance(reward, str) and not reward.startswith("http"):
        reward = f"{module}:{reward}"
    recipe = {
        "name": name,
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"rft-lr-raised": "micro test model: random weights, any LR"},
        "stages": [
            {
                "technique": "rft",
                "mode": "lora",
                "data": {
                    "train": _prompts(tmp_path / "train.jsonl", 32),
                    "validation": _prompts(tmp_path / "val.jsonl", 4, offset=1000),
                },
                "rft": {"reward": reward, "number_generation": 4, "max_new_tokens": 6},
                "hyperparameters": {
                    "max_steps": steps,
                    "global_batch_size": 4,
                    "micro_batch_size": 4,
                    "val_check_interval": 2,
                    "lr": 1e-3,
                    "save_top_k": 2,
                },
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_rft_stage_trains_selects_by_reward_prints_it_and_exports(tmp_path, micro_model_dir, capsys) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, "parity")
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    output = capsys.readouterr().out
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    probe = json.loads((stage / "probe.json").read_text())
    assert (
        probe["verdict"] == "ready" and probe["samples"] == 16 * 4
    )  # the 16 prompts of 4 steps x 4, 4 samples each
    result = json.loads((stage / "result.json").read_text())
    assert result["steps"] == 4 and result["technique"] == "rft"
    assert result["reward"]["samples"] > 0 and result["reward"]["failed"] == 0
    checkpointing = result["gradient_checkpointing"]
    assert checkpointing["on"] is False and "chunks" not in checkpointing["reason"]
    metrics = _rows(stage / "metrics.jsonl")
    train_rows = [r for r in metrics if "reward" in r]
    assert len(train_rows) == 4 and all(0.0 <= r["reward"] <= 1.0 for r in train_rows)
    assert all("kl" in r and "frac_reward_zero_std" in r for r in train_rows)
    assert all("rft/dropped_group_share" in r for r in train_rows)  # on by default, logged every step
    evals = {r["step"]: r["eval_reward"] for r in metrics if "eval_reward" in r}
    assert set(evals) == {0, 2, 4}
    printed = [line for line in output.splitlines() if "validation" in line]
    assert printed == [f"rft (rft, lora): step {s}/4 validation reward {evals[s]:.4f}" for s in (0, 2, 4)]
    best = json.loads((stage / "best.json").read_text())
    kept = {
        v["step"]: v["eval_reward"] for v in json.loads((stage / "checkpoints.json").read_text()).values()
    }
    assert best["eval_reward"] == max(kept.values()) and best["selected_by"].startswith("validation reward")
    assert (stage / "best" / "adapter" / "adapter_config.json").exists()
    from tunesmith.models.loading import load_model

    load_model(stage / "best")  # the merged model loads as a plain checkpoint


def test_probe_gate_refuses_a_hopeless_stage_unless_forced(tmp_path, micro_model_dir, capsys) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, "never", steps=2)
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "readiness probe says 'do SFT first'" in err and "--force" in err and "Traceback" not in err
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    assert not (stage / "checkpoints").exists()  # refused before any training step
    assert main(["train", str(recipe), "--quiet", "--no-eval", "--force"]) == 0
    assert json.loads((stage / "result.json").read_text())["steps"] == 2


def test_probe_gate_refuses_a_reward_that_fails_to_score_even_when_forced(
    tmp_path, micro_model_dir, capsys
) -> None:
    recipe = _recipe(tmp_path, micro_model_dir, "broken", steps=2)
    for extra in ([], ["--force"]):
        assert main(["train", str(recipe), "--quiet", "--no-eval", *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "the readiness probe could not score: reward " in lines[0]
        assert "32 of 32 samples failed (100.0%) > max_failure_rate 10.0% (faults: exception 32)" in lines[0]
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    assert not (stage / "probe.json").exists() and not (stage / "checkpoints").exists()  # not kept: re-probed


class FaultyReward(BaseHTTPRequestHandler):
    """The reward contract with faults on demand: `mode` = "ok" | "http_500" (every request) | "flaky"
    (every other request fails with 500, retried) | "nan" (one sample per request gets NaN)."""

    mode = "ok"
    healthy_requests = 0  # the first N requests are answered normally whatever the mode
    requests = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with FaultyReward.lock:
            FaultyReward.requests += 1
            n = FaultyReward.requests
        faulty = n > FaultyReward.healthy_requests
        if faulty and (self.mode == "http_500" or (self.mode == "flaky" and n % 2 == 1)):
            self.send_response(500)
            self.end_headers()
            return
        reply = [
            {"id": s["id"], "aggregate_reward_score": float(len(s["messages"][-1]["content"]) % 2)}
            for s in body
        ]
        if faulty and self.mode == "nan":
            reply[0]["aggregate_reward_score"] = float("nan")
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def faulty_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyReward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FaultyReward.requests = 0
    FaultyReward.healthy_requests = 0
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _events(stage: Path) -> list[dict]:
    return _rows(stage / "events.jsonl") if (stage / "events.jsonl").exists() else []


def test_transient_endpoint_faults_are_retried_counted_and_training_continues(
    tmp_path, micro_model_dir, faulty_server
) -> None:
    _, url = faulty_server
    FaultyReward.mode = "flaky"
    reward = {"function": url, "retries": 2, "backoff_s": 0.01, "timeout_s": 5}
    recipe = _recipe(tmp_path, micro_model_dir, reward, steps=2)
    assert main(["train", str(recipe), "--quiet", "--no-eval", "--force"]) == 0
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    result = json.loads((stage / "result.json").read_text())
    faults = [e for e in _events(stage) if e["detector"] == "reward_fault"]
    assert result["reward"]["failed"] == 0  # every fault was retried successfully
    assert result["reward"]["faults"].get("http_500", 0) == len(faults) > 0
    assert all(e["action"] == "warn" for e in faults)


def test_persistent_endpoint_failure_stops_the_stage_by_policy(
    tmp_path, micro_model_dir, faulty_server, capsys
) -> None:
    _, url = faulty_server
    FaultyReward.mode = "http_500"
    reward = {
        "function": url,
        "retries": 1,
        "backoff_s": 0.01,
        "max_failure_rate": 0.2,
        "min_samples_for_policy": 8,
    }
    recipe = _recipe(tmp_path, micro_model_dir, reward, steps=6)
    # down from the start: the readiness probe hits the policy first — one line, before any training
    assert main(["train", str(recipe), "--quiet", "--no-eval", "--force"]) == 2
    err = capsys.readouterr().err
    assert "failed (100.0%) > max_failure_rate 20.0%" in err and "http_500" in err and "Traceback" not in err
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    assert not (stage / "checkpoints").exists()
    # healthy for the probe (24 prompts x 4 samples = 6 requests of 16) and the start's validation (1), then
    # down during training: the stage stops by policy at its first step
    FaultyReward.requests, FaultyReward.healthy_requests = 0, 7
    assert main(["train", str(recipe), "--quiet", "--no-eval", "--force"]) == 3  # a monitor stop
    events = _events(stage)
    stops = [e for e in events if e["detector"] == "reward_endpoint"]
    assert len(stops) == 1 and stops[0]["action"] == "stop" and "http_500" in stops[0]["message"]
    assert stops[0]["step"] == 1
    faults = [e for e in events if e["detector"] == "reward_fault"]
    assert faults and all(e["details"]["fault"] == "http_500" for e in faults)
    # every request after the healthy ones failed (retries included), and each failure is one event
    assert len(faults) == FaultyReward.requests - 7
    checkpoints = sorted((stage / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and int(checkpoints[-1].name.split("-")[1]) < 6  # saved at the stop
    assert not (stage / "result.json").exists()  # an outage is not a verdict: the stage is unfinished
    err = capsys.readouterr().err
    assert "tunesmith train --resume" in err and "Traceback" not in err
    # the endpoint is back: --resume finishes the stage from the saved checkpoint
    FaultyReward.mode = "ok"
    assert (
        main(["train", "--resume", str(tmp_path / "runs" / "micro-rft"), "--quiet", "--no-eval", "--force"])
        == 0
    )
    result = json.loads((stage / "result.json").read_text())
    assert result["steps"] == 6 and result["reward"]["failed"] == 0


def test_nan_scores_fail_only_their_samples_below_the_threshold(
    tmp_path, micro_model_dir, faulty_server
) -> None:
    _, url = faulty_server
    FaultyReward.mode = "nan"
    # one NaN per request of 16 samples = 6.25% failed: below a 10% threshold, training goes on
    reward = {
        "function": url,
        "retries": 0,
        "batch_size": 16,
        "max_failure_rate": 0.1,
        "min_samples_for_policy": 8,
    }
    recipe = _recipe(tmp_path, micro_model_dir, reward, steps=2)
    assert main(["train", str(recipe), "--quiet", "--no-eval", "--force"]) == 0
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    result = json.loads((stage / "result.json").read_text())
    assert result["reward"]["failed_by_fault"] == {"non_finite_score": result["reward"]["failed"]}
    assert result["reward"]["failed"] == result["reward"]["requests"]  # exactly one per request
    faults = [e for e in _events(stage) if e["detector"] == "reward_fault"]
    assert len(faults) == result["reward"]["faults"]["non_finite_score"]


def test_general_prompts_mixed_into_rft_are_scored_by_the_general_verifier(tmp_path, micro_model_dir) -> None:
    recipe_path = _recipe(tmp_path, micro_model_dir, "parity", steps=2)
    recipe = yaml.safe_load(recipe_path.read_text())
    recipe["stages"][0]["data_mixing"] = {"customer_percent": 50, "general": {"math": 50, "knowledge": 50}}
    recipe["acknowledge"]["lr-deviates-while-mixing"] = "micro test model"
    recipe_path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(recipe_path), "--quiet", "--no-eval"]) == 0
    stage = tmp_path / "runs" / "micro-rft" / "rft"
    rows = _rows(stage / "data" / "train.jsonl")
    general = [r for r in rows if "general_category" in r]
    assert len(general) == len(rows) // 2 and {r["general_category"] for r in general} == {
        "math",
        "knowledge",
    }
    assert all(isinstance(r["reference_answer"], str) and r["prompt"][-1]["role"] == "user" for r in general)
    validation = _rows(stage / "data" / "validation.jsonl")
    assert sum("general_category" in r for r in validation) == 4  # the 4 customer rows, mirrored 50/50
    probe = json.loads((stage / "probe.json").read_text())
    assert probe["prompts"] == len(rows) - len(general)  # the probe looks at your prompts only
    result = json.loads((stage / "result.json").read_text())
    # your reward saw only your prompts: 2 steps x 2 customer prompts x 4 samples + 2 validations (steps 0
    # and 2) x the customer prompts among the validated subset (min(8, 64, global_batch_size 4) prompts) x 4
    from tunesmith.recipe.plan import plan
    from tunesmith.training.rft import validation_subset

    resolved = plan(recipe_path)
    assert resolved.stages[0].numbers["validation_prompts"] == 4
    picked = validation_subset(validation, 4, resolved.recipe.stages[0].hyperparameters.seed)
    customer = sum("general_category" not in r for r in picked)
    assert result["reward"]["samples"] == 2 * 2 * 4 + 2 * customer * 4


class _Recorder:
    """A detector that records every value it is fed (then feeds it to the real one)."""

    def __init__(self, detector, name: str, seen: dict) -> None:
        self.detector, self.name, self.seen = detector, name, seen

    def update(self, step, *args, **kwargs):
        self.seen.setdefault(self.name, []).append((step, args + tuple(v for _, v in sorted(kwargs.items()))))
        return self.detector.update(step, *args, **kwargs)

    def __getattr__(self, attribute):
        return getattr(self.detector, attribute)


def test_a_resumed_rft_stage_feeds_its_detectors_the_same_streams_as_an_uninterrupted_one(
    tmp_path, micro_model_dir, monkeypatch
) -> None:
    """After a resume the monitor replays metrics.jsonl up to the resumed step through the same `observe`
    the live logs go through: every detector (gradient norm and non-finite included) has then seen the
    same values, at the same steps, as in the uninterrupted run."""
    from tunesmith.monitoring import MonitorSettings

    seen: dict[str, list] = {}
    make = MonitorSettings.make
    monkeypatch.setattr(MonitorSettings, "make", lambda self, name: _Recorder(make(self, name), name, seen))
    recipe = _recipe(tmp_path, micro_model_dir, "parity")
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    live = {name: values for name, values in seen.items() if values}
    # the crash: the stage lost its last checkpoint and never finished -> resume from checkpoint-2
    run = tmp_path / "runs" / "micro-rft"
    stage = run / "rft"
    shutil.rmtree(stage / "checkpoints" / "checkpoint-4")
    (stage / "result.json").unlink()
    seen.clear()
    assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 0
    resumed = {name: values for name, values in seen.items() if values}
    assert [r["step"] for r in _rows(stage / "metrics.jsonl") if "reward" in r] == [1, 2, 3, 4]
    for name in ("non_finite", "grad_norm_explosion", "reward_collapse", "kl_spike", "forgetting"):
        assert [step for step, *_ in live[name]] == [step for step, *_ in resumed[name]], name
    assert [s for s, *_ in live["grad_norm_explosion"]] == [1, 2, 3, 4]
    assert set(resumed) == set(live)
    for name in live:
        assert len(resumed[name]) == len(live[name]), name
        for (step, values), (step2, values2) in zip(live[name], resumed[name], strict=True):
            assert step == step2, name
            if step <= 2:  # replayed from metrics.jsonl / probes.jsonl: the very values seen live
                assert values == values2, (name, step)
            else:  # trained again after the resume (None: a stream the detector does not get in RFT)
                assert [v is None for v in values2] == [v is None for v in values], (name, step)
                numbers = [v for v in values if v is not None]
                assert [v for v in values2 if v is not None] == pytest.approx(numbers, rel=1e-4), (name, step)


SLOW_VALIDATION_REWARD = '''
import os, pathlib, time

def slow_validation(completion, reference_answer, **extra):
    """Training prompts score like `parity`; validation prompts (reference "v") take 0.25 s each and mark
    that validation is running."""
    if reference_answer == "v":
        pathlib.Path(os.environ["VALIDATING_MARKER"]).touch()
        time.sleep(0.25)
        return 0.0
    return 1.0 if completion and ord(completion[0]) % 2 == 0 else 0.0
'''


def test_rft_validation_is_capped_shows_progress_and_sigterm_stops_inside_it(
    tmp_path, micro_model_dir
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tunesmith.recipe.plan import plan

    module = tmp_path / "slow_rewards.py"
    module.write_text(SLOW_VALIDATION_REWARD)
    validation = [
        {"id": f"v{i}", "messages": [{"role": "user", "content": f"q {i}"}], "reference_answer": "v"}
        for i in range(100)
    ]
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    recipe = {
        "name": "slow-val",
        "model": {"path": str(micro_model_dir)},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"rft-lr-raised": "micro test model"},
        "stages": [
            {
                "technique": "rft",
                "mode": "lora",
                "data": {
                    "train": _prompts(tmp_path / "train.jsonl", 800),  # no repeats (see the report)
                    "validation": str(tmp_path / "val.jsonl"),
                },
                "rft": {"reward": f"{module}:slow_validation", "number_generation": 4, "max_new_tokens": 6},
                "hyperparameters": {"max_steps": 50, "global_batch_size": 16, "micro_batch_size": 4},
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    numbers = plan(path).stages[0].numbers
    # 100 validation prompts capped to one training step's 16; validating 16 prompts costs one step, so
    # validations come every 10 steps at the least (a tenth of the time), more than 50 // 10 = 5
    assert numbers["validation_prompts"] == 16
    assert plan(path).recipe.stages[0].hyperparameters.val_check_interval == 10

    marker = tmp_path / "validating"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VALIDATING_MARKER": str(marker)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "train", str(path), "--no-eval"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "validation never started"
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    seconds = time.monotonic() - sent
    stage = tmp_path / "runs" / "slow-val" / "rft"
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "validation abandoned; saving and stopping" in output and "Traceback" not in output
    assert seconds < 16 * 4 * 0.25, output  # sooner than the rest of the validation would have taken
    assert "rft (rft, lora) validation:" in output  # the validation's own progress bar (batches)
    metrics = _rows(stage / "metrics.jsonl")
    assert not any("eval_reward" in r for r in metrics)  # the abandoned validation is not a measurement
    saved = [p for p in (stage / "checkpoints").glob("checkpoint-*") if (p / "COMPLETE").exists()]
    assert saved, output
