"""The normalized example every reader produces, and the problem/report types every validator uses.

Validators are pure functions `row -> list[Problem]`; the reader attaches the file and line, turning a
`Problem` into an `Issue` whose `str()` is the one-line user message `FILE:LINE: what — how to fix`
(a user error says what, where and how to fix it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["cpt", "sft", "rft", "eval"]
KINDS: tuple[str, ...] = ("cpt", "sft", "rft", "eval", "dpo")

#: how many issues a report keeps verbatim (the counts are always exact)
MAX_LISTED_ISSUES = 20
#: how many invalid line numbers a report keeps (the count is always exact)
MAX_LISTED_LINES = 1000


@dataclass(frozen=True)
class Problem:
    """What is wrong with one row, and how to fix it (no location: validators don't know it)."""

    what: str
    fix: str


@dataclass(frozen=True)
class Issue:
    """A problem at a place: `str(issue)` is the one-line message shown to the user."""

    file: str
    line: int
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what} — {self.fix}"


@dataclass(slots=True)
class Example:
    """One training/evaluation example, whatever format it came in.

    - `cpt`: `text`.
    - `sft`: `messages` in OpenAI chat form (`role`, `content`, optional `reasoning_content`), the
      system prompt (if any) as the first message.
    - `rft`: `messages` (the prompt), `reference_answer` (from the root or `metadata`), and `extra`: every
      other field of the row, passed to the reward function ([nova-forge-sdk]).
    - `eval`: `messages` = [system?, user(query), assistant(response)]; `extra` keeps `metadata`.
    - `dpo`: `messages` (the prompt, ending with a user turn); `extra` holds the `chosen` and `rejected` texts.

    `quality` marks a high-quality example (for the quality tail), `source` is "customer" or a general
    category, `file`/`line` say where it came from.
    """

    kind: str
    format: str
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    reference_answer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    quality: bool = False
    source: str = "customer"
    file: str = ""
    line: int = 0

    def to_row(self) -> dict[str, Any]:
        """The row in the form the trainers take: CPT `{"text"}`, SFT `{"messages"}`, RFT
        `{"prompt", "reference_answer"?, **extra}` (TRL's GRPO dataset form), eval `gen_qa`."""
        if self.kind == "cpt":
            return {"text": self.text}
        if self.kind == "sft":
            return {"messages": self.messages}
        if self.kind == "rft":
            row: dict[str, Any] = {"prompt": self.messages}
            if self.reference_answer is not None:
                row["reference_answer"] = self.reference_answer
            row.update(self.extra)
            return row
        if self.kind == "dpo":  # TRL's conversational preference form
            return {
                "prompt": self.messages,
                "chosen": [{"role": "assistant", "content": self.extra["chosen"]}],
                "rejected": [{"role": "assistant", "content": self.extra["rejected"]}],
            }
        assert self.kind == "eval", self.kind
        messages = self.messages or []
        row = {"query": messages[-2]["content"], "response": messages[-1]["content"]}
        if messages[0]["role"] == "system":
            row["system"] = messages[0]["content"]
        row.update(self.extra)
        return row

    def content_key(self) -> str:
        """A canonical string of the content (for duplicate detection and fingerprints)."""
        if self.text is not None:
            return self.text
        if self.kind == "dpo":
            return json.dumps([self.messages, self.extra], sort_keys=True, ensure_ascii=False)
        return json.dumps([self.messages, self.reference_answer], sort_keys=True, ensure_ascii=False)

    def render_text(self) -> str:
        """Plain text of the example (for length statistics when no chat template is at hand)."""
        if self.text is not None:
            return self.text
        parts = []
        for message in self.messages or []:
            if message.get("reasoning_content"):
                parts.append(f"{message['role']}: {message['reasoning_content']}")
            parts.append(f"{message['role']}: {message['content']}")
        return "\n".join(parts)


@dataclass
class ValidationReport:
    """What reading a file found. Counts are exact; issues and line numbers are listed up to a limit."""

    file: str
    format: str | None = None
    kind: str | None = None
    lines: int = 0
    blank_lines: int = 0
    valid: int = 0
    invalid: int = 0
    high_quality: int = 0
    issues: list[Issue] = field(default_factory=list)
    invalid_lines: list[int] = field(default_factory=list)

    def add_issue(self, issue: Issue) -> None:
        self.invalid += 1
        if len(self.issues) < MAX_LISTED_ISSUES:
            self.issues.append(issue)
        if len(self.invalid_lines) < MAX_LISTED_LINES:
            self.invalid_lines.append(issue.line)

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.valid > 0

    def summary(self) -> str:
        """One line: what was read and what was dropped (never silent)."""
        text = f"{self.file}: {self.valid} valid example(s) ({self.format or 'unknown format'})"
        if self.blank_lines:
            text += f", {self.blank_lines} blank line(s) ignored"
        if self.invalid:
            shown = ", ".join(str(n) for n in self.invalid_lines[:MAX_LISTED_ISSUES])
            more = " ..." if self.invalid > MAX_LISTED_ISSUES else ""
            text += f", {self.invalid} invalid line(s) skipped (lines {shown}{more})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "kind": self.kind,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "valid": self.valid,
            "invalid": self.invalid,
            "high_quality": self.high_quality,
            "invalid_lines": list(self.invalid_lines),
            "issues": [str(issue) for issue in self.issues],
        }


# --------------------------------------------------------------------------------------------------------
# small helpers shared by the format validators


def type_name(value: Any) -> str:
    """The JSON name of a Python value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


QUALITY_KEY = "quality"
_QUALITY_VALUES = {True: True, False: False, "high": True, "normal": False, "low": False}


def quality_problem(row: dict[str, Any]) -> Problem | None:
    """`quality` is tunesmith's one extension key, allowed in every format: true/false or high/normal/low."""
    if QUALITY_KEY not in row:
        return None
    value = row[QUALITY_KEY]
    if isinstance(value, (bool, str)) and value in _QUALITY_VALUES:
        return None
    return Problem(
        f'"quality" is {json.dumps(value)}',
        'use true/false or "high"/"normal"/"low" (high marks an example for the quality tail)',
    )


def is_high_quality(row: dict[str, Any]) -> bool:
    return bool(_QUALITY_VALUES.get(row.get(QUALITY_KEY, False), False))


def unknown_keys_problem(row: dict[str, Any], allowed: set[str], format_name: str) -> Problem | None:
    extra = sorted(set(row) - allowed - {QUALITY_KEY})
    if not extra:
        return None
    keys = ", ".join(f'"{key}"' for key in extra)
    allowed_text = ", ".join(f'"{key}"' for key in sorted(allowed))
    return Problem(f"unexpected key(s) {keys} for {format_name}", f"remove them (allowed: {allowed_text})")


def nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""
