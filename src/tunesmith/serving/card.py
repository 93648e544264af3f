"""The model card (`README.md`) of an export: how it was made, how to load it, and the numbers behind it.

Hugging Face model-card layout: YAML metadata (library, base model, tags) then Markdown. The sections are
the run's own records, copied, not re-measured: the resolved recipe (`recipe.resolved.yaml`), the realized
data mix (`<stage>/data/mix.json`) and the evaluation table (`eval/evaluation.json`, the stage against the
run's start, as `tunesmith eval` prints it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def _front_matter(source: Any, provenance: dict) -> str:
    adapter = provenance["format"] == "adapter"
    meta = {
        "library_name": "peft" if adapter else "transformers",
        "base_model": provenance["base_model"],
        "pipeline_tag": "text-generation",
        "tags": ["tunesmith", source.technique, source.mode] + (["lora"] if adapter else []),
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _load_section(folder_hint: str, provenance: dict) -> str:
    if provenance["format"] == "adapter":
        return (
            "## Load it\n\nA LoRA adapter for the model it was trained from (`base_model_name_or_path` in\n"
            "`adapter_config.json`: the run's starting checkpoint for a first stage, the previous stage's\n"
            "best model otherwise). Load that base first:\n\n"
            "```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{folder_hint}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{folder_hint}")\n```\n\n'
            "vLLM (multi-LoRA): `vllm serve BASE --enable-lora --lora-modules NAME=THIS_FOLDER`.\n"
        )
    return (
        "## Load it\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'model = AutoModelForCausalLM.from_pretrained("{folder_hint}")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{folder_hint}")\n'
        'messages = [{"role": "user", "content": "..."}]\n'
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", '
        "return_dict=True)\n"
        "print(tokenizer.decode(model.generate(**inputs)[0], skip_special_tokens=True))\n```\n\n"
        "vLLM: `vllm serve THIS_FOLDER`.\n"
    )


def _mix_section(stage_dir: Path) -> str:
    path = stage_dir / "data" / "mix.json"
    if not path.is_file():
        return "## Data mix\n\nNo mix report in this run (`data/mix.json` is missing).\n"
    mix = json.loads(path.read_text())
    lines = [
        f"## Data mix (realized; unit: {mix.get('unit')}, seed {mix.get('seed')})\n",
        "| source | requested % | realized % | examples | passes |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, stats in (mix.get("sources") or {}).items():
        lines.append(
            f"| {name} | {stats['requested_percent']:.2f} | {stats['realized_percent']:.2f} | "
            f"{stats['examples']} | {stats['passes']} |"
        )
    lines += [f"\nwarning: {w}" for w in mix.get("warnings") or []]
    return "\n".join(lines) + "\n"


def _eval_section(source: Any) -> str:
    from tunesmith.evaluation.runner import render_comparison

    path = source.run_dir / "eval" / "evaluation.json"
    label = f"{source.run_dir.name}/{source.stage}"
    comparisons = json.loads(path.read_text()).get("comparisons", []) if path.is_file() else []
    mine = [c for c in comparisons if c["after"] == label]
    mine.sort(key=lambda c: str(c["before"]).startswith("start"))  # against the run's start when there
    if not mine:
        return (
            "## Evaluation\n\nNot evaluated: the run has no comparison of this stage with its start "
            f"(run `tunesmith eval --model {source.stage_dir}`).\n"
        )
    return (
        "## Evaluation (the stage's best against its baseline; * = beyond noise, 95% bootstrap CI)\n\n"
        "```\n" + render_comparison(mine[-1]) + "\n```\n"
    )


def model_card(source: Any, provenance: dict) -> str:
    """The README.md of an export of `source` (a `serving.export.StageSource`)."""
    blend = provenance["blend"]
    what = "LoRA adapter" if provenance["format"] == "adapter" else "model (merged weights)"
    lines = [
        _front_matter(source, provenance),
        f"# {source.run_dir.name} / {source.stage}\n",
        f"A {what} produced by tunesmith: stage `{source.stage}` ({source.technique}, {source.mode}) of run "
        f"`{source.run_dir.name}`, trained from `{source.input_ref}`; weights stored as "
        f"{provenance['dtype']} (the starting checkpoint's dtype).\n",
    ]
    if blend < 1.0:
        lines.append(
            f"Blended back into its start: `{blend:g} x fine-tuned + {1 - blend:g} x start` (the managed "
            "service's `model_importance_score.fine_tuned_model`). The evaluation below is of the unblended "
            f"model; `tunesmith eval --model {source.stage_dir} --blend {blend:g}` measures this one.\n"
        )
    lines += [
        _load_section(".", provenance),
        _eval_section(source),
        _mix_section(source.stage_dir),
        "## Resolved recipe\n\nEvery value as trained (`tunesmith plan` shows where each came from):\n",
        "```yaml\n" + (source.run_dir / "recipe.resolved.yaml").read_text().rstrip() + "\n```\n",
    ]
    return "\n".join(lines)
