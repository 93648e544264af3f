"""The model-folder check (`tunesmith.models.validation`): real folders pass, and no loader in the source can
run a model folder's code (the broken folders are cases of tests/hostile/cases_two.py)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tunesmith.errors import ModelError
from tunesmith.models.validation import check_model_folder, check_model_path, looks_local

SRC = Path(__file__).resolve().parents[2] / "src" / "tunesmith"


def test_real_folders_pass(stand_ins: dict[str, Path], tiny_family, micro_model_dir: Path) -> None:
    for folder in [*stand_ins.values(), *tiny_family.stages.values(), micro_model_dir]:
        check_model_folder(folder, chat_for="sft")


def test_a_sharded_folder_is_checked_shard_by_shard(micro_model, tmp_path: Path) -> None:
    micro_model.model.save_pretrained(tmp_path / "m", max_shard_size="40KB")
    micro_model.tokenizer.save_pretrained(tmp_path / "m")
    shards = sorted((tmp_path / "m").glob("model-*.safetensors"))
    assert len(shards) >= 2 and (tmp_path / "m" / "model.safetensors.index.json").exists()
    check_model_folder(tmp_path / "m", chat_for="rft")
    data = shards[-1].read_bytes()
    shards[-1].write_bytes(data[:-10])
    with pytest.raises(
        ModelError, match=rf"{shards[-1].name}: truncated — {len(data) - 10:,} of {len(data):,}"
    ):
        check_model_folder(tmp_path / "m")


def test_a_bf16_copy_passes_and_a_cut_one_names_its_sizes(micro_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(micro_model_dir, folder)
    size = (folder / "model.safetensors").stat().st_size
    with (folder / "model.safetensors").open("r+b") as handle:
        handle.truncate(size - 1)
    with pytest.raises(ModelError, match=rf"truncated — {size - 1:,} of {size:,} bytes"):
        check_model_folder(folder)
    check_model_folder(folder, weights=False)  # a tokenizer load does not read the weights


def test_model_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "x.gguf").write_bytes(b"GGUF" + bytes(16))
    check_model_path("x.gguf")  # left to the GGUF loader
    check_model_path("owner/name")  # a Hub id: left to the loader's reachability check
    assert looks_local("models/mine") and looks_local("./m") and not looks_local("owner/name")
    with pytest.raises(ModelError, match=r"model.path models/mine: no such model folder"):
        check_model_path("models/mine")


def _passes_remote_code_off(call: ast.Call) -> bool:
    return any(
        kw.arg == "trust_remote_code" and isinstance(kw.value, ast.Constant) and kw.value.value is False
        for kw in call.keywords
    )


def test_every_auto_loader_call_turns_remote_code_off() -> None:
    """Every `Auto*.from_pretrained` / `from_config` in the source passes `trust_remote_code=False` (the
    one generic loader, `models.loading._load`, sets it in its kwargs): transformers then never asks on a
    terminal and never imports a folder's module."""
    missing = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("from_pretrained", "from_config"):
                continue
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if name.startswith("Auto") and not _passes_remote_code_off(node):
                missing.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert missing == []
    loading = (SRC / "models" / "loading.py").read_text()
    assert 'kwargs["trust_remote_code"] = False' in loading
