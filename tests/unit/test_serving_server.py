"""`tunesmith serve`: the official `openai` client against the server on loopback (two LoRA adapters and the
base selected by `model`, a streamed reply), OpenAI-shaped errors that leave the server serving, 50
concurrent requests, and the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tunesmith.serving.server import ModelPool, start_chat_server

KEY = "sk-test-123"
PROMPT = [{"role": "user", "content": "zq 3?"}]


def _adapter(base_dir: Path, out: Path, seed: int) -> Path:
    """A random (non-zero) LoRA adapter on the micro model, saved as plain PEFT does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def served(micro_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    adapters = {
        "alpha": str(_adapter(micro_model_dir, root / "alpha", 1)),
        "beta": str(_adapter(micro_model_dir, root / "beta", 2)),
    }
    pool = ModelPool(str(micro_model_dir), adapters, name="micro")
    server = start_chat_server(pool, api_key=KEY, max_tokens=16, max_request_bytes=4096)
    yield pool, server.url
    server.stop()


def _expected(pool: ModelPool, adapter: str | None, max_new_tokens: int) -> str:
    """Greedy answer computed directly with PEFT (no server)."""
    import torch

    model = pool.model
    inputs = pool.tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with pool.lock, torch.inference_mode():
        if adapter is None:
            with model.disable_adapter():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
        else:
            model.set_adapter(adapter)
            out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
    return pool.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_openai_client_picks_adapters_by_model_and_streams(served) -> None:
    from openai import OpenAI

    pool, url = served
    client = OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["micro", "alpha", "beta"]
    answers = {}
    for name in ("micro", "alpha", "beta"):
        reply = client.chat.completions.create(model=name, messages=PROMPT, temperature=0, max_tokens=8)
        assert reply.model == name and reply.choices[0].message.role == "assistant"
        assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
        answers[name] = reply.choices[0].message.content
        assert answers[name] == _expected(pool, None if name == "micro" else name, 8)
    assert len(set(answers.values())) == 3  # each adapter really answers differently

    stream = client.chat.completions.create(
        model="beta",
        messages=PROMPT,
        temperature=0,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answers["beta"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
    assert chunks[-1].usage.completion_tokens > 0 and len(chunks) > 3


def _raw(url: str, body: bytes | None, key: str | None = KEY, method: str = "POST") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(served) -> None:
    _, url = served
    chat = url + "v1/chat/completions"
    good = json.dumps({"model": "alpha", "messages": PROMPT, "max_tokens": 4}).encode()
    long_prompt = [{"role": "user", "content": "zq " * 1200}]
    cases = [
        (json.dumps({"model": "gamma", "messages": PROMPT}).encode(), KEY, 404, "model_not_found"),
        (b'{"model": "alpha", "messages": [', KEY, 400, "invalid_json"),
        (b"[" * 2000 + b"]" * 2000, KEY, 400, "invalid_json"),
        (json.dumps({"model": "alpha", "messages": long_prompt}).encode(), KEY, 400, "context_length_exceeded"),
        (json.dumps({"model": "alpha", "messages": PROMPT, "max_tokens": 17}).encode(), KEY, 400, "invalid_request"),
        (json.dumps({"model": "alpha", "messages": []}).encode(), KEY, 400, "invalid_request"),
        (json.dumps({"model": "alpha", "messages": PROMPT, "n": 2}).encode(), KEY, 400, "invalid_request"),
        (json.dumps({"model": "alpha", "messages": [{"role": "user", "content": "x" * 5000}]}).encode(), KEY, 413, None),
        (good, None, 401, "invalid_api_key"),
        (good, "sk-wrong", 401, "invalid_api_key"),
    ]  # fmt: skip
    for body, key, status, code in cases:
        got, reply = _raw(chat, body, key)
        assert got == status, (body[:60], reply)
        assert set(reply["error"]) == {"message", "type", "param", "code"} and reply["error"]["code"] == code
        assert _raw(chat, good)[0] == 200  # still serving
    assert _raw(url + "v1/nothing", None, method="GET")[0] == 404
    assert _raw(url + "v1/models", None, key=None, method="GET")[0] == 401
    assert _raw(url + "health", None, key=None, method="GET") == (200, {"status": "ok"})


def test_50_concurrent_requests_all_complete(served) -> None:
    _, url = served
    bodies = [
        json.dumps({"model": ["micro", "alpha", "beta"][i % 3], "messages": [{"role": "user", "content": f"zq {i}?"}],
                    "max_tokens": 6, "temperature": 0}).encode()
        for i in range(50)
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda body: _raw(url + "v1/chat/completions", body), bodies))
    assert [status for status, _ in replies] == [200] * 50
    assert [r["model"] for _, r in replies] == [["micro", "alpha", "beta"][i % 3] for i in range(50)]


def test_serve_cli_subprocess(micro_model_dir) -> None:
    command = [sys.executable, "-m", "tunesmith.cli", "serve", str(micro_model_dir), "--name", "m", "--port", "0",
               "--api-key-env", "TS_SERVE_KEY"]  # fmt: skip
    proc = subprocess.Popen(
        command,
        env={**os.environ, "TS_SERVE_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(120), proc.stderr.read()
        line = proc.stdout.readline()
        match = re.search(r"serving m at (http://127\.0\.0\.1:\d+/)v1 \(API key required\)", line)
        assert match, line
        status, models = _raw(match.group(1) + "v1/models", None, method="GET")
        assert status == 200 and [m["id"] for m in models["data"]] == ["m"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "server stopped" in out and "Traceback" not in err, err


@pytest.mark.parametrize("kind", ["qwen3", "llama3"])
def test_serves_real_family_folders_with_their_chat_templates(stand_ins, tmp_path, kind) -> None:
    """A Qwen3 folder (plain <think> tokens) and a Llama 3.2 Instruct folder (no pad token, several eos ids)
    with a LoRA adapter: the openai client gets the same greedy answers PEFT computes directly."""
    from openai import OpenAI

    adapter = _adapter(stand_ins[kind], tmp_path / "adapter", 3)
    pool = ModelPool(str(stand_ins[kind]), {"domain": str(adapter)}, name=kind)
    server = start_chat_server(pool, api_key=None, max_tokens=8, max_request_bytes=4096)
    try:
        client = OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=60)
        answers = []
        for model, adapter_name in ((kind, None), ("domain", "domain")):
            reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=8, temperature=0)
            answers.append(reply.choices[0].message.content)
            assert answers[-1] == _expected(pool, adapter_name, 8)
        assert answers[0] != answers[1]  # the adapter is applied
    finally:
        server.stop()
