"""Bounded parsing (`tunesmith.bounded`) and where it is used: YAML alias bombs nested anywhere, deep or
recursive YAML, JSON nested 100k deep or with 5000-digit numbers, and FIFOs, devices and folders given as
files — each refused with one line naming the file (and line), quickly, never hanging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tunesmith import bounded
from tunesmith.bounded import LimitError, load_yaml, loads
from tunesmith.cli import main
from tunesmith.data.formats import read_examples, validate_file
from tunesmith.errors import DataError, RecipeError, UserError
from tunesmith.recipe.loading import load_recipe
from tunesmith.rewards.verifiers import load_schema, parse_json_answer

SRC = Path(__file__).resolve().parents[2] / "src"


def alias_bomb(levels: int = 9, indent: str = "") -> str:
    """The "billion laughs": level i is a list of ten aliases to level i-1 (10**levels leaves)."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


RECIPE_HEAD = """name: bomb
model: {family: tiny, checkpoint: post-trained}
stages:
  - technique: rft
    data: {train: builtin:brindle/rft}
    rft:
      reward:
        function: json_schema
        schema:
"""


# --- YAML -----------------------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_while_composing_in_milliseconds() -> None:
    started = time.perf_counter()
    with pytest.raises(LimitError, match="aliases expand to more than 100000 extra nodes") as err:
        load_yaml(alias_bomb())
    assert time.perf_counter() - started < 2
    assert err.value.line == 5  # l4: the first level past the budget (10**5 leaves)


def test_an_alias_bomb_nested_under_the_reward_schema_is_one_line_with_file_and_line(
    tmp_path, capsys
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(RECIPE_HEAD + alias_bomb(indent=" " * 10))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}:14: YAML aliases expand to more than 100000 extra nodes")
    assert main(["plan", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "alias bomb" in lines[0]


def test_ordinary_anchors_and_merge_keys_still_load() -> None:
    text = "base: &b {lr: 1.0e-4, seed: 0}\nsft: *b\nrft: {<<: *b, seed: 3}\nlist: &l [1, 2]\nagain: *l\n"
    assert load_yaml(text) == {
        "base": {"lr": 1e-4, "seed": 0},
        "sft": {"lr": 1e-4, "seed": 0},
        "rft": {"lr": 1e-4, "seed": 3},
        "list": [1, 2],
        "again": [1, 2],
    }
    assert load_yaml(alias_bomb(levels=4)) is not None  # 10**4 leaves: within the budget


def test_a_recursive_alias_and_deep_nesting_are_refused() -> None:
    with pytest.raises(LimitError, match=r"alias \*a refers to a node that contains it"):
        load_yaml("a: &a [1, *a]\n")
    started = time.perf_counter()
    with pytest.raises(LimitError, match="nested deeper than 64 levels"):
        load_yaml("x: " + "[" * 1_000_000)
    assert time.perf_counter() - started < 5


def test_the_safe_loader_still_rejects_python_tags() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")


def test_a_bomb_in_an_override_value_is_refused(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE_HEAD + "          type: object\n")
    value = "{" + alias_bomb().strip().replace("\n", ", ") + "}"  # the bomb in flow style, on one line
    with pytest.raises(RecipeError, match=r"override 'stages\[0\].rft.reward.schema=.*aliases expand"):
        load_recipe(path, [f"stages[0].rft.reward.schema={value}"])


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "huge"])
def test_a_recipe_that_is_not_a_small_regular_file_is_one_line(tmp_path, kind, monkeypatch) -> None:
    if kind == "fifo":
        path = tmp_path / "r.yaml"
        os.mkfifo(path)
        expected = "is a named pipe (FIFO), not a regular file"
    elif kind == "device":
        path, expected = Path("/dev/zero"), "is a character device, not a regular file"
    elif kind == "folder":
        path, expected = tmp_path, "is a folder, not a regular file"
    else:
        path = tmp_path / "r.yaml"
        path.write_text("name: x\n" + "# padding\n" * 200)
        monkeypatch.setattr(bounded, "MAX_DOCUMENT_BYTES", 1000)
        expected = "is larger than 1000 bytes, the limit for a file read whole"
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == f"{path}: {expected} — pass a recipe .yaml file"


