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
    assert by_key[("tiny", "post-trained")]["status"].startswith("not built")
    assert by_key[("qwen3-0.6b", "mid-trained")]["status"].startswith("missing")
    assert by_key[("olmo2-1b", "pre-trained")]["revision"] == "stage1-step140000-tokens294B"
    assert list_command("text") == 0
    assert "olmo2-1b" in capsys.readouterr().out
