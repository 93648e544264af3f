"""Blend a fine-tuned model back into the checkpoint it started from: `W * fine_tuned + (1 - W) * start`.

The managed service's merge-back weight (`model_importance_score.fine_tuned_model`; 1.0 = no merging): a
knob against forgetting that costs no training, searched at evaluation cost only (`tunesmith eval --blend`,
`benchmarks/blend.py`). The arithmetic is done in float32 and the result is stored in the starting
checkpoint's dtype. For a LoRA adapter the blend is exact and stays an adapter: the merged weight is
`start + s * B @ A`, so scaling every `lora_B` by W gives `start + W * delta`.

The "start" of a stage is the model it was trained from (`best/tunesmith_best.json: input`): the run's
starting checkpoint for the first stage, the previous stage's best for later ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError


def check_weight(weight: float) -> float:
    """`weight` as a float in [0, 1], else a one-line error."""
    if not 0.0 <= float(weight) <= 1.0:
        raise UserError(
            f"--blend {weight}: the blend weight must be in [0, 1] (1.0 = the fine-tuned model only)"
        )
    return float(weight)


def blend_weights(fine_tuned: Any, start: Any, weight: float) -> Any:
    """Interpolate `fine_tuned`'s floating-point tensors towards `start`'s in place (tied tensors once) and
    return `fine_tuned`. Both models must have the same architecture; integer buffers are kept."""
    import torch

    start_state = start.state_dict()
    seen: set[int] = set()
    with torch.no_grad():
        for name, tensor in fine_tuned.state_dict().items():
            if name not in start_state or start_state[name].shape != tensor.shape:
                raise UserError(
                    f"blend: the fine-tuned model's {name} has no counterpart of the same shape in the start "
                    "checkpoint — blend only a model with the checkpoint it was trained from"
                )
            if not tensor.is_floating_point() or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            blended = torch.lerp(start_state[name].float(), tensor.float(), weight)
            tensor.copy_(blended.to(tensor.dtype))
    return fine_tuned


def start_dtype(start_ref: str | Path) -> Any:
    """The dtype the starting checkpoint is stored in (what exports keep; float32 when unstated)."""
    from tunesmith.models.loading import stored_dtype

    return stored_dtype(start_ref)


def blended_model(fine_tuned_ref: str | Path, start_ref: str | Path, weight: float) -> Any:
    """The fine-tuned model blended with `start_ref` at `weight`, in the start checkpoint's dtype."""
    import torch

    from tunesmith.models.loading import load_model

    weight = check_weight(weight)
    model = load_model(fine_tuned_ref, dtype=torch.float32)
    if weight < 1.0:
        blend_weights(model, load_model(start_ref, dtype=torch.float32), weight)
    return model.to(start_dtype(start_ref))


def save_blend(fine_tuned_ref: str | Path, start_ref: str | Path, weight: float, out_dir: str | Path) -> Path:
    """Write the blended model (safetensors, tokenizer and generation config) to `out_dir`."""
    from tunesmith.models.loading import load_tokenizer

    out = Path(out_dir)
    blended_model(fine_tuned_ref, start_ref, weight).save_pretrained(out)
    load_tokenizer(fine_tuned_ref).save_pretrained(out)
    return out


def scale_adapter(adapter_dir: str | Path, weight: float, out_dir: str | Path) -> None:
    """Write a copy of a PEFT LoRA adapter whose effect is scaled by `weight` (every `lora_B` times W).

    Adapters whose effect is not linear in B (DoRA) or that carry full modules (`modules_to_save`) cannot
    be blended this way: a one-line error names the alternative (the merged export)."""
    from safetensors.torch import load_file, save_file

    adapter_dir, out = Path(adapter_dir), Path(out_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    extra = sorted(name for name in tensors if "lora_A" not in name and "lora_B" not in name)
    if config.get("use_dora") or config.get("modules_to_save") or extra:
        raise UserError(
            f"{adapter_dir}: this adapter is not a plain LoRA (DoRA or full modules), so --blend cannot be "
            "applied to it — export --format merged --blend W instead"
        )
    scaled = {name: t * weight if "lora_B" in name else t for name, t in tensors.items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in scaled.items()}, out / "adapter_model.safetensors", {"format": "pt"}
    )


def stage_input(best_dir: str | Path) -> str:
    """The model a stage's best was trained from (recorded by training in `best/tunesmith_best.json`).

    A previous stage's best is recorded as the path training used, which may be relative to where training
    ran: it is then found in this run's folder."""
    best_dir = Path(best_dir)
    record = best_dir / "tunesmith_best.json"
    if not record.is_file():
        raise UserError(
            f"{best_dir}: not a run stage's best model (no tunesmith_best.json) — --blend needs runs/<name>[/<stage>]"
        )
    ref = json.loads(record.read_text())["input"]
    recorded, run_dir = Path(ref), best_dir.resolve().parent.parent
    moved = not recorded.exists() and recorded.name == "best" and len(recorded.parts) >= 3
    if moved and recorded.parts[-3] == run_dir.name and (run_dir / recorded.parts[-2] / "best").is_dir():
        return str(run_dir / recorded.parts[-2] / "best")
    return ref


def blend_eval_command(model: str, weight: float, eval_command: Any, **options: Any) -> int:
    """`tunesmith eval --model RUN_STAGE --blend W`: blend into a temporary folder and evaluate that through
    the ordinary path (same baseline, suites and cache); the report goes to `<run>/eval/blend-W/`."""
    import tempfile

    from tunesmith.evaluation.runner import resolve_eval_model

    weight = check_weight(weight)
    checkpoint = resolve_eval_model(model)
    start = stage_input(checkpoint.load_ref)
    if options.get("out") is None and checkpoint.run_dir is not None:
        options["out"] = str(checkpoint.run_dir / "eval" / f"blend-{weight:g}")
    with tempfile.TemporaryDirectory(prefix="tunesmith-blend-") as tmp:
        save_blend(checkpoint.load_ref, start, weight, tmp)
        return eval_command(model, weights=Path(tmp), weights_label=f"blend {weight:g}", **options)
