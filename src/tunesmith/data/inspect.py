"""`tunesmith data inspect FILE`: detected format, counts, token lengths, duplicates, validation summary.

Streams the file once. Token lengths are measured with the chosen tokenizer on what the trainer will
see: the text for CPT, the chat template applied to the messages for SFT/eval (with a generation prompt
for RFT prompts). Without `--skip-invalid` the first invalid line stops it with `FILE:LINE: what — fix`
(exit code 2); with it, invalid lines are counted and listed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from tunesmith.data.formats import FORMATS, Example, ValidationReport, read_examples
from tunesmith.errors import ModelError

_BATCH = 256


def length_tokenizer(name: str) -> Any:
    """ "tiny" (the embedded char-level tokenizer), "chars" (1 token per character, no dependencies) or a
    Hugging Face tokenizer id / local folder (no download is attempted if it is not cached)."""
    if name == "chars":
        return None
    if name == "tiny":
        from tunesmith.models.tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except Exception as err:
        raise ModelError(
            f"{name}: cannot load tokenizer ({type(err).__name__}) — use 'tiny', 'chars', a local folder, or a "
            "Hugging Face id that is already in the cache"
        ) from None


def example_text(example: Example, tokenizer: Any) -> str:
    """What the trainer tokenizes: the text, or the chat template applied to the messages."""
    if example.text is not None:
        return example.text
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if template:
        return tokenizer.apply_chat_template(
            example.messages, tokenize=False, add_generation_prompt=example.kind == "rft"
        )
    return example.render_text()


def token_lengths(examples: Iterable[Example], tokenizer: Any) -> Iterator[int]:
    """Token count of each example (batched through the tokenizer)."""
    iterator = iter(examples)
    while batch := list(islice(iterator, _BATCH)):
        texts = [example_text(example, tokenizer) for example in batch]
        if tokenizer is None:
            yield from (len(text) for text in texts)
            continue
        special = all(example.text is not None for example in batch)  # chat templates add their own
        if any(len(text) > _PIECE_CHARS for text in texts):
            yield from (_long_length(text, tokenizer, special) for text in texts)
            continue
        encoded = tokenizer(texts, add_special_tokens=special)["input_ids"]
        yield from (len(ids) for ids in encoded)


#: texts longer than this are measured piece by piece: a tokenizer's encoding of one multi-megabyte text
#: holds tens of bytes per token (ids, offsets, token strings), which grew a 4 MB line past 1 GB
_PIECE_CHARS = 1 << 16


def _long_length(text: str, tokenizer: Any, special: bool) -> int:
    """Token count of `text`, encoded in pieces of at most ~`_PIECE_CHARS` characters cut before a space
    (where word-level pre-tokenizers split anyway, so the sum matches one encoding up to a token or so per
    piece); special tokens counted once."""
    total, start = 0, 0
    while start < len(text):
        end = min(len(text), start + _PIECE_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + 1, end)
            end = cut if cut > start else end
        ids = tokenizer(text[start:end], add_special_tokens=special and start == 0)["input_ids"]
        total += len(ids)
        start = end
    return total


def example_length_fn(tokenizer: Any) -> Callable[[Example], int]:
    """`example -> tokens` for one example (e.g. for a token-unit mix)."""

    def length(example: Example) -> int:
        return next(token_lengths([example], tokenizer))

    return length


def percentile(sorted_values: list[int] | array, percent: float) -> int:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return int(sorted_values[rank - 1])


def inspect_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    tokenizer: str = "tiny",
    max_length: int | None = None,
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Everything `data inspect` shows, as a dict (one streaming pass)."""
    from tunesmith.data.snapshot import check_data_folder

    check_data_folder(Path(path), path)  # a folder of JSONL files is refused here as `plan` refuses it
    tok = length_tokenizer(tokenizer)
    report = ValidationReport(file=str(path))
    lengths = array("I")
    seen: set[bytes] = set()
    duplicates = 0
    messages = 0

    def counted(examples: Iterator[Example]) -> Iterator[Example]:
        nonlocal duplicates, messages
        for example in examples:
            digest = hashlib.blake2b(example.content_key().encode("utf-8"), digest_size=16).digest()
            if digest in seen:
                duplicates += 1
            else:
                seen.add(digest)
            messages += len(example.messages or [])
            yield example

    examples = read_examples(path, kind, skip_invalid=skip_invalid, report=report)
    lengths.extend(token_lengths(counted(examples), tok))
    ordered = sorted(lengths)
    over = sum(1 for n in ordered if max_length is not None and n > max_length)
    fmt = FORMATS.get(report.format or "")
    result: dict[str, Any] = {
        "file": str(path),
        "format": report.format,
        "format_description": fmt.description if fmt else "CPT plain text (.txt, blank-line separated)",
        "kind": report.kind,
        "examples": report.valid,
        "validation": report.to_dict(),
        "high_quality": report.high_quality,
        "duplicates": duplicates,
        "unique": report.valid - duplicates,
        "mean_messages": messages / report.valid if report.valid and messages else None,
        "tokenizer": tokenizer,
        "tokens": {
            "min": int(ordered[0]) if ordered else 0,
            "median": percentile(ordered, 50),
            "p95": percentile(ordered, 95),
            "max": int(ordered[-1]) if ordered else 0,
            "total": int(sum(ordered)),
        },
        "max_length": max_length,
        "over_max_length": over if max_length is not None else None,
        "over_max_length_percent": 100.0 * over / len(ordered)
        if max_length is not None and ordered
        else None,
    }
    return result


