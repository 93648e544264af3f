"""Built-in datasets as JSONL files: `builtin:brindle/<name>` and `builtin:general/<category>/<kind>`.

`resolve_builtin(ref)` materializes the file once (deterministically, seed 0, written atomically) under
`tunesmith.paths.data_dir()/builtin/` and returns its path; later calls reuse it. The Brindle SFT files
are written in the Bedrock conversation format (`bedrock-conversation-2024`) so the demo reads the same
format as users' real data ([nova-forge-sdk]); the general SFT files are in
OpenAI chat form. Validation files hold prompts from the held-out split, like the evaluation file, but
drawn with another seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunesmith import paths
from tunesmith.data import domain, general
from tunesmith.errors import DataError
from tunesmith.runs import atomic_write_jsonl

PREFIX = "builtin:"
BUILTIN_VERSION = 1
"""Bump when the generators change, so stale cached files are not reused."""

SIZES: dict[str, int] = {
    "cpt": 2000,
    "cpt-validation": 200,
    "sft": 3000,
    "sft-validation": 200,
    "rft": 1000,
    "rft-validation": 200,
    "dpo": 3000,
    "dpo-validation": 200,
    "eval": 200,
}
"""Rows per Brindle file (SFT 'a few thousand', managed-service RFT minimum 100 train / 100 eval)."""

GENERAL_SIZES: dict[str, int] = {"text": 2000, "sft": 2000, "eval": 200}


def to_bedrock(messages: list[dict[str, str]]) -> dict:
    """OpenAI chat messages -> one Bedrock conversation row."""
    return {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": m["role"], "content": [{"text": m["content"]}]} for m in messages],
    }


def _brindle_rows(name: str) -> list[dict]:
    kind, _, validation = name.partition("-")
    n = SIZES[name]
    if kind == "eval":
        return domain.sample("eval", n, seed=0, split="eval")
    rows = domain.sample(kind, n, seed=1 if validation else 0, split="eval" if validation else "train")
    if kind == "sft":
        rows = [to_bedrock(row["messages"]) for row in rows]
    return rows


def _general_rows(category: str, kind: str) -> list[dict]:
    split = "eval" if kind == "eval" else "train"
    return general.sample(category, kind, GENERAL_SIZES[kind], seed=0, split=split)


def _registry() -> dict[str, Callable[[], list[dict]]]:
    refs: dict[str, Callable[[], list[dict]]] = {
        f"{PREFIX}brindle/{name}": (lambda name=name: _brindle_rows(name)) for name in SIZES
    }
    for category in general.CATEGORIES:
        for kind in GENERAL_SIZES:
            refs[f"{PREFIX}general/{category}/{kind}"] = lambda c=category, k=kind: _general_rows(c, k)
    return refs


def builtin_refs() -> list[str]:
    """Every valid built-in reference."""
    return list(_registry())


def is_builtin(ref: str) -> bool:
    """True when `ref` names built-in data (starts with `builtin:`), valid or not."""
    return str(ref).startswith(PREFIX)


def resolve_builtin(ref: str) -> Path:
    """The JSONL file for built-in `ref`, written on first use. Unknown refs raise `DataError`."""
    registry = _registry()
    if ref not in registry:
        raise DataError(f"{ref}: unknown built-in data — use one of: {', '.join(registry)}")
    relative = ref[len(PREFIX) :].replace("/", "__")
    path = paths.data_dir() / "builtin" / f"v{BUILTIN_VERSION}" / f"{relative}.jsonl"
    if not path.is_file():
        atomic_write_jsonl(path, registry[ref]())
    return path
