"""Hostile and broken inputs (issue 21, classes 1, 5 and 8): each is refused before anything is computed,
with exit code 2 and ONE stderr line naming the file/line or key and the fix — never counted, coerced or
dropped in silence. Every case runs the real CLI in-process (`tunesmith.cli.main`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunesmith.cli import main


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of one in-process CLI call; argparse's SystemExit counts as the exit."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    code, lines = _cli(argv, capsys)
    assert code == 2, (code, lines)
    assert len(lines) == 1, lines
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert "Traceback" not in lines[0] and "internal error" not in lines[0]
    return lines[0]


SFT_ROW = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
RFT_ROW = {"messages": [{"role": "user", "content": "2+2?"}], "reference_answer": "4"}
EVAL_ROW = {"query": "2+2?", "response": "4"}


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _sft_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(count)
    ]


def _recipe(tmp_path: Path, *, technique: str = "sft", train: Path | str | None = None, **extra: Any) -> Path:
    """A small valid recipe (tiny family); `extra` updates the stage (`stage_*`) or the top level."""
    if train is None:
        row = {"sft": SFT_ROW, "rft": RFT_ROW}[technique]
        train = _jsonl(tmp_path / "train.jsonl", [row] * 8)
    stage: dict[str, Any] = {
        "technique": technique,
        "data": {"train": str(train)},
        "hyperparameters": {"max_steps": 4, "global_batch_size": 4},
    }
    if technique == "rft":
        stage["rft"] = {"reward": "exact_match"}
    recipe: dict[str, Any] = {
        "name": "hostile",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [stage],
    }
    for key, value in extra.items():
        if key.startswith("stage_"):
            stage[key.removeprefix("stage_")] = value
        else:
            recipe[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


# ------------------------------------------------------------------ class 1: data a recipe names, validated


def _gzip_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(gzip.compress(("".join(json.dumps(SFT_ROW) + "\n" for _ in range(4))).encode()))
    return path


def _yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump([SFT_ROW] * 12))
    return path


BAD_TRAIN_FILES = {
    "gzip": (_gzip_file, ["train.jsonl:1:", "gzip-compressed"]),
    "yaml": (_yaml_file, ["train.yaml:1:", "YAML", "use JSONL"]),
    "rft-prompts-as-sft": (
        lambda tmp: _jsonl(tmp / "train.jsonl", [RFT_ROW] * 1000),
        ["train.jsonl:1:", "RFT prompts", "not SFT data"],
    ),
    "one-bad-line": (
        lambda tmp: _jsonl(tmp / "train.jsonl", [*_sft_rows(5), "{not json", *_sft_rows(5)]),
        ["train.jsonl:6:", "invalid JSON"],
    ),
    "cpt-text-as-sft": (
        lambda tmp: _jsonl(tmp / "train.jsonl", [{"text": "a document"}] * 3),
        ["train.jsonl:1:", 'CPT {"text"} row, not SFT data'],
    ),
    "missing": (lambda tmp: tmp / "nowhere.jsonl", ["stages[0].data.train", "data file not found"]),
}


@pytest.mark.parametrize("command", ["plan", "lint", "train"])
@pytest.mark.parametrize("case", sorted(BAD_TRAIN_FILES))
def test_plan_lint_and_train_refuse_a_training_file_data_inspect_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    make, expected = BAD_TRAIN_FILES[case]
    recipe = _recipe(tmp_path, train=make(tmp_path))
    _refused([command, str(recipe)], capsys, *expected)
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def _eval_rows_as_sft(tmp: Path) -> dict[str, Any]:
    return {"evaluation": {"domain": str(_jsonl(tmp / "eval.jsonl", [SFT_ROW] * 3))}}


OTHER_INPUTS = {
    "eval-domain-missing": (
        lambda tmp: {"evaluation": {"domain": str(tmp / "missing-eval.jsonl")}},
        ["evaluation.domain", "missing-eval.jsonl", "not found"],
    ),
    "eval-domain-not-gen-qa": (_eval_rows_as_sft, ["eval.jsonl:1:", "not EVAL data"]),
    "general-source-missing": (
        lambda tmp: {
            "stage_data_mixing": {
                "customer_percent": 50,
                "general": {"mine": 100},
                "general_sources": {"mine": str(tmp / "gone.jsonl")},
            }
        },
        ["data_mixing.general_sources.mine", "gone.jsonl"],
    ),
    "general-source-bad-line": (
        lambda tmp: {
            "stage_data_mixing": {
                "customer_percent": 50,
                "general": {"mine": 100},
                "general_sources": {"mine": str(_jsonl(tmp / "g.jsonl", [SFT_ROW, '{"messages": []}']))},
            }
        },
        ["g.jsonl:2:", '"messages" is empty'],
    ),
    "quality-file-bad-line": (
        lambda tmp: {
            "stage_data_mixing": {"quality_file": str(_jsonl(tmp / "q.jsonl", [SFT_ROW, SFT_ROW, "[1]"]))}
        },
        ["q.jsonl:3:", "not an object"],
    ),
}


@pytest.mark.parametrize("case", sorted(OTHER_INPUTS))
def test_every_other_file_a_recipe_names_is_checked_at_plan_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, expected = OTHER_INPUTS[case]
    _refused(["plan", str(_recipe(tmp_path, **make(tmp_path)))], capsys, *expected)


REWARDS = {
    "typo": ("exact_matchh", ["rft.reward", "did you mean 'exact_match'"]),
    "url-without-host": ("http://", ["rft.reward", "not a valid URL"]),
    "malformed-arn": ("arn:aws:lambda:us-east-1:12:function:f", ["rft.reward", "not a Lambda function ARN"]),
    "missing-file": ("missing.py:fn", ["stages[0].rft.reward", "no file", "missing.py"]),
    "missing-module": ("no_such_module_xyz:fn", ["stages[0].rft.reward", "no module 'no_such_module_xyz'"]),
    "mapping-bad-field": (
        {"function": "http://127.0.0.1:9/", "timeout_s": "soon"},
        ["stages[0].rft.reward.timeout_s", "valid number"],
    ),
    "mapping-unknown-field": (
        {"function": "exact_match", "tolerence": 1},
        ["unknown key 'stages[0].rft.reward.tolerence'"],
    ),
    "schema-file-missing": (
        {"function": "json_schema", "schema": "nowhere.json"},
        ["stages[0].rft.reward", "cannot read schema", "nowhere.json"],
    ),
    "regex-does-not-compile": (
        {"function": "regex", "pattern": "(unclosed"},
        ["stages[0].rft.reward", "regex"],
    ),
    "component-typo": (
        {"components": [{"function": "exact_match"}, {"function": "numerc"}]},
        ["rft.reward", "did you mean 'numeric'"],
    ),
}


@pytest.mark.parametrize("command", ["plan", "lint"])
@pytest.mark.parametrize("case", sorted(REWARDS))
def test_a_reward_that_cannot_work_fails_at_plan_and_lint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    spec, expected = REWARDS[case]
    recipe = _recipe(tmp_path, technique="rft", stage_rft={"reward": spec})
    line = _refused([command, str(recipe)], capsys, *expected)
    assert "rft.reward.str" not in line  # the union's string branch is never blamed for a mapping


def test_derived_numbers_count_valid_examples_not_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .txt file's examples are its documents (what training reads), not its lines."""
    text = tmp_path / "docs.txt"
    text.write_text("one\nline two\n\nthree\n\n\nfour\nfive\nsix\n")
    recipe = _recipe(tmp_path)
    data = yaml.safe_load(recipe.read_text())
    data["stages"][0].update(technique="cpt", data={"train": str(text)})
    recipe.write_text(yaml.safe_dump(data))
    assert main(["plan", str(recipe), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)["stages"][0]["numbers"]
    assert numbers["customer_examples"] == 3


# ------------------------------------------------------------------ class 5: nothing coerced or dropped


def _recipe_text(tmp_path: Path, text: str) -> Path:
    train = _jsonl(tmp_path / "train.jsonl", [SFT_ROW] * 8)
    path = tmp_path / "recipe.yaml"
    path.write_text(text.replace("TRAIN", str(train)))
    return path


RECIPE_TEXTS = {
    "duplicate-stages": (
        "name: r\nmodel: {family: tiny}\nstages:\n  - {technique: sft, data: {train: TRAIN}}\n"
        "stages:\n  - {technique: cpt, data: {train: TRAIN}}\n",
        ["recipe.yaml:5:", "duplicate key 'stages'", "first at line 3"],
    ),
    "duplicate-nested": (
        "name: r\nmodel: {family: tiny}\nstages:\n  - technique: sft\n    data: {train: TRAIN}\n"
        "    hyperparameters:\n      lr: 1.0e-4\n      lr: 1.0e-3\n",
        ["recipe.yaml:8:", "duplicate key 'lr'"],
    ),
    "lr-true": (
        "name: r\nmodel: {family: tiny}\nstages:\n  - technique: sft\n    data: {train: TRAIN}\n"
        "    hyperparameters: {lr: true}\n",
        ["recipe.yaml:6:", "stages[0].hyperparameters.lr = True", "not a boolean"],
    ),
    "flag-as-number": (
        "name: r\nmodel: {family: tiny}\nstages:\n  - technique: rft\n    data: {train: TRAIN}\n"
        "    rft: {reward: exact_match, drop_zero_variance_groups: 1}\n",
        ["drop_zero_variance_groups = 1", "expected true or false"],
    ),
    "family-and-path": (
        "name: r\nmodel: {family: tiny, path: /models/other}\nstages:\n  - {technique: sft, data: {train: TRAIN}}\n",
        ["recipe.yaml:2:", "both `family`", "keep one"],
    ),
}


@pytest.mark.parametrize("case", sorted(RECIPE_TEXTS))
def test_recipe_values_are_never_silently_replaced_or_coerced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = RECIPE_TEXTS[case]
    _refused(["plan", str(_recipe_text(tmp_path, text))], capsys, *expected)


def test_a_yaml_merge_key_is_not_a_duplicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "name: r\nmodel: {family: tiny}\nbase: &hp {lr: 1.0e-4, max_steps: 4}\n"
        "stages:\n  - technique: sft\n    data: {train: TRAIN}\n    hyperparameters: {<<: *hp, lr: 2.0e-4}\n"
    )
    code, lines = _cli(["plan", str(_recipe_text(tmp_path, text))], capsys)
    assert code == 2 and "unknown key 'base'" in lines[0]  # parsed (merge accepted); `base` is not a key


