"""Raw records from files, streamed: JSONL lines, `.txt` documents, parquet rows, Hugging Face datasets.

Nothing here reads a whole file into memory: JSONL is read line by line in binary mode with a length
cap per line (a huge single line is skipped in chunks and reported), parquet in record batches, a saved
`datasets` folder through its memory-mapped Arrow table. Decoding problems become per-line `Problem`s;
problems that make the whole file unreadable (UTF-16, gzip, a JSON array) raise `DataError` at line 1.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.bounded import LimitError, check_json_depth, check_regular_file, parse_float, parse_int
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
        return
    try:
        check_regular_file(path)  # a FIFO or a device would block or never end
    except LimitError as err:
        raise DataError(f"{path}:1: {err} — give a data file (.jsonl, .parquet, .txt) or a folder") from None
    if path.suffix.lower() in _NOT_DATA:
        raise DataError(
            f"{path}:1: a {_NOT_DATA[path.suffix.lower()]} file is not a data format tunesmith reads — "
            f"{_EXPECTED}"
        )
    if path.suffix == ".parquet":
        yield from _iter_parquet(path)
    elif path.suffix == ".txt":
        yield from _iter_txt(path, max_line_bytes)
    else:
        yield from _iter_jsonl(path, max_line_bytes)


_EXPECTED = (
    "use JSONL (one JSON object per line), .txt (CPT documents), .parquet or a saved datasets folder "
    "(`tunesmith data inspect FILE` checks it)"
)
_NOT_DATA = {
    ".yaml": "YAML",
    ".yml": "YAML",
    ".csv": "CSV",
    ".tsv": "TSV",
    ".xlsx": "spreadsheet",
    ".gz": "gzip-compressed",
    ".zip": "zip archive",
    ".bz2": "bzip2-compressed",
    ".xz": "xz-compressed",
    ".zst": "zstd-compressed",
    ".tar": "tar archive",
    ".pdf": "PDF",
}
"""File name suffixes of formats users try as data, refused by name before a line is read."""

_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed — decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive — extract the data file from it"),
    (b"BZh", "bzip2-compressed — decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed — decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed — decompress it first (unzstd)"),
    (b"PAR1", "parquet but not named .parquet — rename it to *.parquet"),
)
_SNIFF_BYTES = 1 << 16


def _sniff(path: Path) -> None:
    """Whole-file problems, from the first bytes: a wide Unicode encoding, compression, parquet under
    another name, classic-Mac (CR-only) line endings."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = _wide_encoding(head)
    if encoding:
        raise DataError(
            f"{path}:1: file is {encoding} encoded — re-save it as UTF-8 (e.g. iconv -f {encoding} -t UTF-8)"
        )
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise DataError(f"{path}:1: file is {what}")
    body = head.rstrip(b"\r\n")
    if b"\r" in body and b"\n" not in body:
        raise DataError(
            f"{path}:1: lines end with CR alone (classic Mac line endings), so the file reads as one line — "
            "convert them to LF (e.g. tr '\\r' '\\n' < IN > OUT)"
        )


def _wide_encoding(head: bytes) -> str | None:
    """UTF-32 / UTF-16 (by BOM, else by the NUL bytes that ASCII text has in them), or None."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16: the UTF-32-LE BOM starts with UTF-16-LE's
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            return name
    if len(head) >= 4 and head[0] and not any(head[1:4]) or len(head) >= 4 and not any(head[:3]) and head[3]:
        return "UTF-32"
    if len(head) >= 2 and (head[0] and not head[1] or not head[0] and head[1]):
        return "UTF-16"
    return None


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
            row = _loads(text)
        except LimitError as err:
            yield Record(file, number, problem=Problem(str(err), err.fix))
            continue
        except json.JSONDecodeError as err:
            if number == 1 and text.lstrip().startswith("["):
                raise DataError(
                    f"{file}:1: file is a JSON array, not JSONL — write one JSON object per line"
                ) from None
            yield Record(file, number, problem=_json_problem(err, raw.endswith(b"\n")))
            continue
        except _UnfaithfulJson as err:
            yield Record(file, number, problem=err.problem)
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


class _UnfaithfulJson(ValueError):
    """JSON that `json` would read only by changing it: a repeated key (the last silently wins) or a
    non-finite number (NaN, Infinity, 1e999: not JSON, and no score or answer can be compared with it)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a repeated key. Measured: +40% on the JSON decode of a typical
    chat line, the price of never dropping a value."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _UnfaithfulJson(
                    Problem(
                        f'duplicate key "{key}" in a JSON object',
                        "keep one: JSON readers silently keep only the last value",
                    )
                )
            seen.add(key)
    return value


def _finite(text: str) -> float:
    value = parse_float(text)
    if math.isinf(value):
        raise _UnfaithfulJson(_non_finite(text))
    return value


def _non_finite(text: str) -> Problem:
    return Problem(
        f"the number {text[:20]} is not finite (JSON has no NaN or Infinity)",
        "write a finite number, or a string if it is text",
    )


def _refuse_constant(text: str) -> float:
    raise _UnfaithfulJson(_non_finite(text))


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_float=_finite, parse_int=parse_int, parse_constant=_refuse_constant
)
_raw_decode = _DECODER.raw_decode


def _loads(text: str) -> Any:
    """`json.loads`, faster on the common line (no leading whitespace): `raw_decode` then a check that
    only whitespace follows; anything unusual goes through `json.loads` for its exact error. The depth and
    number-size limits of `tunesmith.bounded` apply (`LimitError`)."""
    check_json_depth(text)
    try:
        value, end = _raw_decode(text)
    except json.JSONDecodeError:
        return _DECODER.decode(text)
    if end != len(text) and not text[end:].isspace():
        return _DECODER.decode(text)  # raises "Extra data" with the position
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
