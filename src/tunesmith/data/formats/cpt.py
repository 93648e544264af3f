"""CPT rows: JSONL `{"text": "..."}` and plain `.txt` files.

Rule ([nova-forge-sdk], SDK `cpt_dataset_validator.py` with `extra = "forbid"`): exactly one
field `text`, a non-empty string. tunesmith additionally allows its `quality` marker.
"""

from __future__ import annotations

from typing import Any

from tunesmith.data.formats.core import (
    Example,
    Problem,
    is_high_quality,
    nonempty_text,
    quality_problem,
    type_name,
    unknown_keys_problem,
)

FORMAT = "cpt-text"
TXT_FORMAT = "cpt-txt"


def problems(row: dict[str, Any]) -> list[Problem]:
    text = row.get("text")
    if len(row) == 1 and type(text) is str and not text.isspace() and text:
        return []  # the common case, checked fast (streams of millions of lines)
    found: list[Problem] = []
    if "text" not in row:
        found.append(Problem('missing "text"', 'CPT rows are {"text": "..."}; add the document text'))
    elif not isinstance(row["text"], str):
        found.append(Problem(f'"text" is a {type_name(row["text"])}', "make it a string"))
    elif not nonempty_text(row["text"]):
        found.append(Problem('"text" is empty', "remove the line or fill in the document"))
    for problem in (unknown_keys_problem(row, {"text"}, "CPT"), quality_problem(row)):
        if problem:
            found.append(problem)
    return found


def to_example(row: dict[str, Any]) -> Example:
    return Example("cpt", FORMAT, row["text"], quality=len(row) > 1 and is_high_quality(row))


def txt_example(text: str) -> Example:
    return Example(kind="cpt", format=TXT_FORMAT, text=text)