DATA_FILES = {
    "weight-0": (
        [
            {
                "messages": [
                    *SFT_ROW["messages"],
                    {"role": "user", "content": "q2"},
                    {"role": "assistant", "content": "b", "weight": 0},
                ]
            }
        ],
        ["data.jsonl:1:", "messages[3].weight is 0", "cannot honor"],
    ),
    "weight-2": (
        [{"messages": [SFT_ROW["messages"][0], {"role": "assistant", "content": "a", "weight": 2}]}],
        ["data.jsonl:1:", "weight is 2", "0 or 1"],
    ),
    "tool-calls": (
        [
            {
                "messages": [
                    SFT_ROW["messages"][0],
                    {
                        "role": "assistant",
                        "content": "calling",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                ]
            }
        ],
        ["data.jsonl:1:", '"tool_calls"', "would vanish"],
    ),
    "rft-ids-1-and-str-1": (
        [{"id": 1, **RFT_ROW}, {"id": "1", **RFT_ROW}],
        ["data.jsonl:2:", 'duplicate id "1"', "first at line 1"],
    ),
    "reference-1e999": (
        ['{"messages": [{"role": "user", "content": "q"}], "reference_answer": 1e999}'],
        ["data.jsonl:1:", "1e999 is not finite"],
    ),
    "reference-nan": (
        ['{"messages": [{"role": "user", "content": "q"}], "reference_answer": NaN}'],
        ["data.jsonl:1:", "NaN is not finite"],
    ),
    "duplicate-json-key": (['{"text": "hello", "text": ""}'], ["data.jsonl:1:", 'duplicate key "text"']),
}


@pytest.mark.parametrize("case", sorted(DATA_FILES))
def test_data_lines_are_never_silently_coerced_or_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    rows, expected = DATA_FILES[case]
    _refused(["data", "inspect", str(_jsonl(tmp_path / "data.jsonl", rows))], capsys, *expected)


def test_weight_1_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"messages": [SFT_ROW["messages"][0], {"role": "assistant", "content": "a", "weight": 1}]}]
    code, _ = _cli(["data", "inspect", str(_jsonl(tmp_path / "d.jsonl", rows)), "--format", "json"], capsys)
    assert code == 0


