"""Where tunesmith keeps its cache (built models, materialized built-in data, error logs).

`TUNESMITH_HOME` overrides the default `~/.cache/tunesmith`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.errors import UserError

HOME_FIX = "point TUNESMITH_HOME at a writable folder (or unset it to use ~/.cache/tunesmith)"


def home() -> Path:
    """The cache root: `$TUNESMITH_HOME`, else `~/.cache/tunesmith`. A one-line error when it names a file."""
    root = os.environ.get("TUNESMITH_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "tunesmith"
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "TUNESMITH_HOME" if root else "the cache folder"
        what = "is a file" if blocker == path else f"{blocker} is a file"
        raise UserError(f"{where} {path}: {what}, not a folder — {HOME_FIX}")
    return path


def models_dir() -> Path:
    return home() / "models"


def data_dir() -> Path:
    return home() / "data"


def logs_dir() -> Path:
    """Tracebacks of unexpected errors outside a run folder (`tunesmith.cli.main`)."""
    return home() / "logs"
