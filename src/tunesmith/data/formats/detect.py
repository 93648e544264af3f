"""Which format a row (and so a file) is in.

The first row with a recognizable shape fixes the file's format; a later row of another format family is
reported as "mixed formats" (one format per file keeps validation and mixing unambiguous).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunesmith.data.formats import chat, cpt, gen_qa, preference, rft
from tunesmith.data.formats.core import Example, Problem


@dataclass(frozen=True)
class Format:
    name: str
    kind: str
    family: str  # the row shape: "text", "bedrock", "chat", "gen_qa"
    description: str
    problems: Callable[[dict[str, Any]], list[Problem]]
    to_example: Callable[[dict[str, Any]], Example]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(cpt.FORMAT, "cpt", "text", 'CPT JSONL {"text"}', cpt.problems, cpt.to_example),
        Format(
            chat.BEDROCK_FORMAT,
            "sft",
            "bedrock",
            "SFT Bedrock conversation",
            chat.bedrock_problems,
            chat.bedrock_to_example,
        ),
        Format(
            chat.OPENAI_FORMAT, "sft", "chat", "SFT OpenAI chat", chat.openai_problems, chat.openai_to_example
        ),
        Format(rft.FORMAT, "rft", "chat", "RFT prompts (OpenAI chat)", rft.problems, rft.to_example),
        Format(
            preference.CHAT_FORMAT,
            "dpo",
            "preference",
            'DPO preference pairs {"prompt", "chosen", "rejected"}',
            preference.chat_problems,
            preference.chat_to_example,
        ),
        Format(
            preference.BEDROCK_FORMAT,
            "dpo",
            "bedrock",
            "DPO Bedrock conversation with preferred / non-preferred candidates",
            preference.bedrock_preference_problems,
            preference.bedrock_preference_to_example,
        ),
        Format(
            gen_qa.FORMAT,
            "eval",
            "gen_qa",
            'evaluation gen_qa {"query", "response"}',
            gen_qa.problems,
            gen_qa.to_example,
        ),
    )
}

FAMILY_NAMES = {
    "text": 'CPT {"text"}',
    "bedrock": "Bedrock conversation",
    "chat": "OpenAI chat",
    "gen_qa": "gen_qa",
    "preference": 'preference {"prompt", "chosen", "rejected"}',
}


def row_family(row: dict[str, Any]) -> str | None:
    """The shape of a row, from its keys alone (None when nothing is recognizable)."""
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "schemaVersion" in row:
        return "bedrock"
    messages = row.get("messages")
    if messages is not None:
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            content = messages[0].get("content")
            if (
                isinstance(content, list)
                and content
                and isinstance(content[0], dict)
                and "type" not in content[0]
            ):
                return "bedrock"  # Bedrock content items without the schemaVersion key
        return "chat"
    if "query" in row or "response" in row:
        return "gen_qa"
    if "text" in row:
        return "text"
    return None


def format_for_row(row: dict[str, Any], kind: str | None) -> Format | None:
    """The format a first row implies (for `kind`, or any kind when None)."""
    family = row_family(row)
    if family is None:
        return None
    if family == "text":
        return FORMATS[cpt.FORMAT] if kind in (None, "cpt") else None
    if family == "preference":
        return FORMATS[preference.CHAT_FORMAT] if kind in (None, "dpo") else None
    if family == "bedrock":
        if kind == "dpo" or (kind is None and preference.is_bedrock_preference(row)):
            return FORMATS[preference.BEDROCK_FORMAT]
        return FORMATS[chat.BEDROCK_FORMAT] if kind in (None, "sft") else None
    if family == "gen_qa":
        return FORMATS[gen_qa.FORMAT] if kind in (None, "eval") else None
    # OpenAI chat: SFT or RFT
    if kind == "sft":
        return FORMATS[chat.OPENAI_FORMAT]
    if kind == "rft":
        return FORMATS[rft.FORMAT]
    if kind is not None:
        return None
    messages = row.get("messages")
    ends_with_assistant = (
        isinstance(messages, list)
        and messages
        and isinstance(messages[-1], dict)
        and messages[-1].get("role") == "assistant"
    )
    has_reference = rft.reference_answer(row) is not None
    return FORMATS[chat.OPENAI_FORMAT] if ends_with_assistant and not has_reference else FORMATS[rft.FORMAT]


def unrecognized_problem(row: dict[str, Any], kind: str | None) -> Problem:
    keys = ", ".join(f'"{key}"' for key in list(row)[:6]) or "none"
    family = row_family(row)
    if family is not None and kind is not None:
        return Problem(
            f"this is a {FAMILY_NAMES[family]} row, not {kind.upper()} data",
            f"pass the file as the stage that uses {FAMILY_NAMES[family]} data, or convert it",
        )
    expected = {
        None: 'one of {"text"}, {"messages"}, Bedrock {"schemaVersion", "messages"}, {"query", "response"}',
        "cpt": '{"text": "..."}',
        "sft": 'Bedrock {"schemaVersion": "bedrock-conversation-2024", "messages"} or OpenAI {"messages"}',
        "rft": '{"messages": [...], "reference_answer": ...}',
        "eval": '{"query": "...", "response": "..."}',
        "dpo": '{"prompt": ..., "chosen": ..., "rejected": ...} or a Bedrock conversation ending in candidates',
    }[kind]
    return Problem(f"unrecognized row (keys: {keys})", f"expected {expected}")