CLI_OPTIONS = {
    "inspect-max-length": (["data", "inspect", "x.jsonl", "--max-length", "-5"], "--max-length: -5"),
    "probe-prompts": (
        ["probe", "--model", "m", "--data", "d", "--reward", "r", "--prompts", "0"],
        "--prompts: 0",
    ),
    "probe-generations": (
        ["probe", "--model", "m", "--data", "d", "--reward", "r", "--generations", "-3"],
        "--generations: -3",
    ),
    "probe-temperature": (
        ["probe", "--model", "m", "--data", "d", "--reward", "r", "--temperature", "-1"],
        "--temperature: -1",
    ),
    "lint-probe-rate": (["lint", "r.yaml", "--probe-positive-rate", "2"], "--probe-positive-rate: 2"),
    "eval-items": (["eval", "--model", "m", "--items-per-category", "0"], "--items-per-category: 0"),
    "reward-port": (["reward", "serve", "exact_match", "--port", "70000"], "--port: 70000"),
    "not-a-number": (
        ["probe", "--model", "m", "--data", "d", "--reward", "r", "--prompts", "many"],
        "'many'",
    ),
}


@pytest.mark.parametrize("case", sorted(CLI_OPTIONS))
def test_out_of_range_options_are_refused_by_argparse(capsys: pytest.CaptureFixture[str], case: str) -> None:
    argv, expected = CLI_OPTIONS[case]
    _refused(argv, capsys, expected, "see `tunesmith")


