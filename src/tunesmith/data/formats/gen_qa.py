"""Evaluation rows, `gen_qa` JSONL: `{"query": str, "response": str, "system"?: str, "metadata"?: ...}`.

Rule: [nova-forge-sdk] ([nova-evaluation]). `metadata` is a string there; tunesmith also
accepts an object. `images` (allowed by the SDK) is rejected: tunesmith evaluates text models.
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

FORMAT = "eval-gen_qa"
_ALLOWED = {"query", "response", "system", "metadata"}


def problems(row: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    for key in ("query", "response"):
        if key not in row:
            found.append(Problem(f'missing "{key}"', 'gen_qa rows are {"query": "...", "response": "..."}'))
        elif not isinstance(row[key], str):
            found.append(Problem(f'"{key}" is a {type_name(row[key])}', "make it a string"))
        elif not nonempty_text(row[key]):
            found.append(Problem(f'"{key}" is empty', f"fill in the {key} or remove the line"))
    if "system" in row and not isinstance(row["system"], str):
        found.append(Problem(f'"system" is a {type_name(row["system"])}', "make it a string or remove it"))
    if "metadata" in row and not isinstance(row["metadata"], (str, dict)):
        found.append(
            Problem(f'"metadata" is a {type_name(row["metadata"])}', "make it a string or an object")
        )
    if "images" in row:
        found.append(Problem('"images" are not supported', "tunesmith evaluates text models; remove them"))
    for problem in (unknown_keys_problem(row, _ALLOWED | {"images"}, "gen_qa"), quality_problem(row)):
        if problem:
            found.append(problem)
    return found


def to_example(row: dict[str, Any]) -> Example:
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": row["system"]})
    messages.append({"role": "user", "content": row["query"]})
    messages.append({"role": "assistant", "content": row["response"]})
    extra = {"metadata": row["metadata"]} if "metadata" in row else {}
    return Example(kind="eval", format=FORMAT, messages=messages, extra=extra, quality=is_high_quality(row))
