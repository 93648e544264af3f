"""`read_examples` and `validate_file`: records -> validated, normalized `Example`s, streamed.

Without `skip_invalid`, the first invalid line raises `DataError("FILE:LINE: what — fix")` (exit code 2).
With it, invalid lines are dropped and counted in the `ValidationReport` (exact counts, line numbers);
nothing is dropped silently. A file with no valid example is always an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from tunesmith.data.formats import cpt
from tunesmith.data.formats.core import KINDS, Example, Issue, Problem, ValidationReport
from tunesmith.data.formats.detect import (
    FAMILY_NAMES,
    Format,
    format_for_row,
    row_family,
    unrecognized_problem,
)
from tunesmith.data.formats.sources import MAX_LINE_BYTES, iter_records
from tunesmith.errors import DataError


def read_examples(
    path: str | os.PathLike[str],
    kind: str | None = None,
    *,
    skip_invalid: bool = False,
    report: ValidationReport | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Example]:
    """Stream the valid examples of `path` (a JSONL/.txt/parquet file or a dataset folder).

    `kind` ("cpt", "sft", "rft", "eval" or None/"auto" to detect) restricts the accepted formats. Pass a
    `report` to receive counts and issues as the stream is consumed.
    """
    kind = None if kind in (None, "auto") else kind
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, not {kind!r}")
    report = report if report is not None else ValidationReport(file=str(path))
    fmt: Format | None = None
    fmt_line = 0
    row_problems: Callable[[dict[str, Any]], list[Problem]] = _no_format
    to_example: Callable[[dict[str, Any]], Example] = _no_format  # type: ignore[assignment]
    ids: dict[str, int] = {}  # row id -> first line
    for record in iter_records(path, max_line_bytes=max_line_bytes):
        row = record.row
        if row is not None and fmt is not None and not row_problems(row):  # the fast, common path
            example = to_example(row)
        else:
            if record.blank:
                report.lines = record.line
                report.blank_lines += 1
                continue
            example, problem = None, record.problem
            if problem is None and record.text is not None:  # a .txt document
                if kind not in (None, "cpt"):
                    raise DataError(
                        f"{record.file}:{record.line}: a .txt file holds CPT documents, not {kind.upper()} data "
                        "— use JSONL for SFT/RFT/eval"
                    )
                example = cpt.txt_example(record.text)
                report.format, report.kind = cpt.TXT_FORMAT, "cpt"
            elif problem is None:
                assert row is not None
                if fmt is None:
                    fmt = format_for_row(row, kind)
                    if fmt is None:
                        problem = unrecognized_problem(row, kind)
                    else:
                        fmt_line = record.line
                        report.format, report.kind = fmt.name, fmt.kind
                        row_problems, to_example = fmt.problems, fmt.to_example
                else:
                    # The row failed its validator: a row of another shape gets the clearer message.
                    family = row_family(row)
                    if family is not None and family != fmt.family:
                        problem = Problem(
                            f"mixed formats: this row is {FAMILY_NAMES[family]} but the file is "
                            f"{fmt.description} (detected at line {fmt_line})",
                            "use one format per file",
                        )
                if problem is None and fmt is not None:
                    problems = fmt.problems(row)
                    if problems:
                        problem = (
                            report.valid == 0 and _other_kind_problem(row, kind, problems[0])
                        ) or problems[0]
                    else:
                        example = fmt.to_example(row)
            if example is None:
                assert problem is not None
                _invalid(report, Issue(record.file, record.line, problem.what, problem.fix), skip_invalid)
                continue
        if "id" in example.extra:  # ids name samples to a reward endpoint: 1 and "1" are the same id
            sample_id = str(example.extra["id"])
            if sample_id in ids:
                what = (
                    f'duplicate id "{sample_id}" (first at line {ids[sample_id]}; 1 and "1" are the same id)'
                )
                _invalid(
                    report, Issue(record.file, record.line, what, "give every row its own id"), skip_invalid
                )
                continue
            ids[sample_id] = record.line
        report.lines = record.line
        example.file, example.line = record.file, record.line
        report.valid += 1
        if example.quality:
            report.high_quality += 1
        yield example
    if report.valid == 0:
        if report.invalid == 0:
            raise DataError(f"{path}:1: file is empty (no examples) — add at least one example")
        first = report.invalid_lines[0] if report.invalid_lines else 1
        raise DataError(
            f"{path}:{first}: no valid examples ({report.invalid} invalid line(s)) — fix the lines that "
            f"`tunesmith data inspect {path} --skip-invalid` lists"
        )


def _invalid(report: ValidationReport, issue: Issue, skip_invalid: bool) -> None:
    """An invalid line: the error (`FILE:LINE: what — fix`), or counted and listed with `skip_invalid`."""
    if not skip_invalid:
        raise DataError(str(issue))
    report.lines = issue.line
    report.add_issue(issue)


def _other_kind_problem(row: dict[str, Any], kind: str | None, first: Problem) -> Problem | None:
    """When a row asked to be `kind` data is valid data of another kind (RFT prompts given to an SFT
    stage), say so after the first rule of `kind` that it breaks."""
    other = format_for_row(row, None) if kind is not None else None
    if kind is None or other is None or other.kind == kind or other.problems(row):
        return None
    return Problem(
        f"{first.what}: this row is {other.description} data, not {kind.upper()} data",
        f"give it to a stage that takes {other.kind.upper()} data, or convert it to {_EXPECTED_SHAPE[kind]}",
    )


_EXPECTED_SHAPE = {
    "cpt": '{"text": "..."}',
    "sft": 'conversations that end with an assistant turn ({"messages": [...]})',
    "rft": 'prompts ending with a user turn plus "reference_answer"',
    "eval": '{"query": "...", "response": "..."}',
    "dpo": 'preference pairs ({"prompt", "chosen", "rejected"})',
}


def _no_format(row: dict[str, Any]) -> Any:
    raise AssertionError("no format fixed yet")


def validate_file(
    path: str | os.PathLike[str], kind: str | None = None, *, max_line_bytes: int = MAX_LINE_BYTES
) -> ValidationReport:
    """Read the whole file (streaming) and return its report. Raises `DataError` only for files that
    cannot be read at all (missing, empty, no valid example, wrong encoding)."""
    report = ValidationReport(file=str(path))
    for _ in read_examples(path, kind, skip_invalid=True, report=report, max_line_bytes=max_line_bytes):
        pass
    return report
