"""A data snapshot: what one streaming pass over a stage's data file found, taken once and shared.

`resolve()` takes one snapshot of every file a recipe names (training, validation, quality and general-source
files, the evaluation domain file), checks it as `data inspect` does (`check()`: the first invalid line is
an error) and keeps it on the plan; `plan` shows its valid examples, `lint` measures token lengths on its head sample, and the mixer takes its counts
instead of pre-scanning the file again. Memory stays flat in the file size: the pass streams the file and
keeps only counts and the first `HEAD_EXAMPLES + 1` valid examples. The fingerprint (a hash of the file's
bytes) is computed on first use and kept: hashing each parsed example in the pass cost more than the parse
itself would gain back (measured: 3.4 s -> 5.7 s for a 63 MB SFT file), a byte hash costs ~0.1 s.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tunesmith.data.formats import Example, ValidationReport, read_examples
from tunesmith.errors import DataError

HEAD_EXAMPLES = 2000
"""Valid examples kept from the head of the file: the sample `lint` measures token lengths on."""


@dataclass(frozen=True)
class DataSnapshot:
    """One file's counts and fingerprint (plus a head sample), from a single streaming pass.

    `records`: non-blank records (valid + invalid; a .txt file's non-empty lines); `examples`: the valid
    ones, which `plan` shows and derives steps from.
    `fingerprint`: blake2b of the file's bytes (a folder: of its files, in name order), on first use.
    `report`: the reader's exact counts (valid, invalid, high quality, format).
    `head`: the first `HEAD_EXAMPLES + 1` valid examples (one more than sampled, to tell a capped sample).
    `error`: why no valid example could be read (then only `records` is known).
    """

    path: Path
    kind: str | None
    records: int
    report: ValidationReport
    head: tuple[Example, ...]
    error: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        if self.path.is_dir():
            files = sorted(p for p in self.path.rglob("*") if p.is_file())
        else:  # never open a FIFO or a device: it may block
            files = [self.path] if self.path.is_file() else []
        for file in files:
            digest.update(str(file.relative_to(self.path) if self.path.is_dir() else "").encode() + b"\0")
            with open(file, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        return digest.hexdigest()

    @property
    def examples(self) -> int:
        """Valid examples (what training reads)."""
        return self.report.valid

    @property
    def high_quality(self) -> int:
        return self.report.high_quality

    def first_issue(self) -> str | None:
        """The first invalid line as the reader words it (`FILE:LINE: what — fix`), if any."""
        return str(self.report.issues[0]) if self.report.issues else None

    def check(self) -> DataSnapshot:
        """The file as `data inspect` judges it: raises `DataError` (`FILE:LINE: what — fix`, exit 2) when the
        file is unreadable or any line is invalid — nothing is computed from a file that would fail training.
        Returns the snapshot (valid examples only are counted in `examples`)."""
        issue = self.first_issue()
        if issue is not None:  # the line `data inspect` stops at (before "no valid examples")
            more = f" ({self.report.invalid} invalid lines in all)" if self.report.invalid > 1 else ""
            raise DataError(issue + more)
        if self.error is not None:
            raise DataError(self.error)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "records": self.records,
            "examples": self.examples,
            "high_quality": self.high_quality,
            "invalid": self.report.invalid,
            "fingerprint": self.fingerprint,
        }


#: snapshots taken in this process, by file identity (a file that changes gets a new key): `plan`, `lint`
#: and `train` in one process, or a sweep's trials, read each file once. Bounded: each keeps <= 2001 examples.
_TAKEN: dict[tuple[Any, ...], DataSnapshot] = {}
_TAKEN_MAX = 32


DATASETS_FOLDER_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def check_data_folder(path: Path, ref: str | os.PathLike[str]) -> None:
    """A folder given as data must be a saved Hugging Face datasets folder (what `Dataset.save_to_disk`
    writes); any other folder (a folder of JSONL files) is one `RecipeError`-like line: the one rule that
    `plan`, `lint`, `train` and `data inspect` share."""
    from tunesmith.errors import DataError

    if path.is_dir() and not any((path / name).exists() for name in DATASETS_FOLDER_MARKERS):
        raise DataError(
            f"{ref}: not a Hugging Face datasets folder — pass a JSONL file or a folder written by "
            "Dataset.save_to_disk"
        )


def take_snapshot(path: str | os.PathLike[str], kind: str | None) -> DataSnapshot:
    """Stream `path` once (invalid lines counted, not fatal) and return its snapshot; a regular file already
    snapshotted in this process, unchanged (same inode, size and modification time), is not read again.

    A `.txt` file's records are its non-empty lines (documents are separated by blank lines), as the
    line count `plan` has always shown for it."""
    path = Path(path)
    try:
        status = path.stat()
    except OSError:
        status = None
    if status is None or not path.is_file():
        return _take(path, kind)
    key = (str(path.resolve()), kind, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    snapshot = _TAKEN.get(key)
    if snapshot is None:
        snapshot = _take(path, kind)
        if len(_TAKEN) >= _TAKEN_MAX:
            _TAKEN.pop(next(iter(_TAKEN)))
        _TAKEN[key] = snapshot
    return snapshot


def _take(path: Path, kind: str | None) -> DataSnapshot:
    report = ValidationReport(file=str(path))
    head: list[Example] = []
    keep = HEAD_EXAMPLES + 1
    txt_lines = 0
    error = None
    try:
        for example in read_examples(path, kind, skip_invalid=True, report=report):
            if len(head) < keep:
                head.append(example)
            if example.text is not None and path.suffix == ".txt":
                txt_lines += example.text.count("\n") + 1
    except DataError as err:
        error = str(err)
    records = report.valid + report.invalid
    if path.suffix == ".txt":
        records = txt_lines + report.invalid
    if error is not None and path.is_file() and path.suffix != ".parquet":
        records = _nonblank_lines(path)  # unreadable as `kind` data: still show how many lines it has
    return DataSnapshot(path, kind, records, report, tuple(head), error)


def _nonblank_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
