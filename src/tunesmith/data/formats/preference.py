"""DPO preference rows: a prompt, the preferred answer and the rejected one.

Two forms are read:

- the common chat form (TRL's preference datasets, [trl-docs]): `{"prompt", "chosen", "rejected"}`, where
  `prompt` is a string or OpenAI chat messages ending with a user turn (a system message first, if any), and
  `chosen` / `rejected` are strings or a one-message list `[{"role": "assistant", "content": "..."}]`;
- the managed service's form ([nova-dpo-docs]): a Bedrock conversation whose earlier turns are as in SFT and
  whose final assistant turn holds `candidates`: exactly two `{"content": [{"text": ...}],
  "preferenceLabel": "preferred" | "non-preferred"}`. The turns before it are checked by the SFT Bedrock
  rules (each candidate completes one conversation); `schemaVersion` may be left out, as in the service's
  samples. Text only.

Both become one `Example` of kind `dpo`: `messages` = the prompt (system?, ..., user), `extra` = `chosen` and
`rejected` texts. A pair whose two answers are the same teaches nothing and is an error.
"""

from __future__ import annotations

from typing import Any

from tunesmith.data.formats.chat import (
    BEDROCK_SCHEMA,
    bedrock_problems,
    bedrock_to_example,
    normalize_openai_messages,
    openai_content_text,
    openai_message_problem,
)
from tunesmith.data.formats.core import Example, Problem, is_high_quality, quality_problem, type_name

CHAT_FORMAT = "dpo-chat"
BEDROCK_FORMAT = "dpo-bedrock"
LABELS = ("preferred", "non-preferred")


def is_bedrock_preference(row: dict[str, Any]) -> bool:
    """A Bedrock-shaped row whose last turn carries `candidates` (the service's preference form)."""
    messages = row.get("messages")
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[-1], dict)
        and "candidates" in messages[-1]
    )


# ---------------------------------------------------------------------------------------------- chat form


def _answer_problem(key: str, value: Any) -> Problem | None:
    if isinstance(value, str):
        return None if value.strip() else Problem(f'"{key}" is empty', f"write the {key} answer")
    if isinstance(value, list):
        if len(value) != 1:
            return Problem(
                f'"{key}" holds {len(value)} messages', 'give one: [{"role": "assistant", "content": "..."}]'
            )
        problem = openai_message_problem(0, value[0], ("assistant",))
        if problem:
            return Problem(f'"{key}": {problem.what}', problem.fix)
        return None
    return Problem(
        f'"{key}" is a {type_name(value)}', 'use a string or [{"role": "assistant", "content": ...}]'
    )


def _answer_text(value: Any) -> str:
    return value if isinstance(value, str) else str(openai_content_text(value[0]["content"]))


