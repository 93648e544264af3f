"""`tunesmith chat MODEL` (interactive) and `tunesmith generate MODEL --prompts FILE.jsonl` (batch): quick
manual checks through the model's chat template, with the same generation code as evaluation
(`models/generate.py`: greedy by default, left-padded batches).

MODEL is anything `tunesmith eval --model` accepts: `tiny:post-trained`, `runs/<name>[/<stage>]` (its best
model), a model folder (an export, say) or a Hub id. A prompts file holds one conversation per line, as
`{"messages": [...]}` (OpenAI chat), `{"prompt": "..."}` or `{"query": "..."}` (gen_qa); the output repeats
each row with its `completion`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from tunesmith.bounded import loads
from tunesmith.errors import UserError

DEFAULT_MAX_NEW_TOKENS = 256


def load_for_chat(ref: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, label) for a model reference, ready for generation."""
    from transformers.utils import logging as hf_logging

    from tunesmith.evaluation.runner import resolve_eval_model
    from tunesmith.models.loading import load_model, load_tokenizer

    checkpoint = resolve_eval_model(ref)
    hf_logging.disable_progress_bar()
    model = load_model(checkpoint.load_ref)
    model.eval()
    return model, load_tokenizer(checkpoint.load_ref), checkpoint.label


def row_messages(row: Any, where: str) -> list[dict[str, str]]:
    """The conversation of one prompts-file row (see the module docstring)."""
    if isinstance(row, dict):
        if isinstance(row.get("messages"), list) and row["messages"]:
            messages = [m for m in row["messages"] if isinstance(m, dict)]
            if all(isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
                while messages and messages[-1]["role"] == "assistant":
                    messages = messages[:-1]  # a demonstration's answer: generate it instead
                if messages:
                    return messages
        for key in ("prompt", "query"):
            if isinstance(row.get(key), str):
                return [{"role": "user", "content": row[key]}]
    raise UserError(
        f'{where}: expected {{"messages": [{{"role", "content"}}...]}}, {{"prompt": ...}} or {{"query": ...}}'
    )


def read_prompts(path: str | Path) -> tuple[list[dict], list[list[dict[str, str]]]]:
    """(rows, conversations) of a prompts JSONL file; a bad line is a one-line error with its number."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--prompts {path}: no such file")
    rows, conversations = [], []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError as err:  # invalid JSON, or past the depth / number-size limits
            raise UserError(f"{path}:{number}: not JSON ({err})") from None
        conversations.append(row_messages(row, f"{path}:{number}"))
        rows.append(row if isinstance(row, dict) else {"row": row})
    if not rows:
        raise UserError(f"--prompts {path}: the file has no prompts")
    return rows, conversations


def generate_command(
    model_ref: str,
    *,
    prompts: str,
    out: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> int:
    """The CLI: complete every prompt of the file; JSONL to `out` (or stdout)."""
    import torch

    from tunesmith.models.generate import generate_batch
    from tunesmith.runs import atomic_write_jsonl

    rows, conversations = read_prompts(prompts)
    model, tokenizer, label = load_for_chat(model_ref)
    torch.manual_seed(seed)
    completions = generate_batch(
        model,
        tokenizer,
        conversations,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature or None,
    )
    results = [{**row, "completion": c} for row, c in zip(rows, completions, strict=True)]
    if out:
        atomic_write_jsonl(out, results)
        print(f"{label}: {len(results)} completions written to {out}", file=sys.stderr)
    else:
        for row in results:
            print(json.dumps(row, ensure_ascii=False))
    return 0


def chat_loop(
    model: Any,
    tokenizer: Any,
    *,
    stdin: TextIO,
    stdout: TextIO,
    system: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float | None = None,
) -> int:
    """Read a user turn per line, answer it with the whole conversation so far; `/reset` starts over,
    `/exit` (or end of input) quits. Returns the number of answers given."""
    from tunesmith.models.generate import generate_batch

    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    answers = 0
    while True:
        stdout.write("you> ")
        stdout.flush()
        raw = getattr(stdin, "buffer", stdin).readline()  # bytes where there are: a bad line is one line
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as err:
            print(
                f"chat: that line is not UTF-8 text (byte {raw[err.start]:#04x} at {err.start}) — set the "
                "terminal to UTF-8 and type it again",
                file=sys.stderr,
            )
            continue
        if not line or line.strip() == "/exit":
            stdout.write("\n")
            return answers
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history = list(start)
            stdout.write("(conversation reset)\n")
            continue
        history.append({"role": "user", "content": text})
        answer = generate_batch(
            model, tokenizer, [history], max_new_tokens=max_new_tokens, temperature=temperature or None
        )[0]
        history.append({"role": "assistant", "content": answer})
        stdout.write(f"model> {answer}\n")
        answers += 1


def chat_command(
    model_ref: str,
    *,
    system: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float | None = None,
) -> int:
    """The CLI: an interactive conversation on the terminal."""
    model, tokenizer, label = load_for_chat(model_ref)
    template = "its chat template" if getattr(tokenizer, "chat_template", None) else "no chat template"
    print(f"chatting with {label} ({template}); /reset starts over, /exit or Ctrl-D quits", file=sys.stderr)
    chat_loop(
        model,
        tokenizer,
        stdin=sys.stdin,
        stdout=sys.stdout,
        system=system,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )
    return 0