# ------------------------------------------------------------------ class 8: messages that say the truth


def _encoded(tmp: Path, encoding: str) -> Path:
    path = tmp / "data.jsonl"
    path.write_bytes((json.dumps(SFT_ROW) + "\n").encode(encoding))
    return path


def _cr_only(tmp: Path) -> Path:
    path = tmp / "data.jsonl"
    path.write_bytes(("".join(json.dumps(SFT_ROW) + "\r" for _ in range(3))).encode())
    return path


MESSAGES = {
    "utf-32": (lambda tmp: _encoded(tmp, "utf-32"), ["data.jsonl:1:", "UTF-32"]),
    "utf-32-no-bom": (lambda tmp: _encoded(tmp, "utf-32-le"), ["data.jsonl:1:", "UTF-32"]),
    "utf-16": (lambda tmp: _encoded(tmp, "utf-16"), ["data.jsonl:1:", "UTF-16"]),
    "cr-only": (_cr_only, ["data.jsonl:1:", "CR alone"]),
}


@pytest.mark.parametrize("case", sorted(MESSAGES))
def test_whole_file_problems_are_named_as_what_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, expected = MESSAGES[case]
    line = _refused(["data", "inspect", str(make(tmp_path))], capsys, *expected)
    assert "truncated" not in line and ("UTF-16" not in line or case == "utf-16")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stages[0].hyperparameters.lr=true", "stages[0].hyperparameters.lr = True"),
        ("stages.sft.hyperparameters.max_steps=-1", "stages[0].hyperparameters.max_steps = -1"),
        ("stages[0].rft={reward: exact_match}", "stages[0]"),
    ],
)
def test_an_override_is_blamed_on_the_override_not_a_recipe_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    recipe = _recipe(tmp_path)
    line = _refused(["plan", str(recipe), override], capsys, expected)
    if override.startswith("stages[0].rft"):  # a stage-level rule: the recipe line of the stage is right
        return
    assert f"command-line override '{override}'" in line and "recipe.yaml:" not in line
