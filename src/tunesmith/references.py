"""The bibliography that defaults, lint rules and detectors cite by key (`[dapo-2025]`): docs/references.md,
shipped inside the package (`tunesmith references [KEY]`)."""

from __future__ import annotations

import re
import sys
from importlib import resources

from tunesmith.errors import UserError
from tunesmith.suggest import did_you_mean

CITATION = re.compile(r"(?<!ignore)\[([a-z]{2}[a-z0-9]*(?:-[a-z0-9.]+)+)\]")
"""A cited key in text: lower case, at least one hyphen (`[nova-hpo-blog]`); `# type: ignore[...]` is not."""

_ENTRY = re.compile(r"^- \*\*\[(?P<key>[^\]]+)\]\*\*", re.MULTILINE)


def text() -> str:
    """The whole bibliography (Markdown)."""
    return resources.files("tunesmith").joinpath("references.md").read_text(encoding="utf-8")


def entries() -> dict[str, str]:
    """Key -> its entry (the Markdown list item, continuation lines joined)."""
    source = text()
    starts = list(_ENTRY.finditer(source))
    out = {}
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        end = following.start() if following else len(source)
        block = source[match.start() : end].split("\n\n")[0]
        out[match.group("key")] = " ".join(line.strip() for line in block.splitlines())
    return out


def references_command(key: str | None = None) -> int:
    """`tunesmith references [KEY]`: the whole bibliography, or the entry of one key."""
    if key is None:
        sys.stdout.write(text())
        return 0
    known = entries()
    key = key.strip("[]")
    if key not in known:
        raise UserError(
            f"no reference [{key}]{did_you_mean(key, known)}; `tunesmith references` lists them all"
        )
    print(known[key])
    return 0
