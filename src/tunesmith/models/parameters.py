"""Parameter counts and the size class, without loading weights: the model is built on the `meta` device
from its config (local folder, built tiny family, or a Hugging Face cache entry; no network)."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

TINY_MEASURED_PARAMETERS = 1_063_040
"""The embedded tiny family's size (its build report): where the tiny-class defaults were measured."""

BILLION_SMALLEST_PARAMETERS = 360_000_000
"""SmolLM2-360M (about 360M parameters), the smallest catalog family that gets the billion-class defaults (the managed service's
recipes, [nova-recipes])."""

TINY_BOUNDARY_PARAMETERS = round(math.sqrt(TINY_MEASURED_PARAMETERS * BILLION_SMALLEST_PARAMETERS))
"""A model is tiny-class below this count: nearer, on a log scale, to the tiny family than to the smallest
billion-class family (about 20M)."""


@dataclass(frozen=True)
class SizeClass:
    """The defaults table's size class (`tiny` | `billion`), the parameter count it came from (None when
    the catalog family decided or no config was available) and the sentence `plan` shows."""

    name: str
    parameters: int | None
    reason: str


def _meta_model(model_ref: str) -> Any | None:
    """The model built on the meta device from its local config (no weights), or None when the config is not
    available locally."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunesmith.errors import ModelError
    from tunesmith.models.loading import resolve_ref

    try:
        source, revision = resolve_ref(model_ref, fetch=False)  # plan counts; it does not download
        config = AutoConfig.from_pretrained(
            str(source), revision=revision, local_files_only=True, trust_remote_code=False
        )
    except (ModelError, OSError, ValueError):
        return None
    with torch.device("meta"), contextlib.redirect_stderr(io.StringIO()):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=False)


def human_count(parameters: int) -> str:
    """1063040 -> '1.06M', 596049920 -> '0.60B'."""
    if parameters >= 100_000_000:
        return f"{parameters / 1e9:.2f}B"
    if parameters >= 1_000_000:
        return f"{parameters / 1e6:.3g}M"
    return f"{parameters / 1e3:.3g}K"


def classify(parameters: int) -> SizeClass:
    """The size class of a model with `parameters` parameters, with the reason."""
    boundary = human_count(TINY_BOUNDARY_PARAMETERS)
    between = (
        f"the tiny defaults were measured on the {human_count(TINY_MEASURED_PARAMETERS)} tiny family, the "
        f"billion-class ones serve catalog families from {human_count(BILLION_SMALLEST_PARAMETERS)} up; the "
        f"boundary is their geometric mean, {boundary}"
    )
    if parameters < TINY_BOUNDARY_PARAMETERS:
        return SizeClass("tiny", parameters, f"{human_count(parameters)} parameters -> tiny class: {between}")
    return SizeClass(
        "billion", parameters, f"{human_count(parameters)} parameters -> billion class: {between}"
    )


def size_class(family: Any | None, model_ref: str | None) -> SizeClass:
    """The size class of a recipe's model: the catalog family's own when the model is a catalog family
    (`family`, a `models.catalog.Family`), else from the parameter count of `model_ref`'s config."""
    if family is not None:
        return SizeClass(
            family.size_class, None, f"catalog family {family.name} -> {family.size_class} class"
        )
    model = _meta_model(model_ref) if model_ref else None
    if model is None:
        return SizeClass(
            "billion",
            None,
            f"{model_ref}: no local config to count parameters -> billion class (the managed service's defaults); "
            "point model.path at a local folder to size them to the model",
        )
    return classify(sum(p.numel() for p in model.parameters()))


def parameter_counts(model_ref: str, mode: str, lora: Any | None = None) -> tuple[int, int] | None:
    """(trainable, total) parameters for `mode` ("full" | "lora" with a `LoraSpec`), or None when the
    model's config is not available locally."""
    model = _meta_model(model_ref)
    if model is None:
        return None
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
