"""Load a recipe: YAML (the safe loader, bounded: `tunesmith.bounded.load_yaml`) + `key.path=value`
overrides -> a validated `Recipe`.

Every problem becomes a one-line `RecipeError` naming the file, line, key path, the value, the allowed range
and, for unknown keys, a "did you mean" suggestion.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunesmith.bounded import LimitError, load_yaml, read_bytes_bounded, read_text_bounded
from tunesmith.errors import RecipeError
from tunesmith.recipe.schema import Recipe
from tunesmith.runs import has_lone_surrogate
from tunesmith.suggest import did_you_mean

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_key_path(path: str) -> list[str | int]:
    """`stages[0].hyperparameters.lr` or `stages.0.hyperparameters.lr` -> ['stages', 0, 'hyperparameters', 'lr']."""
    parts: list[str | int] = []
    for name, index in _SEGMENT.findall(path):
        if index:
            parts.append(int(index))
        elif name.isdigit():
            parts.append(int(name))
        else:
            parts.append(name)
    if not parts or "".join(str(p) for p in parts) == "":
        raise RecipeError(
            f"override {path!r}: empty key path — write key.path=value, e.g. stages[0].hyperparameters.lr=1e-4"
        )
    return parts


def format_key_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def apply_override(data: dict[str, Any], assignment: str) -> tuple[str | int, ...]:
    """Apply one `key.path=value` (value parsed as YAML) to the raw recipe dict, in place; returns the key
    path it set (stage names turned into indices), so that an invalid value is blamed on the override.

    A list index may be a stage name: `stages.sft.hyperparameters.lr=1e-4`.
    """
    if "=" not in assignment:
        raise RecipeError(
            f"override {assignment!r}: expected key.path=value, e.g. stages[0].hyperparameters.lr=1e-4"
        )
    key, raw_value = assignment.split("=", 1)
    try:
        value = load_yaml(raw_value) if raw_value.strip() else None
    except LimitError as err:
        raise RecipeError(f"override {assignment!r}: {err} — {err.fix}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: an integer past the int/str digit limit
        raise RecipeError(
            f"override {assignment[:80]!r}: value is not valid YAML ({err.__class__.__name__})"
        ) from None
    parts = parse_key_path(key.strip())
    node: Any = data
    target: list[str | int] = []
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = format_key_path(parts[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, here)
            target.append(index)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if not isinstance(part, str):
                raise RecipeError(
                    f"override {key!r}: {here} indexes a mapping with a number — use a key name"
                )
            target.append(part)
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise RecipeError(f"override {key!r}: {format_key_path(parts[:depth])} is a value, not a section")
    return tuple(target)


def _list_index(node: list[Any], part: str | int, here: str) -> int:
    if isinstance(part, int):
        if not 0 <= part < len(node):
            raise RecipeError(f"override: {here} is out of range (the list has {len(node)} items)")
        return part
    names = [item.get("name") or item.get("technique") for item in node if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise RecipeError(
        f"override: {here} — no stage named {part!r}{did_you_mean(part, [n for n in names if n])}"
    )


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe file. Raises `RecipeError` (one line) on any problem."""
    path = Path(path)
    try:
        text = read_bytes_bounded(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise RecipeError(
            f"{path}: recipe file not found — check the path (see recipes/ for examples)"
        ) from None
    except LimitError as err:
        raise RecipeError(f"{path}: {err} — pass a recipe .yaml file") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.start}) — save the recipe as UTF-8") from None
    except OSError as err:
        raise RecipeError(
            f"{path}: cannot read the recipe ({err.strerror}) — check its permissions"
        ) from None
    data = _parse(text, path)
    if data is None:
        raise RecipeError(f"{path}: the recipe is empty — start from one in recipes/")
    if not isinstance(data, dict):
        raise RecipeError(
            f"{path}: a recipe is a mapping of keys (name, model, stages, ...), not a {type(data).__name__}"
        )
    overridden = {apply_override(data, assignment): assignment for assignment in overrides or []}
    if has_lone_surrogate(data):
        raise RecipeError(
            f"{path}: a string holds a lone surrogate (\\ud800-\\udfff, invalid Unicode) — fix the text"
        )
    return validate_recipe(data, source=str(path), text=text, overridden=overridden)


