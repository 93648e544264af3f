"""SFT conversations: Bedrock conversation JSONL and OpenAI chat JSONL.

Rules ([nova-forge-sdk], SDK `sft_dataset_validator.py`):
- Bedrock: `{"schemaVersion": "bedrock-conversation-2024", "system"?: [{"text"}], "messages": [...]}`;
  messages alternate user/assistant, start with user and end with assistant; content is a list of items;
  `reasoningContent: {"reasoningText": {"text"}}` only in assistant turns. Image/video/document/tool items
  are valid for the managed service but tunesmith trains text models, so they are rejected with a fix.
- OpenAI chat: `{"messages": [{"role", "content"}]}`, an optional system message first, then the same
  alternation rule. `content` is a string or a list of `{"type": "text", "text"}` parts.
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

BEDROCK_FORMAT = "sft-bedrock"
OPENAI_FORMAT = "sft-openai"
BEDROCK_SCHEMA = "bedrock-conversation-2024"

_BEDROCK_KEYS = {"schemaVersion", "system", "messages", "toolConfig"}
_OPENAI_KEYS = {"messages", "id", "metadata", "tools"}
_UNSUPPORTED_ITEMS = ("image", "video", "document", "toolUse", "toolResult")


def alternation_problem(roles: list[str], where: str = "messages") -> Problem | None:
    """user/assistant turns must alternate, start with user and end with assistant (2.4)."""
    if not roles:
        return Problem(f'"{where}" is empty', "add at least one user and one assistant turn")
    if roles[0] != "user":
        return Problem(f'the first turn of "{where}" is "{roles[0]}"', "conversations start with a user turn")
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            return Problem(
                f'wrong role order: two "{roles[index]}" turns in a row ({where}[{index - 1}] and [{index}])',
                "turns must alternate user/assistant; merge or remove one",
            )
    if roles[-1] != "assistant":
        return Problem(
            f'the last turn of "{where}" is "{roles[-1]}"', "SFT conversations end with an assistant turn"
        )
    return None


# ---------------------------------------------------------------------------------------------- Bedrock


def bedrock_problems(row: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    if row.get("schemaVersion") != BEDROCK_SCHEMA:
        found.append(
            Problem(f'"schemaVersion" is {row.get("schemaVersion")!r}', f'set it to "{BEDROCK_SCHEMA}"')
        )
    if "toolConfig" in row:
        found.append(Problem('"toolConfig" is not supported yet', "remove tool definitions (text-only SFT)"))
    system = row.get("system")
    system_ok = system is None or (
        isinstance(system, list)
        and all(
            isinstance(item, dict) and set(item) == {"text"} and isinstance(item["text"], str)
            for item in system
        )
    )
    if not system_ok:
        found.append(
            Problem('"system" must be a list of {"text": "..."}', 'e.g. "system": [{"text": "..."}]')
        )
    messages = row.get("messages")
    if not isinstance(messages, list):
        found.append(
            Problem('"messages" is missing or not a list', 'add "messages": [{"role": "user", ...}]')
        )
    else:
        roles: list[str] = []
        for index, message in enumerate(messages):
            problem = _bedrock_message_problem(index, message)
            if problem:
                found.append(problem)
                break
            roles.append(message["role"])
        else:
            problem = alternation_problem(roles)
            if problem:
                found.append(problem)
    for problem in (unknown_keys_problem(row, _BEDROCK_KEYS, "Bedrock conversation"), quality_problem(row)):
        if problem:
            found.append(problem)
    return found


def _bedrock_message_problem(index: int, message: Any) -> Problem | None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return Problem(
            f"{where} is a {type_name(message)}", 'each message is {"role": ..., "content": [...]}'
        )
    role = message.get("role")
    if role not in ("user", "assistant"):
        return Problem(f"{where} has role {role!r}", 'Bedrock roles are "user" and "assistant"')
    extra = set(message) - {"role", "content"}
    if extra:
        return Problem(f"{where} has unexpected key(s) {sorted(extra)}", 'keep only "role" and "content"')
    content = message.get("content")
    if isinstance(content, str):
        return Problem(f"{where}.content is a string", 'Bedrock content is a list: [{"text": "..."}]')
    if not isinstance(content, list) or not content:
        return Problem(f"{where}.content is empty or missing", 'add [{"text": "..."}]')
    has_text = False
    for item_index, item in enumerate(content):
        item_where = f"{where}.content[{item_index}]"
        if not isinstance(item, dict) or len(item) != 1:
            return Problem(f"{item_where} must be an object with one key", 'e.g. {"text": "..."}')
        (key,) = item
        if key in _UNSUPPORTED_ITEMS:
            return Problem(
                f'{item_where} is "{key}"', "tunesmith trains text models; convert it to text or remove it"
            )
        if key == "text":
            if not nonempty_text(item["text"]):
                return Problem(f"{item_where}.text is empty", "write the turn's text or remove the line")
            has_text = True
        elif key == "reasoningContent":
            if role != "assistant":
                return Problem(
                    f"{item_where}: reasoningContent in a user turn", "only assistant turns carry reasoning"
                )
            reasoning = item["reasoningContent"]
            if not (
                isinstance(reasoning, dict)
                and isinstance(reasoning.get("reasoningText"), dict)
                and nonempty_text(reasoning["reasoningText"].get("text"))
            ):
                return Problem(
                    f"{item_where}.reasoningContent is malformed",
                    'use {"reasoningContent": {"reasoningText": {"text": "..."}}}',
                )
        else:
            return Problem(
                f'{item_where} has unknown content type "{key}"', 'use "text" (or "reasoningContent")'
            )
    if not has_text:
        return Problem(f"{where} has no text item", 'add {"text": "..."} to the turn')
    return None


def bedrock_to_example(row: dict[str, Any]) -> Example:
    messages: list[dict[str, Any]] = []
    system = "\n".join(item["text"] for item in row.get("system") or [])
    if system:
        messages.append({"role": "system", "content": system})
    for message in row["messages"]:
        texts = [item["text"] for item in message["content"] if "text" in item]
        reasoning = [
            item["reasoningContent"]["reasoningText"]["text"]
            for item in message["content"]
            if "reasoningContent" in item
        ]
        converted: dict[str, Any] = {"role": message["role"], "content": "\n".join(texts)}
        if reasoning:
            converted["reasoning_content"] = "\n".join(reasoning)
        messages.append(converted)
    return Example(kind="sft", format=BEDROCK_FORMAT, messages=messages, quality=is_high_quality(row))


# ---------------------------------------------------------------------------------------------- OpenAI


def openai_content_text(content: Any) -> str | None:
    """The text of an OpenAI `content` (string or list of text parts); None if it is malformed."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    return None


