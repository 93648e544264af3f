"""Assistant-token coverage of SFT on multi-turn data, on the real families' stand-ins (issue 20).

Builds the micro Qwen3 and Llama 3.2 stand-ins in a temporary folder, tokenizes 300 conversations (two
assistant turns in two of three, a system prompt in half) with `tunesmith.models.templates`, and prints per
family: the tokens that carry loss (every assistant turn), the tokens of the last assistant turn alone (what
a prompt -> last-turn completion split trains), their ratio, and the tokenization time per conversation.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chat_masks.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def last_run_length(mask: list[int]) -> int:
    """Tokens of the last stretch of 1s (the last assistant turn)."""
    length = 0
    for bit in reversed(mask):
        if bit:
            length += 1
        elif length:
            break
    return length


def main() -> None:
    from transformers import AutoTokenizer

    from tunesmith.models.stand_ins import build_stand_in, sample_conversations
    from tunesmith.models.templates import tokenize_conversation, training_template

    rows = sample_conversations(300)
    with tempfile.TemporaryDirectory() as root:
        for kind in ("qwen3", "llama3"):
            tokenizer = AutoTokenizer.from_pretrained(build_stand_in(kind, Path(root) / kind))
            template = training_template(tokenizer)
            started = time.perf_counter()
            masks = [
                tokenize_conversation(tokenizer, messages, template, reasoning=False)["assistant_masks"]
                for messages in rows
            ]
            seconds = time.perf_counter() - started
            every = sum(sum(mask) for mask in masks)
            last = sum(last_run_length(mask) for mask in masks)
            print(
                f"{kind:7s} template {template.source:8s} tokens with loss: every turn {every}, last turn only "
                f"{last} (x{every / last:.2f}); {1000 * seconds / len(rows):.2f} ms per conversation"
            )


if __name__ == "__main__":
    main()
