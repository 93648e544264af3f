"""Run directories and atomic file writes.

Every file tunesmith writes goes through `atomic_write_*` (write a temp file in the same folder, fsync,
then `os.replace`), so a crash or `kill -9` never leaves a half-written file behind: readers see either
the old content or the new one. Directories (checkpoints) are published the same way with
`atomic_directory`: built under a hidden temp name, renamed into place when complete.

Layout of a run::

    runs/<name>/
      recipe.resolved.yaml   the resolved recipe (every value, with provenance in plan.json)
      plan.json              the plan: values, where each came from, derived numbers
      manifest.json          package versions, python, platform, time, command line
      <stage>/               one folder per stage (written by the training issue)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import yaml

_MANIFEST_PACKAGES = (
    "tunesmith",
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "optuna",
    "pydantic",
    "numpy",
)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same folder + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def atomic_write_yaml(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def atomic_write_jsonl(path: str | os.PathLike[str], rows: list[Any]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory under a hidden temp name; rename it to `path` only if the block succeeds.

    An existing `path` is replaced. A crash inside the block leaves only a `.<name>.tmp-*` folder,
    which no reader picks up (and `clean_stale_temp_dirs` removes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            trash = path.with_name(f".{path.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temp_dirs(folder: str | os.PathLike[str]) -> int:
    """Remove leftovers of interrupted `atomic_directory` / `atomic_write_*` calls. Returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in folder.iterdir():
        if entry.name.startswith(".") and (".tmp" in entry.name or ".old-" in entry.name):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _MANIFEST_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def manifest(command: list[str] | None = None) -> dict[str, Any]:
    """What is needed to reproduce a run: versions, interpreter, platform, time, command line."""
    return {
        "created_unix": time.time(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command if command is not None else sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }


class RunDir:
    """A run folder `runs/<name>/`: the resolved recipe, the plan, the manifest, and one folder per stage."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, runs_root: str | os.PathLike[str], name: str) -> RunDir:
        run = cls(Path(runs_root) / name)
        run.root.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_dirs(run.root)
        return run

    @property
    def resolved_recipe_path(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def stage_dir(self, stage_name: str) -> Path:
        path = self.root / stage_name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_manifest(self, command: list[str] | None = None) -> Path:
        return atomic_write_json(self.manifest_path, manifest(command))


class ResolvedLike(Protocol):
    """What `prepare_run` reads of a `tunesmith.recipe.resolve.ResolvedRecipe` (a protocol: this module sits
    below the recipe layer and imports nothing from it)."""

    @property
    def recipe(self) -> Any: ...

    def to_dict(self) -> dict[str, Any]: ...

    def to_json(self) -> dict[str, Any]: ...


def prepare_run(resolved: ResolvedLike, runs_root: str | os.PathLike[str] | None = None) -> RunDir:
    """Create `runs/<name>/` with the resolved recipe, the plan (values, provenance, derived numbers) and
    a manifest of package versions — all written atomically. Training stages add their folders later."""
    run = RunDir.create(
        runs_root if runs_root is not None else resolved.recipe.output_dir, resolved.recipe.name
    )
    atomic_write_yaml(run.resolved_recipe_path, resolved.to_dict())
    atomic_write_json(run.plan_path, resolved.to_json())
    run.write_manifest()
    return run
