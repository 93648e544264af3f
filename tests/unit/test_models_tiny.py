"""The tiny-family builder: schedules, determinism, caching, atomic publication; generation helpers."""

from __future__ import annotations

import time

import pytest

from tunesmith.models import tiny
from tunesmith.models.generate import exact_match, generate_batch

SHORT = 0.01  # 3 + 2 + 12 steps: seconds


def test_lr_schedules() -> None:
    pre, mid, post = tiny.PLANS
    assert pre.schedule == "constant" and tiny.lr_at(pre, 0, 300) == pytest.approx(pre.lr / pre.warmup_steps)
    assert tiny.lr_at(pre, 299, 300) == pre.lr  # no decay
    assert tiny.lr_at(mid, 0, 100) == mid.lr
    assert tiny.lr_at(mid, 100, 100) == pytest.approx(mid.lr * mid.min_lr_ratio)  # ramped down
    assert tiny.lr_at(post, post.warmup_steps, 1000) == pytest.approx(post.lr)
    assert tiny.lr_at(post, 1000, 1000) == pytest.approx(post.lr * post.min_lr_ratio)


def test_model_m_has_about_a_million_parameters() -> None:
    model = tiny.new_model(seed=0)
    assert 1.0e6 < sum(p.numel() for p in model.parameters()) < 1.1e6  # [tiny-feasibility] model "M": 1.06M
    assert model.config.tie_word_embeddings


def test_shortened_build_is_deterministic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_THREADS", "1")  # weights depend on the thread count
    a = tiny.build_family(seed=0, quiet=True, steps_scale=SHORT, out_dir=tmp_path / "a", evaluate=False)
    b = tiny.build_family(seed=0, quiet=True, steps_scale=SHORT, out_dir=tmp_path / "b", evaluate=False)
    c = tiny.build_family(seed=1, quiet=True, steps_scale=SHORT, out_dir=tmp_path / "c", evaluate=False)
    for stage in tiny.CHECKPOINT_STAGES:
        weights_a = (a[stage] / "model.safetensors").read_bytes()
        assert weights_a == (b[stage] / "model.safetensors").read_bytes(), stage
        assert weights_a != (c[stage] / "model.safetensors").read_bytes(), stage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp folders left


def test_second_build_reuses_the_cache(tmp_path) -> None:
    out = tmp_path / "family"
    tiny.build_family(seed=0, quiet=True, steps_scale=SHORT, out_dir=out, evaluate=False)
    mtime = (out / "post-trained" / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    tiny.build_family(seed=0, quiet=True, steps_scale=SHORT, out_dir=out, evaluate=False)
    assert time.perf_counter() - started < 1.0
    assert (out / "post-trained" / "model.safetensors").stat().st_mtime_ns == mtime
    assert tiny.is_built(out, seed=0) and not tiny.is_built(out, seed=1)
    report = tiny.load_report(out)
    assert report["stages"]["pre-trained"]["num_steps"] == 3 and report["params"] > 1e6


def test_failed_build_leaves_no_family(tmp_path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(tiny, "_train", boom)
    with pytest.raises(RuntimeError):
        tiny.build_family(seed=0, quiet=True, steps_scale=SHORT, out_dir=tmp_path / "family", evaluate=False)
    assert list(tmp_path.iterdir()) == []


def test_generate_batch_returns_one_string_per_prompt(micro_model) -> None:
    prompts = [[{"role": "user", "content": q}] for q in ("Compute 2 + 3.", "Largest of 1 9 4?", "x")]
    outputs = generate_batch(micro_model.model, micro_model.tokenizer, prompts, max_new_tokens=5)
    assert len(outputs) == 3 and all(isinstance(o, str) and len(o) <= 5 for o in outputs)
    # batching (left padding) does not change greedy outputs
    assert (
        generate_batch(micro_model.model, micro_model.tokenizer, prompts[:1], max_new_tokens=5) == outputs[:1]
    )


def test_exact_match() -> None:
    assert exact_match(" 4 x 6  = 24 brix", "4 x 6 = 24 brix")
    assert not exact_match("fox", "FOX")
