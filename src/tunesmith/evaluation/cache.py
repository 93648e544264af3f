"""Evaluation results cached by (checkpoint content hash, suite, item set, settings).

A checkpoint's identity is the SHA-256 of its files' contents (names included), not its path: the same
weights copied elsewhere hit the cache, and a retrained checkpoint in the same folder misses it. Per-file
digests are memoized by (path, size, mtime) so a multi-GB checkpoint is read once. Entries live under
`<TUNESMITH_HOME>/eval-cache/` and are written atomically (`tunesmith.runs.atomic_write_json`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tunesmith import paths
from tunesmith.runs import atomic_write_json

CACHE_VERSION = 1
"""Bump when scoring changes, so older entries are not reused."""
_CHUNK = 1 << 20


def cache_dir() -> Path:
    return paths.home() / "eval-cache"


def _file_digest(path: Path, memo: dict[str, Any]) -> str:
    stat = path.stat()
    key = str(path.resolve())
    known = memo.get(key)
    if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
        return known[2]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    memo[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
    return memo[key][2]


def folder_hash(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over the relative names and contents of every file in a model folder (hidden files and
    subfolders such as `adapter/` skipped: they do not change the weights that are loaded)."""
    folder = Path(folder)
    memo_path = cache_dir() / "file-digests.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    before = {key: list(value) for key, value in memo.items()}
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + _file_digest(path, memo).encode() + b"\n")
    if memo != before:
        atomic_write_json(memo_path, memo, indent=0)
    return digest.hexdigest()


def checkpoint_hash(source: str | os.PathLike[str], revision: str | None = None) -> str:
    """Content hash of a local model folder; for a Hub id, of its cached snapshot (or the id@revision when
    no snapshot is cached, which loading will then report)."""
    if isinstance(source, Path) or Path(str(source)).is_dir():
        return folder_hash(source)
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(str(source), revision=revision, local_files_only=True)
        return folder_hash(folder)
    except Exception:
        return hashlib.sha256(f"{source}@{revision}".encode()).hexdigest()


def entry_key(checkpoint: str, suite: str, items: str, settings: dict[str, Any]) -> str:
    payload = json.dumps(
        {"version": CACHE_VERSION, "checkpoint": checkpoint, "suite": suite, "items": items, **settings},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def load(key: str) -> dict | None:
    try:
        return json.loads((cache_dir() / key[:2] / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def store(key: str, value: dict) -> None:
    atomic_write_json(cache_dir() / key[:2] / f"{key}.json", value, indent=0)
