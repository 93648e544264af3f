"""Where tunesmith keeps its cache (built models, materialized built-in data).

`TUNESMITH_HOME` overrides the default `~/.cache/tunesmith`.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root: `$TUNESMITH_HOME`, else `~/.cache/tunesmith`."""
    root = os.environ.get("TUNESMITH_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tunesmith"


def models_dir() -> Path:
    return home() / "models"


def data_dir() -> Path:
    return home() / "data"
