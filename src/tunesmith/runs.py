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
      logs/                  the full traceback of an unexpected error (the CLI prints one line)

A run folder is published whole (`prepare_run`: built under a hidden temp name, then renamed), never written
over: a name that exists is continued with `--resume` or replaced with `--overwrite` (the old folder is
moved aside and deleted only once the new run has started; a failed start puts it back).
"""

from __future__ import annotations

import contextlib
import errno
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

from tunesmith.errors import UserError

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


MAX_NAME_BYTES = 200
"""Run and stage names become folder names: at most 200 bytes of UTF-8 (file systems allow 255, and the
hidden temp names of `atomic_directory` add a prefix and suffix)."""


def has_lone_surrogate(value: Any) -> bool:
    """Does a string (in a JSON/YAML tree) hold a lone surrogate? JSON's and YAML's `\\ud800` escapes decode
    to one, and no UTF-8 writer or tokenizer accepts it: readers of user input refuse it up front."""
    if isinstance(value, str):
        return not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def folder_name_problem(name: str) -> str | None:
    """What makes `name` unusable as a run or stage folder name (None: usable). The one rule for both."""
    if not name:
        return "is empty"
    if has_lone_surrogate(name):
        return "contains a lone surrogate (invalid Unicode)"
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long (at most {MAX_NAME_BYTES} in UTF-8)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character (NUL, newline, tab, ...)"
    if any(c in name for c in "/\\:"):
        return "contains '/', '\\' or ':'"
    if name.startswith("."):
        return "starts with '.'"
    return None


def check_run_name(name: str, option: str = "--name") -> str:
    """A name given on the command line that becomes a folder (`sweep --name`, `advise --name`): the rule of
    `folder_name_problem`, which the recipe's `name` (and so `train --name`) follows too."""
    problem = folder_name_problem(name)
    if problem is not None:
        raise UserError(
            f"{option} {name!r}: {problem} — a name becomes one folder under output_dir: use a plain folder "
            "name (no '/', '\\', ':', control characters or leading '.')"
        )
    return name


def check_new_file(path: str | os.PathLike[str], *, force: bool, option: str = "--out") -> Path:
    """Refuse to write over an existing file unless `force` (`--force`): a user's file is never replaced
    silently (`plan --out`, `advise --out`, `generate --out`, `probe --out`, `sweep --export`)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder — name a file")
    if path.exists() and not force:
        raise UserError(
            f"{option} {path}: the file exists — choose another name, or pass --force to replace it"
        )
    return path


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
def atomic_directory(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Build a directory under a hidden temp name; rename it to `path` only if the block succeeds.

    An existing `path` is replaced (`replace=False`: `FileExistsError` unless the block moved it away). A
    crash inside the block leaves only a `.<name>.tmp-*` folder, which no reader picks up (and
    `clean_stale_temp_dirs` removes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if not replace:
            _rename_no_replace(tmp, path)
        elif path.exists():
            trash = path.with_name(f".{path.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _rename_no_replace(source: Path, target: Path) -> None:
    """Rename `source` to `target`, failing with `FileExistsError` if `target` exists (even as an empty
    folder, which a plain rename would replace)."""
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "exists", str(target))
    try:
        os.rename(source, target)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from err
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


def read_json_record(path: str | os.PathLike[str], *, fix: str) -> Any:
    """Read one of a run's JSON files (`checkpoints.json`, `result.json`, ...); a damaged or unreadable file
    is a one-line `UserError` naming it and `fix`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing — {fix}") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror}) — {fix}") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise UserError(f"{path}: damaged ({' '.join(str(err).split())}) — {fix}") from None


def read_jsonl_record(path: str | os.PathLike[str], *, fix: str) -> list[dict[str, Any]]:
    """Read one of a run's JSONL files (`metrics.jsonl`): every line a JSON object; a damaged line is a
    one-line `UserError` naming FILE:LINE and `fix`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror}) — {fix}") from None
    except ValueError as err:
        raise UserError(f"{path}: damaged ({' '.join(str(err).split())}) — {fix}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: damaged line (not a JSON object) — {fix}")
        rows.append(row)
    return rows


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


OUTPUT_DIR_FIX = "set output_dir (in the recipe, or output_dir=DIR on the command line) to a writable folder"


def folder_error(path: str | os.PathLike[str], err: OSError, fix: str) -> UserError:
    """A one-line error for a folder that cannot be created or written: a file where a folder should be, no
    permission, a read-only or full file system."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        what = "is a file, not a folder" if blocker == path else f"{blocker} is a file, not a folder"
    else:
        what = f"cannot be written ({err.strerror or type(err).__name__})"
    return UserError(f"{path}: {what} — {fix}")


def make_folder(path: str | os.PathLike[str], fix: str) -> Path:
    """`mkdir -p path`, with a one-line `UserError` (`folder_error`) when it cannot be done."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise folder_error(path, err, fix) from None
    return path


def run_exists_message(root: Path) -> str:
    return (
        f"run folder {root} exists — continue it with `tunesmith train --resume {root}`, start a new run "
        "with --name NEW_NAME, or replace it with --overwrite"
    )


def prepare_run(
    resolved: ResolvedLike,
    runs_root: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    manifest_extra: dict[str, Any] | None = None,
) -> tuple[RunDir, Path | None]:
    """Publish a new `runs/<name>/` with the resolved recipe, the plan (values, provenance, derived numbers)
    and a manifest of package versions: built under a hidden temp name, renamed into place when complete.
    Training stages add their folders later.

    A run folder that exists is refused (`run_exists_message`) unless `overwrite`: then it is moved aside to
    `.<name>.replaced-<time>` and that path is returned with the run (`keep_or_discard` deletes it, or puts
    it back when the new run never started). `manifest_extra`: more of what wrote the run (its data's
    fingerprints), kept in `manifest.json`."""
    root = Path(runs_root if runs_root is not None else resolved.recipe.output_dir)
    target = root / resolved.recipe.name
    make_folder(root, OUTPUT_DIR_FIX)
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise UserError(run_exists_message(target))
    aside = None
    try:
        with atomic_directory(target, replace=False) as tmp:
            atomic_write_yaml(tmp / "recipe.resolved.yaml", resolved.to_dict())
            atomic_write_json(tmp / "plan.json", resolved.to_json())
            atomic_write_json(tmp / "manifest.json", {**manifest(), **(manifest_extra or {})})
            if target.exists() or target.is_symlink():
                aside = root / f".{target.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
                os.replace(target, aside)
    except OSError as err:
        if aside is not None and not target.exists():
            os.replace(aside, target)
        if isinstance(err, FileExistsError):  # another process published the same name first
            raise UserError(run_exists_message(target)) from None
        raise folder_error(root, err, OUTPUT_DIR_FIX) from None
    return RunDir(target), aside


def keep_or_discard(run: RunDir, aside: Path | None, *, keep: bool) -> None:
    """End a run's start: `keep` it (and delete the folder `--overwrite` moved aside), or remove it and put
    the moved-aside folder back (a start that failed before anything worth resuming was written)."""
    if keep:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return
    shutil.rmtree(run.root, ignore_errors=True)
    if aside is not None:
        os.replace(aside, run.root)


_ACTIVE_RUN: list[Path] = []


def set_active_run(root: Path | None) -> None:
    """The run folder this process works in (the CLI writes an unexpected error's traceback into it)."""
    _ACTIVE_RUN[:] = [root] if root is not None else []


def active_run() -> Path | None:
    return _ACTIVE_RUN[0] if _ACTIVE_RUN and _ACTIVE_RUN[0].is_dir() else None