def render_inspection(result: dict[str, Any]) -> str:
    validation = result["validation"]
    lines = [
        f"file:        {result['file']}",
        f"format:      {result['format']} ({result['format_description']}), kind {result['kind']}",
        f"examples:    {result['examples']} valid",
    ]
    if validation["blank_lines"]:
        lines[-1] += f", {validation['blank_lines']} blank line(s) ignored"
    if validation["invalid"]:
        shown = ", ".join(str(n) for n in validation["invalid_lines"][:20])
        more = " ..." if validation["invalid"] > 20 else ""
        lines.append(f"skipped:     {validation['invalid']} invalid line(s) (lines {shown}{more})")
        lines.extend(f"  {issue}" for issue in validation["issues"])
    lines.append(f"duplicates:  {result['duplicates']} ({result['unique']} unique)")
    if result["high_quality"]:
        lines.append(f"high quality: {result['high_quality']} (marked for the quality tail)")
    if result["mean_messages"]:
        lines.append(f"messages:    {result['mean_messages']:.2f} per example")
    tokens = result["tokens"]
    lines.append(
        f"tokens ({result['tokenizer']}): min {tokens['min']}, median {tokens['median']}, p95 {tokens['p95']}, "
        f"max {tokens['max']}, total {tokens['total']}"
    )
    if result["max_length"] is not None:
        lines.append(
            f"over max_length {result['max_length']}: {result['over_max_length']} "
            f"({result['over_max_length_percent']:.1f}%) — these are truncated (or split when packing CPT)"
        )
    verdict = "ok" if not validation["invalid"] else f"{validation['invalid']} invalid line(s) dropped"
    lines.append(f"validation:  {verdict}")
    return "\n".join(lines)


def inspect_command(
    file: str,
    *,
    fmt: str = "text",
    kind: str = "auto",
    tokenizer: str = "tiny",
    max_length: int | None = None,
    skip_invalid: bool = False,
) -> int:
    """The CLI entry: prints the inspection (text or JSON); `DataError` reaches the CLI as exit code 2.
    `FILE` may be a built-in reference such as `builtin:brindle/sft`."""
    from tunesmith.data.builtin import is_builtin, resolve_builtin

    result = inspect_file(
        resolve_builtin(file) if is_builtin(file) else file,
        kind=None if kind == "auto" else kind,
        tokenizer=tokenizer,
        max_length=max_length,
        skip_invalid=skip_invalid,
    )
    if fmt == "json":
        print(json.dumps(result, indent=2))
    else:
        print(render_inspection(result))
    return 0