def chat_problems(row: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        if not prompt.strip():
            found.append(Problem('"prompt" is empty', "write the prompt"))
    elif isinstance(prompt, list) and prompt:
        for index, message in enumerate(prompt):
            problem = openai_message_problem(index, message, ("system", "user", "assistant"))
            if problem:
                found.append(Problem(f'"prompt": {problem.what}', problem.fix))
                break
            if message["role"] == "system" and index != 0:
                found.append(Problem(f'"prompt": messages[{index}] is a system message', "put it first"))
                break
        else:
            if prompt[-1]["role"] != "user":
                found.append(
                    Problem(
                        f'"prompt" ends with a "{prompt[-1]["role"]}" turn',
                        'end the prompt with the user turn that "chosen" and "rejected" answer',
                    )
                )
    else:
        found.append(
            Problem(
                '"prompt" is missing, empty or not a string / list', 'add "prompt": "..." (or chat messages)'
            )
        )
    for key in ("chosen", "rejected"):
        if key not in row:
            found.append(Problem(f'"{key}" is missing', f'add "{key}": "..."'))
            continue
        problem = _answer_problem(key, row[key])
        if problem:
            found.append(problem)
    if not found and _answer_text(row["chosen"]).strip() == _answer_text(row["rejected"]).strip():
        found.append(
            Problem('"chosen" and "rejected" are the same answer', "a pair needs two different answers")
        )
    problem = quality_problem(row)
    if problem:
        found.append(problem)
    return found


def chat_to_example(row: dict[str, Any]) -> Example:
    prompt = row["prompt"]
    messages = (
        [{"role": "user", "content": prompt}]
        if isinstance(prompt, str)
        else normalize_openai_messages(prompt)
    )
    return Example(
        kind="dpo",
        format=CHAT_FORMAT,
        messages=messages,
        extra={"chosen": _answer_text(row["chosen"]), "rejected": _answer_text(row["rejected"])},
        quality=is_high_quality(row),
    )


# ---------------------------------------------------------------------------------------------- the service's form


def _completed(row: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """The row as an SFT Bedrock conversation ending with `candidate` as the assistant's turn."""
    messages = [*row["messages"][:-1], {"role": "assistant", "content": candidate.get("content")}]
    return {**row, "schemaVersion": row.get("schemaVersion", BEDROCK_SCHEMA), "messages": messages}


def _candidates_problem(row: dict[str, Any]) -> Problem | None:
    index = len(row["messages"]) - 1
    last = row["messages"][-1]
    where = f"messages[{index}]"
    if last.get("role") != "assistant":
        return Problem(
            f"{where} holds candidates but has role {last.get('role')!r}", 'use "role": "assistant"'
        )
    extra = set(last) - {"role", "candidates"}
    if extra:
        return Problem(f"{where} has unexpected key(s) {sorted(extra)}", 'keep only "role" and "candidates"')
    candidates = last["candidates"]
    if not isinstance(candidates, list) or len(candidates) != 2:
        count = len(candidates) if isinstance(candidates, list) else type_name(candidates)
        return Problem(
            f"{where}.candidates holds {count}", "give exactly two: one preferred, one non-preferred"
        )
    labels = []
    for number, candidate in enumerate(candidates):
        if not isinstance(candidate, dict) or set(candidate) != {"content", "preferenceLabel"}:
            return Problem(
                f'{where}.candidates[{number}] must have exactly "content" and "preferenceLabel"',
                'e.g. {"content": [{"text": "..."}], "preferenceLabel": "preferred"}',
            )
        labels.append(candidate["preferenceLabel"])
    if sorted(labels) != sorted(LABELS):
        return Problem(
            f"{where}.candidates are labelled {labels}", 'label one "preferred" and the other "non-preferred"'
        )
    return None


def bedrock_preference_problems(row: dict[str, Any]) -> list[Problem]:
    if not is_bedrock_preference(row):
        return [
            Problem('the last turn has no "candidates"', "end with an assistant turn holding two candidates")
        ]
    problem = _candidates_problem(row)
    if problem:
        return [problem]
    found: list[Problem] = []
    last = f"messages[{len(row['messages']) - 1}]"
    for number, candidate in enumerate(row["messages"][-1]["candidates"]):  # each completes one conversation
        for problem in bedrock_problems(_completed(row, candidate)):
            what = problem.what.replace(f"{last}.content", f"{last}.candidates[{number}].content")
            if all(p.what != what for p in found):
                found.append(Problem(what, problem.fix))
    if not found:
        texts = [
            bedrock_to_example(_completed(row, c)).messages[-1]["content"]
            for c in row["messages"][-1]["candidates"]
        ]
        if texts[0].strip() == texts[1].strip():
            found.append(
                Problem("the two candidates are the same answer", "a pair needs two different answers")
            )
    return found


def bedrock_preference_to_example(row: dict[str, Any]) -> Example:
    candidates = {c["preferenceLabel"]: c for c in row["messages"][-1]["candidates"]}
    chosen = bedrock_to_example(_completed(row, candidates["preferred"])).messages
    rejected = bedrock_to_example(_completed(row, candidates["non-preferred"])).messages
    return Example(
        kind="dpo",
        format=BEDROCK_FORMAT,
        messages=chosen[:-1],
        extra={"chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"]},
        quality=is_high_quality(row),
    )