def openai_message_problem(
    index: int, message: Any, roles: tuple[str, ...], *, allow_empty_assistant: bool = False
) -> Problem | None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return Problem(f"{where} is a {type_name(message)}", 'each message is {"role": ..., "content": ...}')
    for key in ("tool_calls", "function_call", "tool_call_id"):  # before the content: a call may have none
        if key in message:
            return Problem(
                f'{where} has "{key}": tool calls are not supported yet (they would vanish from the '
                "training text)",
                "remove the conversation, or write the call into the turn's content as text",
            )
    role = message.get("role")
    if role not in roles:
        allowed = ", ".join(f'"{r}"' for r in roles)
        return Problem(f"{where} has role {role!r}", f"use one of {allowed}")
    if "content" not in message:
        return Problem(f'{where} has no "content"', 'add "content": "..."')
    text = openai_content_text(message["content"])
    if text is None:
        return Problem(
            f"{where}.content is a {type_name(message['content'])}",
            'use a string or a list of {"type": "text", "text": ...} parts',
        )
    if not text.strip() and not (allow_empty_assistant and role == "assistant"):
        return Problem(f"{where}.content is empty", "write the turn's text or remove the line")
    if "reasoning_content" in message and not isinstance(message["reasoning_content"], str):
        return Problem(f"{where}.reasoning_content is not a string", "make it a string")
    return None


def openai_problems(row: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    messages = row.get("messages")
    if not isinstance(messages, list):
        found.append(
            Problem('"messages" is missing or not a list', 'add "messages": [{"role": "user", ...}]')
        )
    else:
        roles: list[str] = []
        for index, message in enumerate(messages):
            problem = openai_message_problem(index, message, ("system", "user", "assistant"))
            problem = problem or _sft_message_problem(index, message)
            if problem:
                found.append(problem)
                break
            if message["role"] == "system" and index != 0:
                found.append(
                    Problem(f"messages[{index}] is a system message", "the system message must come first")
                )
                break
            roles.append(message["role"])
        else:
            problem = alternation_problem([role for role in roles if role != "system"])
            if problem:
                found.append(problem)
    if "tools" in row:
        found.append(Problem('"tools" is not supported for SFT yet', "remove it (text-only SFT)"))
    for problem in (unknown_keys_problem(row, _OPENAI_KEYS, "OpenAI chat SFT"), quality_problem(row)):
        if problem:
            found.append(problem)
    return found


def _sft_message_problem(index: int, message: dict[str, Any]) -> Problem | None:
    """What an SFT message may carry that the training text would silently lose: OpenAI's per-turn `weight`
    (0 = no loss), which the loss mask cannot honor per turn (tool calls: `openai_message_problem`)."""
    where = f"messages[{index}]"
    if "weight" not in message:
        return None
    weight = message["weight"]
    if isinstance(weight, bool) or weight not in (0, 1):
        return Problem(f"{where}.weight is {weight!r}", "OpenAI's weight is 0 or 1")
    if message["role"] != "assistant":
        return Problem(
            f"{where}.weight is set on a {message['role']} turn", "weight applies to assistant turns"
        )
    if weight == 0:
        return Problem(
            f"{where}.weight is 0 (no loss on this turn), which tunesmith cannot honor: the loss covers every "
            "assistant turn",
            "end the conversation before this turn (one row per turn you want learned), or remove the weight",
        )
    return None


def normalize_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        converted: dict[str, Any] = {
            "role": message["role"],
            "content": openai_content_text(message["content"]),
        }
        for key in ("name", "reasoning_content", "tool_calls", "tool_call_id"):
            if key in message:
                converted[key] = message[key]
        out.append(converted)
    return out


def openai_to_example(row: dict[str, Any]) -> Example:
    extra = {key: row[key] for key in ("id", "metadata") if key in row}
    return Example(
        kind="sft",
        format=OPENAI_FORMAT,
        messages=normalize_openai_messages(row["messages"]),
        extra=extra,
        quality=is_high_quality(row),
    )
