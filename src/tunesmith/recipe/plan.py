"""`tunesmith plan RECIPE`: the resolved recipe, every value with where it came from, and derived numbers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.resolve import Provenance, ResolvedRecipe, resolve


def plan(recipe_path: str | Path, overrides: list[str] | None = None) -> ResolvedRecipe:
    """Load, override, validate and resolve a recipe file (the library call behind `tunesmith plan`)."""
    recipe = load_recipe(recipe_path, overrides)
    return resolve(recipe, recipe_path=recipe_path)


def add_parameter_counts(resolved: ResolvedRecipe) -> None:
    """Add trainable / total parameters to each stage's derived numbers when the model config is local."""
    from tunesmith.models.parameters import parameter_counts

    model = resolved.recipe.model
    ref = model.path if model.path else f"{model.family}:{model.checkpoint}"
    for stage, stage_plan in zip(resolved.recipe.stages, resolved.stages, strict=True):
        lora = stage.hyperparameters.lora
        counts = parameter_counts(ref, stage.mode, lora)
        if counts is None:
            stage_plan.notes.append(f"trainable parameters: unknown until {ref} is available locally")
            continue
        trainable, total = counts
        how = f"lora rank {lora.rank} on {lora.target_modules}" if stage.mode == "lora" else "full rank"
        stage_plan.set(
            "trainable_parameters", trainable, f"{100 * trainable / total:.1f}% of {total:,}, {how}"
        )


def _flatten(node: Any, path: str, rows: list[tuple[str, Any]]) -> None:
    if isinstance(node, dict) and node and not _is_leaf_mapping(path):
        for key, value in node.items():
            _flatten(value, f"{path}.{key}" if path else key, rows)
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for index, value in enumerate(node):
            _flatten(value, f"{path}[{index}]", rows)
    else:
        rows.append((path, node))


def _is_leaf_mapping(path: str) -> bool:
    """Mappings shown as one value (category shares, sources) rather than key by key."""
    return path.endswith(".general") or path.endswith(".general_sources")


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    return str(value)


def provenance_rows(resolved: ResolvedRecipe) -> list[tuple[str, str, str]]:
    """(key path, value, origin) for every leaf of the resolved recipe — what `plan` prints."""
    return value_rows(resolved.recipe.model_dump(mode="json", exclude_none=True), resolved.provenance)


def value_rows(recipe: dict[str, Any], provenance: Mapping[str, Provenance]) -> list[tuple[str, str, str]]:
    """`provenance_rows` of a resolved recipe as plain data (a run's `plan.json`: the run report)."""
    rows: list[tuple[str, Any]] = []
    _flatten(recipe, "", rows)
    out = []
    for path, value in rows:
        origin = provenance.get(path)
        if value in ({}, []) and origin is None:
            continue  # an empty optional mapping or list (e.g. no general_sources): nothing to show
        out.append((path, _fmt_value(value), str(origin) if origin else _schema_default(path)))
    return out


def _schema_default(path: str) -> str:
    """Provenance of a value the schema itself supplies (e.g. `seed: 0`), with the field's description."""
    from tunesmith.recipe.schema import Recipe

    field = Recipe.model_fields.get(path)
    return f"default: {field.description}" if field is not None and field.description else "default: empty"


def render_plan(resolved: ResolvedRecipe) -> str:
    recipe = resolved.recipe
    lines = [
        f"plan for '{recipe.name}'" + (f" ({resolved.source})" if resolved.source else ""),
        f"model: {recipe.model.family or recipe.model.path} {recipe.model.checkpoint or ''}".rstrip()
        + f"   [defaults: {resolved.size_class}-class]",
        *([f"size class: {resolved.size_reason}"] if resolved.size_reason else []),
        "",
    ]
    rows = provenance_rows(resolved)
    width = min(46, max(len(path) for path, _, _ in rows))
    current_stage = None
    for path, value, origin in rows:
        stage = path.split(".")[0] if path.startswith("stages[") else None
        if stage != current_stage and stage is not None:
            index = int(stage[len("stages[") : -1])
            sp = resolved.stages[index]
            lines += [
                "",
                f"== stage {index + 1}/{len(resolved.stages)}: {sp.name} ({sp.technique}, {sp.mode}) "
                f"starting from {sp.input} ==",
            ]
            current_stage = stage
        shown = path[len(stage) + 1 :] if stage else path
        lines.append(f"  {shown:<{width}} = {value:<14} <- {origin}")
    lines += ["", "== derived numbers =="]
    for sp in resolved.stages:
        lines.append(f"stage {sp.name}:")
        for key, value in sp.numbers.items():
            if isinstance(value, dict):
                lines.append(f"  {key}:")
                for phase, lr in value.items():
                    lines.append(f"    {phase}: lr {lr:g}")
            else:
                lines.append(f"  {key:<30} = {_fmt_value(value):<14} ({sp.formulas[key]})")
        for note in sp.notes:
            lines.append(f"  {note}")
    return "\n".join(lines) + "\n"