def load_stored_recipe(path: Path) -> dict[str, Any]:
    """The raw mapping of a `recipe.resolved.yaml` that tunesmith wrote (a run or export folder), read under
    the same bounds as a recipe; a damaged or unreadable file -> one-line `RecipeError` naming it."""
    try:
        text = read_text_bounded(path)
    except LimitError as err:
        raise RecipeError(f"{path}: the stored recipe {err} — restore the run folder") from None
    data = _parse(text, path)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: the stored recipe is not a mapping — restore the run folder")
    return data


def _parse(text: str, path: Path) -> Any:
    """YAML text -> data under the bounds (`tunesmith.bounded.load_yaml`); problems -> `RecipeError` with
    file:line."""
    try:
        return load_yaml(text, loader=_RecipeLoader)
    except LimitError as err:
        where = f"{path}:{err.line}" if err.line else str(path)
        raise RecipeError(f"{where}: {err} — {err.fix}") from None
    except DuplicateKeyError as err:
        raise RecipeError(
            f"{path}:{err.line}: duplicate key '{err.key}' (first at line {err.first_line}) — keep one; a "
            "second one would silently replace the first"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise RecipeError(
            f"{where}: {problem} — fix the YAML syntax (indentation, ':' after keys, quotes)"
        ) from None
    except ValueError as err:  # an integer past Python's int/str digit limit
        raise RecipeError(
            f"{path}: {' '.join(str(err).split(';')[0].split())} — shorten the number"
        ) from None


class DuplicateKeyError(yaml.YAMLError):
    """A mapping with the same key twice (YAML forbids it; PyYAML would keep the last silently)."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _RecipeLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, refusing a key repeated in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges; its keys may be overridden below it
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key: the SafeLoader reports it
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(str(key), line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def validate_recipe(
    data: dict[str, Any],
    *,
    source: str = "<recipe>",
    text: str | None = None,
    overridden: dict[tuple[str | int, ...], str] | None = None,
) -> Recipe:
    """Validate raw recipe data; an error is blamed on the file line of its key, or on the command-line
    override (`key.path=value`) that set the value at or above its key path."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        problems = [
            _describe(error, data, source, text, overridden or {})
            for error in _merge_union_errors(err.errors())
        ]
        more = (
            f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}; fix this one first)"
        )
        raise RecipeError(problems[0] + (more if len(problems) > 1 else "")) from None


def _merge_union_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic reports one error per union member (`target_modules.list[str]`, `...literal[...]`): drop
    those type tags from the location and merge the messages into one error per key."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for error in errors:
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        )
        if loc in merged:
            message = _strip_value_error(error["msg"])
            if message not in merged[loc]["msg"]:
                merged[loc]["msg"] += f", or {message[0].lower()}{message[1:]}"
            continue
        merged[loc] = {**error, "loc": loc, "msg": _strip_value_error(error["msg"])}
    # An unknown key usually explains a "missing" one (a typo): report unknown keys first.
    return sorted(merged.values(), key=lambda error: error["type"] != "extra_forbidden")


def _strip_value_error(message: str) -> str:
    return message[len("Value error, ") :] if message.startswith("Value error, ") else message


def _describe(
    error: dict[str, Any],
    data: dict[str, Any],
    source: str,
    text: str | None,
    overridden: dict[tuple[str | int, ...], str],
) -> str:
    loc = tuple(error["loc"])
    key_path = format_key_path(loc) if loc else "(top level)"
    blamed = [assignment for target, assignment in overridden.items() if loc[: len(target)] == target]
    if blamed:
        where = f"command-line override {blamed[-1]!r} (recipe {source})"
    else:
        where = f"{source}:{line}" if (line := _line_of(text, loc)) else source
    kind = error["type"]
    if kind == "extra_forbidden":
        parent_model = _model_at(loc[:-1])
        allowed = sorted(parent_model.model_fields) if parent_model else []
        hint = did_you_mean(str(loc[-1]), allowed)
        listing = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key '{key_path}'{hint}{listing}"
    if kind == "missing":
        return f"{where}: missing required key '{key_path}'{_field_help(loc)}"
    value = error.get("input")
    message = error["msg"]
    shown = "" if isinstance(value, dict | list) else f" = {value!r}"
    return f"{where}: {key_path}{shown}: {message}{_field_help(loc)}"


def _field_help(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not loc or loc[-1] not in model.model_fields:
        return ""
    description = model.model_fields[str(loc[-1])].description
    return f" ({description})" if description else ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class at a location path inside `Recipe` (None if it is not a model)."""
    model: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _line_of(text: str | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node found along `loc` (None when unknown or not from a file)."""
    if not text:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
