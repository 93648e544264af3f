"""Raw records from files, streamed: JSONL lines, `.txt` documents, parquet rows, Hugging Face datasets.

Nothing here reads a whole file into memory: JSONL is read line by line in binary mode with a length
cap per line (a huge single line is skipped in chunks and reported), parquet in record batches, a saved
`datasets` folder through its memory-mapped Arrow table. Decoding problems become per-line `Problem`s;
problems that make the whole file unreadable (UTF-16, gzip, a JSON array) raise `DataError` at line 1.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.data.formats.core import Problem, type_name
from tunesmith.errors import DataError
from tunesmith.runs import has_lone_surrogate

#: longest accepted line (bytes); longer lines are reported, not loaded
MAX_LINE_BYTES = 8 * 1024 * 1024
_CHUNK = 1 << 20
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt")


@dataclass(slots=True)
class Record:
    """One raw record: a parsed JSON object (`row`), a `.txt` document (`text`), or a `problem`."""

    file: str
    line: int
    row: dict[str, Any] | None = None
    text: str | None = None
    problem: Problem | None = None
    blank: bool = False


def iter_records(path: str | os.PathLike[str], *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    """Stream the records of a file or folder (see module docstring for what is accepted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}:1: file not found — check the path")
    if path.is_dir():
        yield from _iter_folder(path, max_line_bytes)
    elif path.suffix == ".parquet":
        yield from _iter_parquet(path)
    elif path.suffix == ".txt":
        yield from _iter_txt(path, max_line_bytes)
    else:
        yield from _iter_jsonl(path, max_line_bytes)


def _sniff(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(
            f"{path}:1: file is UTF-16 encoded — re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
        )
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}:1: file is gzip-compressed — decompress it first (gunzip)")
    if head.startswith(b"PAR1"):
        raise DataError(f"{path}:1: file is parquet but not named .parquet — rename it to *.parquet")


def _read_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw bytes without the BOM, or None when the line is too long)."""
    with open(path, "rb") as handle:
        number = 0
        while True:
            raw = handle.readline(max_line_bytes + 1)
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while True:  # skip the rest of the huge line without holding it
                    chunk = handle.readline(_CHUNK)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                yield number, None
                continue
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            yield number, raw


def _too_long(max_line_bytes: int) -> Problem:
    return Problem(
        f"line is longer than {max_line_bytes // (1024 * 1024)} MiB",
        "split the example or check the file for a missing newline",
    )


def _decode(raw: bytes) -> tuple[str | None, Problem | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as err:
        return None, _bad_utf8(err)


def _iter_jsonl(path: Path, max_line_bytes: int) -> Iterator[Record]:
    _sniff(path)
    file = str(path)
    loads = _loads
    for number, raw in _read_lines(path, max_line_bytes):
        if raw is None:
            yield Record(file, number, problem=_too_long(max_line_bytes))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Record(file, number, problem=_bad_utf8(err))
            continue
        if not text or text.isspace():
            yield Record(file, number, blank=True)
            continue
        try:
            row = loads(text)
        except json.JSONDecodeError as err:
            if number == 1 and text.lstrip().startswith("["):
                raise DataError(
                    f"{file}:1: file is a JSON array, not JSONL — write one JSON object per line"
                ) from None
            yield Record(file, number, problem=_json_problem(err, raw.endswith(b"\n")))
            continue
        except ValueError as err:  # an integer past Python's int/str digit limit
            what = f"a number longer than {sys.get_int_max_str_digits()} digits ({type(err).__name__})"
            yield Record(file, number, problem=Problem(what, "shorten the number or write it as a string"))
            continue
        if "\\u" in text and has_lone_surrogate(row):
            problem = Problem(
                "a string holds a lone surrogate (\\ud800-\\udfff, invalid Unicode)", "fix the text"
            )
            yield Record(file, number, problem=problem)
            continue
        if type(row) is not dict:
            yield Record(
                file,
                number,
                problem=Problem(
                    f"line is a JSON {type_name(row)}, not an object", "write one JSON object per line"
                ),
            )
            continue
        yield Record(file, number, row)


_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    """`json.loads`, faster on the common line (no leading whitespace): `raw_decode` then a check that
    only whitespace follows; anything unusual goes through `json.loads` for its exact error."""
    try:
        value, end = _raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)  # raises "Extra data" with the position
    return value


def _bad_utf8(err: UnicodeDecodeError) -> Problem:
    return Problem(f"invalid UTF-8 at byte {err.start} of the line", "re-save the file as UTF-8")


def _json_problem(err: json.JSONDecodeError, has_newline: bool) -> Problem:
    if not has_newline:
        return Problem(
            f"last line is truncated (invalid JSON at column {err.colno} and no final newline)",
            "the file was probably cut off while writing; re-export it or delete the line",
        )
    return Problem(f"invalid JSON: {err.msg} at column {err.colno}", "fix the JSON on this line")


def _iter_txt(path: Path, max_line_bytes: int) -> Iterator[Record]:
    """A `.txt` file: documents separated by blank lines; a document's line is its first line."""
    _sniff(path)
    file = str(path)
    lines: list[str] = []
    start = 0
    problem: Problem | None = None
    for number, raw in _read_lines(path, max_line_bytes):
        text, line_problem = (None, _too_long(max_line_bytes)) if raw is None else _decode(raw)
        if line_problem or text is None:
            if not lines and problem is None:
                start = number
            problem = problem or line_problem
            lines.append("")
            continue
        if text.strip():
            if not lines:
                start = number
            lines.append(text.rstrip("\r\n"))
            continue
        if lines:
            yield _txt_record(file, start, lines, problem)
            lines, problem = [], None
        yield Record(file, number, blank=True)
    if lines:
        yield _txt_record(file, start, lines, problem)


def _txt_record(file: str, start: int, lines: list[str], problem: Problem | None) -> Record:
    if problem:
        return Record(file, start, problem=problem)
    return Record(file, start, text="\n".join(lines))


def _drop_nulls(value: Any) -> Any:
    """Arrow fills absent optional keys with null; drop them so validators see the row as written."""
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


def _iter_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    file = str(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataError(
            f"{file}:1: cannot read parquet ({' '.join(str(err).split())}) — re-export the file"
        ) from None
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield Record(file, number, row=_drop_nulls(row))


def _iter_folder(path: Path, max_line_bytes: int) -> Iterator[Record]:
    """A saved `datasets` folder (`save_to_disk`), else the data files inside it, in name order."""
    if any((path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
        yield from _iter_saved_dataset(path)
        return
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not files:
        raise DataError(f"{path}:1: folder has no data files — put *.jsonl, *.parquet or *.txt files in it")
    for file in files:
        yield from iter_records(file, max_line_bytes=max_line_bytes)


def _iter_saved_dataset(path: Path) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except Exception as err:
        raise DataError(
            f"{path}:1: cannot load the saved dataset ({' '.join(str(err).split())}) — re-save it"
        ) from None
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            splits = ", ".join(dataset)
            raise DataError(
                f"{path}:1: dataset has no 'train' split (has {splits}) — save the split you want alone"
            )
        dataset = dataset["train"]
    file = str(path)
    for number, row in enumerate(dataset, start=1):
        yield Record(file, number, row=_drop_nulls(row))
