"""RFT prompts: OpenAI chat form with `reference_answer` at the root or under `metadata`.

Rules ([nova-forge-sdk] [nova-reward-functions], SDK `rft_dataset_validator.py`):
`{"id"?, "messages": [{role: system|user|assistant|tool, content}], "tools"?, "reference_answer"?, ...extra}`;
a system message, if present, comes first; at least one user message. "Any additional custom fields ...
are passed to your reward function as metadata": every other field is kept in `Example.extra`. The AWS
pages disagree on root vs `metadata.reference_answer`, so both are accepted ([nova-reward-functions]).
tunesmith adds: the prompt must end with a user (or tool) turn, since the model answers it.
"""

from __future__ import annotations

from typing import Any

from tunesmith.data.formats.chat import normalize_openai_messages, openai_message_problem
from tunesmith.data.formats.core import Example, Problem, is_high_quality, quality_problem, type_name

FORMAT = "rft-openai"
_ROLES = ("system", "user", "assistant", "tool")


def reference_answer(row: dict[str, Any]) -> Any:
    """The reference answer from the root, else from `metadata` (both seen in AWS docs)."""
    if row.get("reference_answer") is not None:
        return row["reference_answer"]
    metadata = row.get("metadata")
    if isinstance(metadata, dict):
        return metadata.get("reference_answer")
    return None


def problems(row: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        found.append(
            Problem('"messages" is missing, empty or not a list', 'add "messages": [{"role": "user", ...}]')
        )
    else:
        for index, message in enumerate(messages):
            problem = openai_message_problem(index, message, _ROLES, allow_empty_assistant=True)
            if problem:
                found.append(problem)
                break
            if message["role"] == "system" and index != 0:
                found.append(
                    Problem(f"messages[{index}] is a system message", "the system message must come first")
                )
                break
        else:
            roles = [message["role"] for message in messages]
            if "user" not in roles:
                found.append(Problem("the prompt has no user message", "add at least one user turn"))
            elif roles[-1] not in ("user", "tool"):
                found.append(
                    Problem(
                        f'the prompt ends with a "{roles[-1]}" turn',
                        "RFT prompts end with the user turn the model answers; drop the final answer "
                        '(put it in "reference_answer")',
                    )
                )
    answer = reference_answer(row)
    if (
        "reference_answer" in row
        and row["reference_answer"] is not None
        and isinstance(row["reference_answer"], bool)
    ):
        found.append(Problem('"reference_answer" is a boolean', "use a string or an object"))
    elif answer is not None and not isinstance(answer, (str, dict, list, int, float)):
        found.append(Problem(f'"reference_answer" is a {type_name(answer)}', "use a string or an object"))
    if isinstance(answer, str) and not answer.strip():
        found.append(Problem('"reference_answer" is empty', "fill it in or remove the key"))
    if "metadata" in row and not isinstance(row["metadata"], (dict, str)):
        found.append(Problem(f'"metadata" is a {type_name(row["metadata"])}', "make it an object"))
    tools = row.get("tools")
    if tools is not None and not (
        isinstance(tools, list)
        and all(
            isinstance(tool, dict)
            and tool.get("type") == "function"
            and isinstance(tool.get("function"), dict)
            and isinstance(tool["function"].get("name"), str)
            for tool in tools
        )
    ):
        found.append(
            Problem(
                '"tools" is malformed',
                'use [{"type": "function", "function": {"name": ..., "parameters": ...}}]',
            )
        )
    if "id" in row and not isinstance(row["id"], (str, int)):
        found.append(Problem(f'"id" is a {type_name(row["id"])}', "make it a string"))
    problem = quality_problem(row)
    if problem:
        found.append(problem)
    return found


def to_example(row: dict[str, Any]) -> Example:
    extra = {
        key: value for key, value in row.items() if key not in ("messages", "reference_answer", "quality")
    }
    return Example(
        kind="rft",
        format=FORMAT,
        messages=normalize_openai_messages(row["messages"]),
        reference_answer=reference_answer(row),
        extra=extra,
        quality=is_high_quality(row),
    )
