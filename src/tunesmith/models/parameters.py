"""Parameter counts for a plan, without loading weights: the model is built on the `meta` device from its
config (local folder, built tiny family, or a Hugging Face cache entry; no network)."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any


def parameter_counts(model_ref: str, mode: str, lora: Any | None = None) -> tuple[int, int] | None:
    """(trainable, total) parameters for `mode` ("full" | "lora" with a `LoraSpec`), or None when the
    model's config is not available locally."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunesmith.errors import ModelError
    from tunesmith.models.loading import resolve_ref

    try:
        source, revision = resolve_ref(model_ref)
        config = AutoConfig.from_pretrained(str(source), revision=revision, local_files_only=True)
    except (ModelError, OSError, ValueError):
        return None
    with torch.device("meta"), contextlib.redirect_stderr(io.StringIO()):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    if mode != "lora":
        return total, total
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(
            model,
            LoraConfig(
                r=lora.rank,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout or 0.0,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in peft_model.parameters())  # total counts the adapters too
