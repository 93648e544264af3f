"""What `train --resume` checks before it continues a run: the versions that wrote it, its data, and its stage
folders.

A run's `manifest.json` records the package versions that started it (`runs.manifest`) and, from here, the
fingerprint of every stage's data files (`data`); each resume appends the versions that continued it
(`resumes`). Resuming states every difference in one line, and refuses where continuing would not reproduce
the run unless the user confirms with `--accept-changes`:

- a different major version of transformers or TRL (their trainers' defaults and checkpoint formats change
  across majors; minor versions are named, not refused);
- a changed data file (its fingerprint differs from the one the run started with);
- a folder of the run that holds a stage's records (checkpoints, metrics, result) under a name no stage of the
  recipe has (a renamed stage folder): the recipe's stage of that place would be trained again from step 0.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.recipe.resolve import ResolvedRecipe
from tunesmith.runs import atomic_write_json, package_versions, read_json_record

REPORTED_PACKAGES = ("tunesmith", "torch", "transformers", "trl", "peft")
"""The versions a resume names when they differ from the ones that wrote the run."""
MAJOR_PACKAGES = ("transformers", "trl")
"""A different major version of these refuses a resume (without --accept-changes)."""
RUN_FOLDERS = ("logs", "eval", "report")
"""Folders of a run that are not stages."""
STAGE_RECORDS = ("result.json", "checkpoints", "metrics.jsonl", "best")
CONFIRM = "--accept-changes"


def data_fingerprints(resolved: ResolvedRecipe) -> dict[str, dict[str, str]]:
    """Stage name -> {role: fingerprint} of the data files `resolve()` read (train, validation, quality)."""
    out: dict[str, dict[str, str]] = {}
    for plan in resolved.stages:
        files = {"train": plan.train_data, "validation": plan.validation_data, "quality": plan.quality_data}
        out[plan.name] = {role: snap.fingerprint for role, snap in files.items() if snap is not None}
    return out


def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def check_resume(run_dir: Path, resolved: ResolvedRecipe, *, accept: bool) -> dict[str, Any]:
    """State what changed since the run was written; refuse (`UserError`) where resuming would not reproduce
    it, unless `accept`. Returns the manifest entry the resume appends (`record_resume`)."""
    manifest = read_json_record(run_dir / "manifest.json", fix="restore it, or start again with --overwrite")
    writers = (manifest.get("resumes") or [manifest])[-1]  # the versions that wrote the latest part
    old = writers.get("packages") or {}
    now = package_versions()
    changed = [name for name in REPORTED_PACKAGES if name in old and old.get(name) != now.get(name)]
    majors = [
        name for name in MAJOR_PACKAGES if name in changed and _major(old[name]) != _major(now.get(name))
    ]
    data = _changed_data(manifest.get("data") or {}, data_fingerprints(resolved), resolved)
    orphans = _orphan_stage_folders(run_dir, resolved)
    said = []
    if changed:
        said.append(
            "written with "
            + ", ".join(f"{name} {old[name]}" for name in changed)
            + "; now "
            + ", ".join(f"{name} {now.get(name)}" for name in changed)
        )
    if data:
        said.append("data changed since the run started: " + ", ".join(data))
    if orphans:
        said.append(", ".join(orphans))
    blocking = [f"a different major version of {name}" for name in majors] + (
        ["changed data"] if data else []
    )
    blocking += ["stage folders that match no stage of the recipe"] if orphans else []
    if blocking and not accept:
        raise UserError(
            f"--resume {run_dir}: {'; '.join(said)} — resuming would not reproduce the run ({', '.join(blocking)}); "
            f"start a new run (--name NEW_NAME){', rename the folder back' if orphans else ''}, or pass "
            f"{CONFIRM} to continue anyway"
        )
    if said:
        print(f"--resume: {'; '.join(said)}" + (f" ({CONFIRM})" if blocking else ""), file=sys.stderr)
    return {
        "created_unix": time.time(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "packages": now,
        "accepted": blocking,
    }


def record_resume(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append a resume's versions to the run's manifest (its first versions stay as they were)."""
    path = run_dir / "manifest.json"
    manifest = read_json_record(path, fix="restore it, or start again with --overwrite")
    manifest["resumes"] = [*(manifest.get("resumes") or []), entry]
    atomic_write_json(path, manifest)


def _changed_data(
    stored: dict[str, dict[str, str]], current: dict[str, dict[str, str]], resolved: ResolvedRecipe
) -> list[str]:
    files = {}
    for stage in resolved.recipe.stages:
        files[stage.name, "train"] = stage.data.train
        files[stage.name, "validation"] = stage.data.validation
        files[stage.name, "quality"] = stage.data_mixing.quality_file
    changed = []
    for stage, roles in current.items():
        for role, fingerprint in roles.items():
            before = (stored.get(stage) or {}).get(role)
            if before is not None and before != fingerprint:
                changed.append(f"{stage} {role} ({files.get((stage, role))})")
    return changed


def _orphan_stage_folders(run_dir: Path, resolved: ResolvedRecipe) -> list[str]:
    names = [stage.name for stage in resolved.recipe.stages]
    out = []
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in names or folder.name in RUN_FOLDERS:
            continue
        if any((folder / record).exists() for record in STAGE_RECORDS):
            missing = [name for name in names if not (run_dir / name).is_dir()]
            where = f"; stage {missing[0]} has no folder and would train from step 0" if missing else ""
            out.append(
                f"folder {folder.name}/ holds a stage's records but the recipe has no stage {folder.name!r}{where}"
            )
    return out
