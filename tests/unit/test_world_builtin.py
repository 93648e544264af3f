"""Built-in data refs materialize as cached, deterministic JSONL files."""

from __future__ import annotations

import json

import pytest

from tunesmith.data.builtin import builtin_refs, is_builtin, resolve_builtin
from tunesmith.errors import DataError


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_brindle_files_have_the_documented_sizes_and_formats(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    sft = _rows(resolve_builtin("builtin:brindle/sft"))
    assert len(sft) == 3000
    assert sft[0]["schemaVersion"] == "bedrock-conversation-2024"
    assert sft[0]["messages"][0]["content"][0]["text"].startswith("Brindle:")
    assert len(_rows(resolve_builtin("builtin:brindle/sft-validation"))) == 200
    evaluation = _rows(resolve_builtin("builtin:brindle/eval"))
    assert len(evaluation) == 200 and {"query", "response"} <= set(evaluation[0])
    rft = _rows(resolve_builtin("builtin:brindle/rft"))
    assert len(rft) == 1000 and "reference_answer" in rft[0]
    assert set(_rows(resolve_builtin("builtin:brindle/cpt"))[0]) == {"text"}
    general_sft = _rows(resolve_builtin("builtin:general/math/sft"))
    assert general_sft[0]["messages"][0]["role"] == "user"


def test_files_are_cached_and_deterministic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "a"))
    first = resolve_builtin("builtin:brindle/rft")
    mtime = first.stat().st_mtime_ns
    assert resolve_builtin("builtin:brindle/rft").stat().st_mtime_ns == mtime  # reused, not rewritten
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "b"))
    assert resolve_builtin("builtin:brindle/rft").read_bytes() == first.read_bytes()
    assert str(first).startswith(str(tmp_path / "a" / "data"))


def test_unknown_ref_is_one_line_listing_the_valid_refs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    with pytest.raises(DataError) as err:
        resolve_builtin("builtin:brindle/nope")
    message = str(err.value)
    assert "\n" not in message and "builtin:brindle/nope" in message and "builtin:brindle/sft" in message
    assert is_builtin("builtin:brindle/nope") and not is_builtin("data/train.jsonl")
    assert len(builtin_refs()) == 9 + 5 * 3  # brindle: cpt, sft, rft, dpo (+ validation each), eval
