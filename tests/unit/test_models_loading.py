"""Model references: catalog stages, local folders and Hub ids, with one-line errors offline."""

from __future__ import annotations

import json
import time

import pytest

from tunesmith.errors import ModelError
from tunesmith.models.loading import (
    catalog_checkpoint_path,
    list_command,
    load_model,
    load_tokenizer,
    resolve_ref,
)


def test_catalog_stages_resolve_to_hub_ids_with_revisions() -> None:
    assert (
        catalog_checkpoint_path("olmo2-1b", "pre-trained")
        == "allenai/OLMo-2-0425-1B@stage1-step140000-tokens294B"
    )
    assert catalog_checkpoint_path("olmo2-1b", "mid-trained") == "allenai/OLMo-2-0425-1B"
    assert resolve_ref("qwen3-0.6b") == ("Qwen/Qwen3-0.6B", None)
    assert resolve_ref("owner/name@v2") == ("owner/name", "v2")


def test_missing_stage_and_unknown_family_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="no mid-trained checkpoint is published.*pre-trained, post-trained"):
        catalog_checkpoint_path("qwen3-0.6b", "mid-trained")
    with pytest.raises(ModelError, match="unknown model family"):
        catalog_checkpoint_path("gpt9", "pre-trained")


def test_unbuilt_tiny_family_says_how_to_build_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    monkeypatch.setattr("tunesmith.models.tiny.shipped_dir", lambda: tmp_path / "not-shipped")
    with pytest.raises(ModelError, match="tunesmith models build tiny"):
        catalog_checkpoint_path("tiny", "pre-trained")


def test_unreachable_hub_model_fails_fast_with_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(ModelError) as err:
        load_model("olmo2-1b:pre-trained")
    message = str(err.value)
    assert time.perf_counter() - started < 10
    assert "\n" not in message
    assert "allenai/OLMo-2-0425-1B@stage1-step140000-tokens294B" in message and "local folder" in message


def test_local_folder_loads_through_the_same_path(micro_model_dir) -> None:
    model = load_model(micro_model_dir)
    tokenizer = load_tokenizer(str(micro_model_dir))
    assert model.config.hidden_size == 32 and len(tokenizer) == 104
    with pytest.raises(ModelError, match="no such model folder"):
        load_model("./does/not/exist")


def test_list_shows_families_stages_and_missing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert list_command("json") == 0
    rows = json.loads(capsys.readouterr().out)
    by_key = {(r["family"], r["stage"]): r for r in rows}
    assert by_key[("tiny", "post-trained")]["status"] == "shipped"
    assert by_key[("qwen3-0.6b", "mid-trained")]["status"].startswith("missing")
    assert by_key[("olmo2-1b", "pre-trained")]["revision"] == "stage1-step140000-tokens294B"
    assert list_command("text") == 0
    assert "olmo2-1b" in capsys.readouterr().out


def test_a_catalog_family_without_weights_is_named_by_plan_and_lint_before_train(
    tmp_path, monkeypatch, capsys
) -> None:
    from tunesmith.cli import main
    from tunesmith.models.loading import unavailable_reason

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    line = unavailable_reason("qwen3-0.6b:post-trained")
    assert line is not None and "\n" not in line
    assert line.startswith("qwen3-0.6b:post-trained is Qwen/Qwen3-0.6B: the model is not in the local")
    assert "set model.path to that local folder" in line
    with pytest.raises(ModelError) as err:
        load_model("qwen3-0.6b:post-trained")
    assert "set model.path" in str(err.value)
    recipe, runs = tmp_path / "r.yaml", tmp_path / "runs"
    recipe.write_text(
        f"name: r\noutput_dir: {runs}\nmodel: {{family: qwen3-0.6b, checkpoint: post-trained}}\nstages:\n"
        "  - technique: sft\n    data: {train: builtin:brindle/sft, validation: builtin:brindle/sft-validation}\n"
    )
    assert main(["plan", str(recipe)]) == 0
    assert (
        "ERROR model-not-available: model: qwen3-0.6b:post-trained is Qwen/Qwen3-0.6B"
        in capsys.readouterr().out
    )
    assert main(["lint", str(recipe)]) == 1
    assert "set model.path" in capsys.readouterr().out
    assert main(["train", str(recipe)]) != 0
    assert "model-not-available" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())  # refused before a run folder was written


def test_lint_leaves_an_unbuilt_embedded_family_to_train(tmp_path, monkeypatch) -> None:
    """The tiny family is built here, not downloaded: `train` names the build command itself."""
    from tunesmith.advisor.lint import lint
    from tunesmith.models.loading import unavailable_reason
    from tunesmith.recipe.loading import validate_recipe
    from tunesmith.recipe.resolve import resolve

    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    monkeypatch.setattr("tunesmith.models.tiny.shipped_dir", lambda: tmp_path / "not-shipped")
    assert "tunesmith models build tiny" in (unavailable_reason("tiny:post-trained") or "")
    stage = {
        "technique": "sft",
        "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
    }
    resolved = resolve(validate_recipe({"name": "t", "model": {"family": "tiny"}, "stages": [stage]}))
    assert not [f for f in lint(resolved, measure_data=False) if f.rule == "model-not-available"]
