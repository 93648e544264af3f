"""Built-in general data, by category (procedurally generated, seeded, unlimited, exactly checkable).

Category names follow the managed service's curated general mix where the meaning fits
(reference/managed-service-facts.md section 2.1).

Contract used by the rest of the package (implemented by the embedded-world issue):
- `CATEGORIES`: the category names, in a fixed order.
- each category yields three kinds of rows:
  - "text": `{"text": ...}` plain documents for pre-training (no chat format);
  - "sft":  `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}` chat demonstrations;
  - "eval": `{"query": ..., "response": ..., "metadata": {"category": ...}}` gen_qa items whose prompts
            never appear in "sft"/"text" (split by a hash of the prompt).
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "reasoning-instruction-following",
    "instruction-following",
    "math",
    "reasoning",
    "knowledge",
)
