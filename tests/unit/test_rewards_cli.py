"""`tunesmith reward serve` through the real CLI in a subprocess: port 0, the printed URL, a scored POST,
the bearer token (401), the size limit (413), malformed requests (400), a clean stop."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tunesmith.cli import main

THIS_FILE = Path(__file__).resolve()


def word_overlap(completion: str, reference_answer: str, **extra) -> dict:
    """Share of reference words in the completion (served by the subprocess from this file)."""
    want = reference_answer.split()
    share = sum(w in completion.split() for w in want) / max(len(want), 1)
    return {
        "score": share,
        "metrics_list": [{"name": "words", "value": len(completion.split()), "type": "Metric"}],
    }


def read_line(proc: subprocess.Popen, timeout_s: float = 60) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout_s):
        proc.kill()
        pytest.fail(f"no output from `reward serve` within {timeout_s} s: {proc.stderr.read()}")
    return proc.stdout.readline()


def post(url: str, body: bytes, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=body, headers=headers), timeout=10
        ) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_reward_serve_subprocess() -> None:
    command = [
        sys.executable, "-m", "tunesmith.cli", "reward", "serve", f"{THIS_FILE}:word_overlap",
        "--port", "0", "--token-env", "TS_REWARD_TOKEN", "--max-request-bytes", "2000",
    ]  # fmt: skip
    env = {**os.environ, "TS_REWARD_TOKEN": "tok-123"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(proc)
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/) \(bearer token required\)", line)
        assert match and int(match.group(2)) > 0, line
        url = match.group(1)
        samples = [
            {"id": 1, "messages": [{"role": "assistant", "content": "red fox"}], "reference_answer": "red fox"},
            {"id": "b", "messages": [{"role": "assistant", "content": "red"}], "metadata": {"reference_answer": "red fox"}},
        ]  # fmt: skip
        status, reply = post(url, json.dumps(samples).encode(), token="tok-123")
        assert status == 200
        assert reply == [
            {"id": 1, "aggregate_reward_score": 1.0, "metrics_list": [{"name": "words", "value": 2.0, "type": "Metric"}]},
            {"id": "b", "aggregate_reward_score": 0.5, "metrics_list": [{"name": "words", "value": 1.0, "type": "Metric"}]},
        ]  # fmt: skip
        assert post(url, json.dumps(samples).encode())[0] == 401
        assert post(url, json.dumps(samples).encode(), token="wrong")[0] == 401
        status, error = post(url, json.dumps(samples * 20).encode(), token="tok-123")
        assert status == 413 and "exceeds the limit of 2000" in error["error"]
        status, error = post(url, b"[{]", token="tok-123")
        assert status == 400 and "not JSON" in error["error"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "reward server stopped" in out and "Traceback" not in err


def test_reward_serve_errors_are_one_line(capsys, monkeypatch) -> None:
    monkeypatch.delenv("TS_NO_SUCH_TOKEN", raising=False)
    for argv, fragment in [
        (
            ["reward", "serve", "no_such_module_xyz:fn", "--port", "0"],
            "cannot import module 'no_such_module_xyz'",
        ),
        (
            ["reward", "serve", "exact_match", "--token-env", "TS_NO_SUCH_TOKEN"],
            "--token-env TS_NO_SUCH_TOKEN is not set",
        ),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1
