"""Curated general data for real families: the catalog, the offline mirror, plan-time checks, and a mixed
SFT on the Qwen3 stand-in that trains on the mirror's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mirror_fixture import write_fixture_mirror

from tunesmith.cli import main
from tunesmith.data.curated.catalog import CATALOG
from tunesmith.data.curated.load import MIRROR_ENV, as_kind, check_sources, curated_sources, write_mirror
from tunesmith.errors import DataError
from tunesmith.recipe.plan import plan, render_plan
from tunesmith.references import entries
from tunesmith.vocabulary import CATEGORIES

PERMISSIVE = {"Apache-2.0", "MIT", "ODC-BY-1.0", "CC-BY-4.0", "CC-BY-SA-3.0"}
DEFAULT_FIVE = set(CATEGORIES)


def _customer_rows(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": f"{i % 7}"}]}
        for i in range(n)
    ]


def _recipe(tmp_path: Path, model: dict, *, mirror: Path | None = None, steps: int = 2, **mixing) -> Path:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in _customer_rows(16)))
    data_mixing = {"customer_percent": 50, **mixing}
    if mirror is not None:
        data_mixing["general_mirror"] = str(mirror)
    recipe = {
        "name": "curated",
        "model": model,
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "stand-in model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(train)},
                "data_mixing": data_mixing,
                "hyperparameters": {
                    "max_steps": steps,
                    "global_batch_size": 8,
                    "micro_batch_size": 4,
                    "lr": 1e-3,
                    "max_length": 128,
                },
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# ------------------------------------------------------------------------------------------- catalog


def test_catalog_covers_every_general_category_with_a_cited_permissive_dataset() -> None:
    assert set(CATALOG) >= DEFAULT_FIVE and {"code", "multilingual"} <= set(CATALOG)
    known = entries()
    for category, entry in CATALOG.items():
        assert entry.category == category
        assert entry.license in PERMISSIVE, entry
        assert entry.share_alike == ("SA" in entry.license), entry
        assert entry.reference in known, entry.reference
        assert entry.dataset_id in known[entry.reference], (entry.dataset_id, known[entry.reference])
        assert (entry.messages is None) == (entry.prompt is not None and entry.response is not None)


def test_column_mappings_make_chat_rows_and_skip_what_they_cannot_use() -> None:
    math = CATALOG["math"]
    assert math.to_messages({"question": "2+2?", "answer": "4\n#### 4"}) == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4\n#### 4"},
    ]
    assert math.to_messages({"question": "2+2?", "answer": " "}) is None
    knowledge = CATALOG["knowledge"]  # Dolly: context appended; only question-answering categories kept
    row = {"instruction": "Who?", "context": "Ada wrote it.", "response": "Ada", "category": "closed_qa"}
    assert knowledge.to_messages(row)[0]["content"] == "Who?\n\nAda wrote it."
    assert knowledge.to_messages({**row, "category": "brainstorming"}) is None
    chat = CATALOG["instruction-following"]
    good = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    assert chat.to_messages({"messages": good}) == good
    assert chat.to_messages({"messages": good[:2]}) is None  # no answer
    assert chat.to_messages({"messages": [{"role": "tool", "content": "x"}, *good[1:]]}) is None
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert as_kind(row, "cpt") == {"text": "q\n\na"}
    assert as_kind(row, "rft") == {"messages": row["messages"][:1], "reference_answer": "a"}


# ------------------------------------------------------------------------------------------- plan time


def test_real_family_categories_resolve_to_the_catalog_and_plan_names_them(tmp_path, stand_ins) -> None:
    mirror = write_fixture_mirror(tmp_path / "mirror", rows_per_category=8)
    resolved = plan(
        _recipe(tmp_path, {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}, mirror=mirror)
    )
    mixing = resolved.recipe.stages[0].data_mixing
    assert mixing.general_data == "curated"
    assert set(mixing.general) == DEFAULT_FIVE and mixing.general["reasoning-instruction-following"] > 0
    assert mixing.customer_percent == 50 and mixing.general_mirror == str(mirror.resolve())
    assert str(resolved.provenance["stages[0].data_mixing.general_data"]).startswith("derived: a real model")
    text = render_plan(resolved)
    for category in DEFAULT_FIVE:
        entry = CATALOG[category]
        line = next(
            line for line in text.splitlines() if line.strip().startswith(f"general data: {category} <-")
        )
        assert entry.dataset_id in line and entry.license in line and str(mirror / category) in line, line
    # a catalog family other than the tiny one gets the same curated data (no weights needed to plan)
    resolved = plan(_recipe(tmp_path, {"family": "qwen3-0.6b"}, mirror=mirror))
    assert resolved.recipe.stages[0].data_mixing.general_data == "curated"


def test_tiny_family_and_folders_with_its_tokenizer_keep_the_built_in_world(
    tmp_path, micro_model_dir
) -> None:
    for model in ({"family": "tiny"}, {"path": str(micro_model_dir), "checkpoint": "post-trained"}):
        resolved = plan(_recipe(tmp_path, model))
        mixing = resolved.recipe.stages[0].data_mixing
        assert mixing.general_data == "builtin" and mixing.general_mirror is None, model
        assert "built-in generated world" in render_plan(resolved)


def test_offline_without_a_mirror_is_one_line_at_plan_time(tmp_path, stand_ins, monkeypatch, capsys) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = _recipe(  # asked for by name: refused (by default, self-replay takes over: test_self_replay.py)
        tmp_path, {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}, general_data="curated"
    )
    for command in (["plan", str(recipe)], ["train", str(recipe), "--quiet", "--no-eval"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert MIRROR_ENV in err and "stages[0].data_mixing.general_mirror" in err and "data mirror" in err
        assert "general_data: self" in err
    assert not (tmp_path / "runs").exists()  # refused before a run folder is written
    # customer-only data needs no general data at all
    recipe = _recipe(
        tmp_path, {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}, customer_percent=100
    )
    assert plan(recipe).recipe.stages[0].data_mixing.general == {}


def test_a_broken_mirror_names_the_folder_and_the_fix(tmp_path) -> None:
    never = lambda: pytest.fail("a mirror never probes the Hub")  # noqa: E731
    with pytest.raises(DataError, match=r"is not a folder .*tunesmith data mirror"):
        check_sources(["math"], str(tmp_path / "nope"), where="stages[0].data_mixing", hub_reachable=never)
    mirror = write_fixture_mirror(tmp_path / "m", rows_per_category=2)
    with pytest.raises(DataError, match=r"knowledge is missing"):
        import shutil

        shutil.rmtree(mirror / "knowledge")
        check_sources(["math", "knowledge"], str(mirror), where="stages[0].data_mixing", hub_reachable=never)
    from datasets import Dataset

    Dataset.from_list([{"question": "q"}]).save_to_disk(str(mirror / "knowledge"))
    with pytest.raises(DataError, match=r"lacks column 'instruction'"):
        check_sources(["knowledge"], str(mirror), where="stages[0].data_mixing", hub_reachable=never)
    with pytest.raises(DataError, match=r"general.poetry: no curated dataset"):
        check_sources(["poetry"], str(mirror), where="stages[0].data_mixing", hub_reachable=never)


# ------------------------------------------------------------------------------------------- training


def test_mixed_sft_on_the_qwen3_stand_in_trains_on_the_mirror(tmp_path, stand_ins) -> None:
    mirror = write_fixture_mirror(tmp_path / "mirror", rows_per_category=12, tag="mirrored")
    recipe = _recipe(
        tmp_path, {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}, mirror=mirror, steps=4
    )
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    stage = tmp_path / "runs" / "curated" / "sft"
    mix = json.loads((stage / "data" / "mix.json").read_text())["sources"]
    rows = [json.loads(line) for line in (stage / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 32  # 4 steps x 8
    assert mix["customer"]["examples"] == 16
    assert {name for name in mix if name != "customer"} == DEFAULT_FIVE
    assert sum(mix[name]["examples"] for name in DEFAULT_FIVE) == 16
    general = [row for row in rows if row["messages"][0]["content"].startswith("mirrored ")]
    assert len(general) == 16
    for category in DEFAULT_FIVE:  # every category's rows are the mirror's, in chat form
        assert any(
            row["messages"][0]["content"].startswith(f"mirrored {category} question") for row in general
        )
    assert all(row["messages"][-1]["role"] == "assistant" for row in general)
    result = json.loads((stage / "result.json").read_text())
    assert result["steps"] == 4


def test_sources_reshuffle_each_pass_and_serve_every_row(tmp_path) -> None:
    mirror = write_fixture_mirror(tmp_path / "mirror", rows_per_category=10)
    source = curated_sources(["math"], "sft", mirror=str(mirror), seed=3)["math"]
    first = [example.messages[0]["content"] for example in source.open(0)]
    second = [example.messages[0]["content"] for example in source.open(1)]
    assert sorted(first) == sorted(second) == sorted(f"fixture math question {i}?" for i in range(10))
    assert first != second
    assert first == [example.messages[0]["content"] for example in source.open(0)]  # seeded
    cpt = curated_sources(["knowledge"], "cpt", mirror=str(mirror))["knowledge"]
    assert next(cpt.open(0)).text.startswith("fixture knowledge question")


def test_data_mirror_writes_the_layout_the_loader_reads(tmp_path, monkeypatch) -> None:
    """`tunesmith data mirror` with the Hub replaced by an in-memory dataset of GSM8K's schema (offline)."""
    import datasets
    import huggingface_hub

    calls = {}

    def fake_load_dataset(dataset_id, config, *, split, revision, streaming):
        calls["load"] = (dataset_id, config, split, revision, streaming)
        rows = [{"question": f"q{i}", "answer": f"a{i}", "extra": i} for i in range(50)]
        return datasets.Dataset.from_list(rows).to_iterable_dataset()

    class FakeApi:
        def dataset_info(self, dataset_id, revision=None):
            return type("Info", (), {"sha": "0" * 40})()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    manifest = write_mirror(tmp_path / "m", ["math"], rows_per_category=20, progress=lambda line: None)
    assert calls["load"] == ("openai/gsm8k", "main", "train", "0" * 40, True)
    assert manifest["math"]["rows"] == 20 and manifest["math"]["license"] == "MIT"
    assert json.loads((tmp_path / "m" / "tunesmith_mirror.json").read_text()) == manifest
    saved = datasets.load_from_disk(str(tmp_path / "m" / "math"))
    assert saved.column_names == ["question", "answer"] and len(saved) == 20
    origins = check_sources(["math"], str(tmp_path / "m"), where="data_mixing", hub_reachable=lambda: False)
    assert "openai/gsm8k" in origins["math"] and "(20 rows)" in origins["math"]
    with pytest.raises(SystemExit) as exited:  # the option's own range check, in the parser
        main(["data", "mirror", str(tmp_path / "m"), "--rows", "0"])
    assert exited.value.code == 2