def test_a_schema_file_with_a_bomb_or_deep_json_is_refused(tmp_path) -> None:
    bomb = tmp_path / "schema.yaml"
    bomb.write_text(alias_bomb())
    with pytest.raises(UserError, match=rf"{bomb}:5: YAML aliases expand"):
        load_schema(str(bomb), None)
    deep = tmp_path / "schema.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        load_schema(str(deep), None)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="named pipe"):
        load_schema(str(fifo), None)


# --- JSON -----------------------------------------------------------------------------------------------


def test_json_limits() -> None:
    with pytest.raises(LimitError, match="more than 128 levels"):
        loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LimitError, match="5000 digits"):
        loads('{"n": ' + "7" * 5000 + "}")
    with pytest.raises(LimitError, match="5001 characters"):
        loads('{"n": 1.' + "5" * 4999 + "}")
    at_limit = "[" * 128 + "]" * 128
    assert loads(at_limit) is not None and loads(at_limit.encode()) is not None
    assert loads('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}  # brackets in strings do not count
    assert loads('{"s": "\\"[[[", "n": 12}\n') == {"s": '"[[[', "n": 12}
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        loads('{"a": 1} x')
    assert parse_json_answer("[" * 5000 + "]" * 5000) == (False, None)


def test_a_deep_or_huge_number_data_line_is_a_line_problem(tmp_path) -> None:
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path = tmp_path / "d.jsonl"
    deep = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    big = '{"messages": [], "weight": ' + "1" * 5000 + "}"
    path.write_text("\n".join([good, deep, big, good]) + "\n")
    report = validate_file(path)
    assert (report.valid, report.invalid, report.invalid_lines) == (2, 2, [2, 3])
    assert "nested too deeply" in str(report.issues[0]) and "5000 digits" in str(report.issues[1])
    with pytest.raises(DataError, match=rf"^{path}:2: JSON nested too deeply"):
        list(read_examples(path))


# --- files given as data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_data_is_refused_without_opening_it(tmp_path, kind) -> None:
    if kind == "fifo":
        path = tmp_path / "data.jsonl"
        os.mkfifo(path)  # opening it for reading would block until a writer comes
    else:
        path = Path("/dev/zero")  # reading it never ends
    with pytest.raises(DataError, match=rf"^{path}:1: is a .*, not a regular file — give a data file"):
        list(read_examples(path))


@pytest.mark.parametrize("kind", ["fifo", "device", "empty-folder"])
def test_data_inspect_on_a_fifo_device_or_empty_folder_exits_2_with_one_line(tmp_path, kind) -> None:
    if kind == "fifo":
        target = tmp_path / "data.jsonl"
        os.mkfifo(target)
    elif kind == "device":
        target = Path("/dev/zero")
    else:
        target = tmp_path / "empty"
        target.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "data", "inspect", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    # a file is named with its line; a folder (no lines) by its path, with the same rule `plan` applies
    where = f"{target}: not a Hugging Face datasets folder" if kind == "empty-folder" else f"{target}:1: "
    assert len(lines) == 1 and lines[0].startswith(f"tunesmith: error: {where}"), lines


def test_a_damaged_stored_recipe_in_a_run_folder_is_one_line(tmp_path) -> None:
    from tunesmith.recipe.loading import load_stored_recipe
    from tunesmith.serving.export import locate_stage

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    stored = run / "recipe.resolved.yaml"
    stored.write_text(alias_bomb())
    with pytest.raises(RecipeError, match=rf"^{stored}:5: YAML aliases expand .* — write the values out"):
        locate_stage(run)
    stored.unlink()
    os.mkfifo(stored)
    with pytest.raises(RecipeError, match=rf"^{stored}: the stored recipe is a named pipe \(FIFO\), not a"):
        load_stored_recipe(stored)


def test_a_deep_line_in_a_prompts_file_is_one_line(tmp_path) -> None:
    from tunesmith.serving.chat import read_prompts

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hi"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(UserError, match=rf"^{prompts}:2: not JSON \(JSON nested too deeply"):
        read_prompts(prompts)
