"""User-facing errors.

A `UserError` is a problem with the user's input (a recipe key, a data line, a missing model): its message
is ONE line that says what is wrong, where (file:line or key path) and how to fix it. The CLI prints it
without a traceback and exits with `exit_code` (2 by default). Invariants of our own code use `assert`.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix. `str(err)` is the one-line message shown to them."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RecipeError(UserError):
    """A recipe that cannot be loaded or validated."""


class DataError(UserError):
    """A data file that cannot be read or has invalid lines. Message format: `FILE:LINE: what — fix`."""


class ModelError(UserError):
    """A model or checkpoint that cannot be found or loaded."""
