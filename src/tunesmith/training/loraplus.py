"""LoRA+ ([hayou-2024]): the B matrices of every LoRA adapter learn at `plus_lr_ratio` times the LR of the
A matrices (and of anything else trainable).

`param_groups` is the pure split; `PlaybookSchedule.create_optimizer` (`training/schedule.py`) builds the
trainer's optimizer from it for every technique, so the playbook schedule (one multiplier per step, applied to
each group's own base LR) and its rollback scaling move both groups together. The rule is PEFT's
`create_loraplus_optimizer` ([peft-docs]): a parameter whose name holds `lora_B` (or `lora_embedding_B`) is a
B matrix. Unlike PEFT's helper, empty groups are left out and weight decay follows the trainer's own split
(no decay on biases and norms), so a ratio of 1 gives the trainer's usual groups at one LR.
"""

from __future__ import annotations

from typing import Any

B_MATRIX_MARKERS = ("lora_B", "lora_embedding_B")


def is_b_matrix(name: str) -> bool:
    """Whether a parameter (by its name in the PEFT model) is a LoRA B matrix."""
    return any(part in B_MATRIX_MARKERS for part in name.split("."))


def param_groups(
    named_parameters: Any, lr: float, ratio: float, weight_decay: float, decay_names: set[str]
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: (A and the rest | B) x (decayed | not), each with its LR
    (`lr` or `lr * ratio`); only trainable parameters, no empty group. Raises `ValueError` when no trainable
    parameter is a B matrix (LoRA+ on a model without LoRA adapters would silently be plain training)."""
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, param in named_parameters:
        if param.requires_grad:
            groups.setdefault((is_b_matrix(name), name in decay_names), []).append(param)
    if not any(is_b for is_b, _ in groups):
        raise ValueError("LoRA+ needs LoRA adapters: no trainable parameter is a lora_B matrix")
    return [
        {"params": params, "lr": lr * ratio if is_b else lr, "weight_decay": weight_decay if decayed else 0.0}
        for (is_b, decayed), params in sorted(groups.items())
    ]
