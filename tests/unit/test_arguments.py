"""Numeric command-line options: a value outside its range is refused by argparse before anything runs, with
exit code 2 and one line that names the option (`tunesmith.arguments`, shared by the CLI and `sweep`)."""

from __future__ import annotations

import argparse

import pytest

from tunesmith.arguments import OPEN_FRACTION, POSITIVE_INT, SEED, ranged
from tunesmith.cli import main

RECIPE = "recipes/tiny-sft-lora-mixed.yaml"  # never read: argparse refuses first
SWEEP = ["sweep", RECIPE, "--preset", "lr"]

BAD_VALUES = [
    (SWEEP, "--trials", "0"),
    (SWEEP, "--trials", "two"),
    (SWEEP, "--eta", "1"),
    (SWEEP, "--eta", "2.5"),
    (SWEEP, "--min-fraction", "0"),
    (SWEEP, "--min-fraction", "1"),
    (SWEEP, "--min-fraction", "nan"),
    (SWEEP, "--stage", "-1"),
    (SWEEP, "--heartbeat-seconds", "0"),
    (SWEEP, "--grace-seconds", "-5"),
    (
        ["probe", "--model", "tiny:post-trained", "--data", "x.jsonl", "--reward", "exact_match"],
        "--seed",
        "-1",
    ),
    (
        ["probe", "--model", "tiny:post-trained", "--data", "x.jsonl", "--reward", "exact_match"],
        "--prompts",
        "0",
    ),
    (["eval", "--model", "tiny:post-trained"], "--items-per-category", "0"),
    (["data", "mirror", "folder"], "--rows", "0"),
    (["trace", "runs/x"], "--step", "0"),
]


@pytest.mark.parametrize(
    ("command", "option", "value"), BAD_VALUES, ids=[f"{c[0]} {o} {v}" for c, o, v in BAD_VALUES]
)
def test_a_bad_numeric_value_is_one_line_naming_the_option(command, option, value, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"argument {option}: " in err and ("out of range" in err or "is not" in err)


def test_ranges_and_their_bounds() -> None:
    assert POSITIVE_INT("1") == 1 and SEED("0") == 0 and SEED(str(2**32 - 1)) == 2**32 - 1
    assert OPEN_FRACTION("0.5") == 0.5
    for parse, text in (
        (POSITIVE_INT, "0"),
        (SEED, str(2**32)),
        (OPEN_FRACTION, "1.0"),
        (OPEN_FRACTION, "inf"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
            parse(text)
    closed = ranged(float, low=0, high=1, expected="x")
    assert closed("0") == 0 and closed("1") == 1
    with pytest.raises(argparse.ArgumentTypeError, match="'a' is not a number — x"):
        closed("a")
