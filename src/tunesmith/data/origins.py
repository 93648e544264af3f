"""Where each row of a stage's mixed training file came from: the user's file and line, or the general
category and its source row.

The mix (`tunesmith.data.mixing`) streams `Example`s that already carry `source`, `file` and `line`
(`file:line` of the user's data; `general:<category>` and the row's index in the seeded general stream).
`OriginsWriter` records them while `train.jsonl` is written, one fixed-width entry per line of that file:

    data/origins.bin    little-endian uint32 pairs (origin id, line), entry i = line i + 1 of train.jsonl
    data/origins.json   {"origins": [[source, file], ...]}: the distinct (source, file) pairs, by id

8 bytes an example (a 10-million-row mix: 80 MB), and `read_origins` seeks straight to the entries it needs.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tunesmith.runs import atomic_write_bytes, atomic_write_json

ORIGINS_BIN = "origins.bin"
ORIGINS_INDEX = "origins.json"
_ENTRY = array("I").itemsize * 2

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """One training row's origin: `source` is "customer" or a general category; `file` the user's file
    (or `general:<category>` for the built-in general stream); `line` its 1-based line (the row's index in
    the general stream)."""

    source: str
    file: str
    line: int

    @property
    def where(self) -> str:
        """`file:line` for a file, `general:<category> row N` for the built-in general stream."""
        if self.file.startswith("general:"):
            return f"{self.file} row {self.line}"
        return f"{self.file}:{self.line}"


class OriginsWriter:
    """Collects the origin of every example as the training file is written; `save()` publishes both
    files (atomically) once the stream is complete."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._ids: dict[tuple[str, str], int] = {}
        self._entries = array("I")

    def add(self, source: str, file: str, line: int) -> None:
        key = (source, file)
        origin = self._ids.get(key)
        if origin is None:
            origin = self._ids[key] = len(self._ids)
        self._entries.append(origin)
        self._entries.append(max(0, int(line)))

    def track(self, examples: Iterable[T]) -> Iterator[T]:
        """Pass `examples` through, recording each one's origin; saves when the stream ends."""
        for example in examples:
            ex: Any = example
            self.add(ex.source, str(ex.file or ex.source), ex.line)
            yield example
        self.save()

    def save(self) -> None:
        entries = self._entries
        if sys.byteorder != "little":  # pragma: no cover - the format is little-endian everywhere
            entries = array("I", entries)
            entries.byteswap()
        atomic_write_bytes(self.data_dir / ORIGINS_BIN, entries.tobytes())
        atomic_write_json(self.data_dir / ORIGINS_INDEX, {"origins": [list(key) for key in self._ids]})


def read_origins(data_dir: Path, indices: Iterable[int]) -> dict[int, Origin] | None:
    """The origins of training rows `indices` (0-based lines of train.jsonl); None when the stage has no
    origins record (a run prepared before it existed). Indices past the record are left out."""
    index_path, bin_path = data_dir / ORIGINS_INDEX, data_dir / ORIGINS_BIN
    if not index_path.exists() or not bin_path.exists():
        return None
    keys = [tuple(k) for k in json.loads(index_path.read_text(encoding="utf-8"))["origins"]]
    found: dict[int, Origin] = {}
    size = bin_path.stat().st_size // _ENTRY
    with open(bin_path, "rb") as handle:
        for index in sorted(set(indices)):
            if not 0 <= index < size:
                continue
            handle.seek(index * _ENTRY)
            pair = array("I")
            pair.frombytes(handle.read(_ENTRY))
            if sys.byteorder != "little":  # pragma: no cover
                pair.byteswap()
            source, file = keys[pair[0]]
            found[index] = Origin(source, file, int(pair[1]))
    return found
