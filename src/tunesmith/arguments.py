"""Numeric command-line argument types: one place for the ranges of numeric options, shared by `tunesmith.cli`
and the command modules that register their own options (`tunesmith.sweeps.arguments`). A value outside its
range is refused by argparse, in one line that names the option, with exit code 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def ranged(
    cast: type[int] | type[float],
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    expected: str,
) -> Callable[[str], int | float]:
    """An argparse `type` that parses `cast` (finite) and refuses values outside [low, high] (`low_open`,
    `high_open`: that bound excluded) with `expected` as the fix."""

    def parse(text: str) -> int | float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if cast is int else 'a number'} — {expected}"
            ) from None
        too_low = low is not None and (value < low or low_open and value == low)
        too_high = high is not None and (value > high or high_open and value == high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range — {expected}")
        return value

    return parse


POSITIVE_INT = ranged(int, low=1, expected="give a whole number of 1 or more")
NON_NEGATIVE_INT = ranged(int, low=0, expected="give a whole number of 0 or more")
SEED = ranged(int, low=0, high=2**32 - 1, expected="give a seed from 0 to 4294967295 (2**32 - 1)")
FRACTION = ranged(float, low=0, high=1, expected="give a share between 0 and 1 (e.g. 0.12 for 12%)")
OPEN_FRACTION = ranged(
    float, low=0, high=1, low_open=True, high_open=True, expected="give a fraction above 0 and below 1"
)
TEMPERATURE = ranged(float, low=0, high=2, low_open=True, expected="give a temperature above 0, at most 2")
GREEDY_OR_TEMPERATURE = ranged(float, low=0, high=2, expected="give 0 (greedy) to 2")
PORT = ranged(int, low=0, high=65535, expected="give a port number 0-65535 (0 = any free port)")
