"""A sweep's search space: recipe key -> candidate values, parsed and validated before any training.

The YAML maps recipe key paths (the same paths `tunesmith plan KEY=VALUE` overrides take) to one of:

```yaml
stages[0].data_mixing.customer_percent: [90, 75, 50, 25]        # a list of values
stages[0].hyperparameters.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a range (float; `int: true`)
stages[0].hyperparameters.lr: {multipliers: [0.5, 1, 2]}       # x the recipe's resolved value
stages[0].hyperparameters.lora.alpha: {values: [8, 16, 32], when: {stages[0].mode: lora}}
```

`when` makes a key conditional: it is sampled only when every named key has that value (the named key is
another space key, or the recipe's own value when the space does not vary it). Every candidate value is
checked against the recipe schema (unknown key, wrong type, out of bounds) by applying it as an override,
so a malformed space fails with one line that names the key, before the first trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import RecipeError, UserError

RANGE_KEYS = {"low", "high", "log", "int", "when"}
LIST_KEYS = {"values", "when"}
MULTIPLIER_KEYS = {"multipliers", "when"}
SCALAR = (bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One searched recipe key: `values` (a list) or a range `low`..`high` (`log`, `integer`)."""

    key: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    when: tuple[tuple[str, Any], ...] = ()

    @property
    def is_range(self) -> bool:
        return self.values is None

    def candidates(self) -> tuple[Any, ...]:
        """The values checked against the schema: every listed value, or both ends of a range."""
        return self.values if self.values is not None else (self.low, self.high)

    def describe(self) -> str:
        if self.values is not None:
            return f"{self.key} in {list(self.values)}"
        return f"{self.key} in [{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


@dataclass
class Space:
    params: list[Param] = field(default_factory=list)
    source: str = "<space>"

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def is_finite(self) -> bool:
        return all(not p.is_range for p in self.params)

    def merged(self, other: Space) -> Space:
        """Compose two spaces (presets): a key may appear in one only."""
        clash = sorted(set(self.keys) & set(other.keys))
        if clash:
            raise UserError(
                f"{other.source}: key {clash[0]!r} is also searched by {self.source} — drop it from one of them"
            )
        return Space([*self.params, *other.params], f"{self.source} + {other.source}")


def _fail(source: str, key: str, problem: str) -> UserError:
    return UserError(f"{source}: key {key!r}: {problem}")


def _check_scalar(source: str, key: str, value: Any) -> Any:
    if not isinstance(value, SCALAR):
        raise _fail(
            source, key, f"value {value!r} is a {type(value).__name__} — use numbers, strings or booleans"
        )
    return value


def _number(source: str, key: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, key, f"{name} {value!r} is not a number — write e.g. {name}: 1.0e-4")
    return float(value)


def _parse_when(source: str, key: str, raw: Any) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(source, key, "'when' must map other keys to a value, e.g. when: {stages[0].mode: lora}")
    return tuple((str(k), _check_scalar(source, key, v)) for k, v in raw.items())


def parse_param(source: str, key: str, raw: Any, base_value: Callable[[str], Any] | None = None) -> Param:
    """One entry of a space file. `base_value(key)` is the recipe's resolved value (for `multipliers`)."""
    if isinstance(raw, list):
        raw = {"values": raw}
    if not isinstance(raw, Mapping):
        raise _fail(
            source,
            key,
            f"{raw!r} is neither a list of values nor a range — write [a, b] or {{low: a, high: b}}",
        )
    given = set(raw)
    when = _parse_when(source, key, raw.get("when"))
    if "multipliers" in given:
        unknown = given - MULTIPLIER_KEYS
        if unknown:
            raise _fail(source, key, f"unknown field {sorted(unknown)[0]!r} next to 'multipliers'")
        factors = raw["multipliers"]
        if not isinstance(factors, list) or not factors:
            raise _fail(source, key, "'multipliers' is empty — list at least one factor, e.g. [0.5, 1, 2]")
        factors = [_number(source, key, "multiplier", f) for f in factors]
        assert base_value is not None, "multipliers need the recipe's resolved values"
        base = base_value(key)
        if isinstance(base, bool) or not isinstance(base, (int, float)):
            raise _fail(source, key, f"'multipliers' need a numeric recipe value; the recipe has {base!r}")
        values = [type(base)(base * f) if isinstance(base, int) else base * f for f in factors]
        return Param(key, values=tuple(dict.fromkeys(values)), when=when)
    if "values" in given:
        unknown = given - LIST_KEYS
        if unknown:
            raise _fail(source, key, f"unknown field {sorted(unknown)[0]!r} next to 'values'")
        values = raw["values"]
        if not isinstance(values, list) or not values:
            raise _fail(source, key, "the list of values is empty — give at least one value")
        values = [_check_scalar(source, key, v) for v in values]
        if len(set(map(repr, values))) != len(values):
            raise _fail(source, key, f"the list {values} repeats a value — list each value once")
        return Param(key, values=tuple(values), when=when)
    unknown = given - RANGE_KEYS
    if unknown or not {"low", "high"} <= given:
        extra = f"unknown field {sorted(unknown)[0]!r}" if unknown else "a range needs both 'low' and 'high'"
        raise _fail(
            source,
            key,
            f"{extra} — write a list [a, b], {{low: a, high: b, log: true}} or {{multipliers: [...]}}",
        )
    low = _number(source, key, "low", raw["low"])
    high = _number(source, key, "high", raw["high"])
    if low > high:
        raise _fail(source, key, f"range low {low:g} > high {high:g} — swap them")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise _fail(source, key, f"a log range needs low > 0 (got {low:g})")
    integer = bool(raw.get("int", False))
    if integer:
        low, high = float(math.ceil(low)), float(math.floor(high))
    return Param(key, low=low, high=high, log=log, integer=integer, when=when)


def parse_space(data: Any, source: str = "<space>", base_value: Callable[[str], Any] | None = None) -> Space:
    if not isinstance(data, Mapping) or not data:
        raise UserError(
            f"{source}: a space maps recipe keys to values or ranges, e.g. stages[0].hyperparameters.lr: [1.0e-4, 3.0e-4]"
        )
    params = [parse_param(source, str(key), raw, base_value) for key, raw in data.items()]
    space = Space(params, source)
    for param in params:
        for other, _ in param.when:
            if other == param.key:
                raise _fail(source, param.key, "'when' names the key itself")
    return space


def load_space(path: str | Path, base_value: Callable[[str], Any] | None = None) -> Space:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: space file not found — pass --space SPACE.yaml or --preset NAME") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML — fix the syntax of the space file") from None
    return parse_space(data, str(path), base_value)


# --- against the recipe --------------------------------------------------------------------------------
def value_at(tree: Any, key: str) -> Any:
    """The value at a recipe key path in a plain tree (a list index may be a stage name); None if absent."""
    from tunesmith.recipe.loading import parse_key_path

    node = tree
    for part in parse_key_path(key):
        if isinstance(node, list) and isinstance(part, str):
            named = [s for s in node if isinstance(s, dict) and part in (s.get("name"), s.get("technique"))]
            node = named[0] if named else None
        elif isinstance(node, list):
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def override(key: str, value: Any) -> str:
    """`key=value` as `tunesmith plan` overrides take it (the value as YAML)."""
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def validate_against(space: Space, check: Callable[[list[str]], Any]) -> None:
    """Apply every candidate value as an override (`check` loads and validates the recipe with it): the
    first schema error is re-raised naming the space key. Conditions are applied with their value."""
    for param in space.params:
        for value in param.candidates():
            conditions = [override(k, v) for k, v in param.when]
            try:
                check([*conditions, override(param.key, value)])
            except RecipeError as err:
                raise UserError(f"{space.source}: key {param.key!r} = {value!r}: {err}") from None


# --- configurations ------------------------------------------------------------------------------------
def active(param: Param, config: Mapping[str, Any], base_value: Callable[[str], Any]) -> bool:
    """Is `param` searched under `config` (the values chosen so far; others read from the recipe)?"""
    return all((config[k] if k in config else base_value(k)) == value for k, value in param.when)


def grid(space: Space, base_value: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Every configuration of a finite space (conditional keys only where active), in a stable order."""
    if not space.is_finite():
        ranged = next(p.key for p in space.params if p.is_range)
        raise UserError(f"{space.source}: key {ranged!r} is a range — a grid needs lists (or use --trials N)")
    configs: list[dict[str, Any]] = [{}]
    for param in _ordered(space):
        expanded: list[dict[str, Any]] = []
        for config in configs:
            if active(param, config, base_value):
                expanded += [{**config, param.key: v} for v in param.values or ()]
            else:
                expanded.append(config)
        configs = expanded
    unique = {tuple(sorted((k, repr(v)) for k, v in c.items())): c for c in configs}
    return list(unique.values())


def _ordered(space: Space) -> list[Param]:
    """Keys a condition depends on come before the keys that depend on them."""
    done: list[Param] = []
    pending = list(space.params)
    while pending:
        for param in pending:
            if all(k not in {p.key for p in pending} for k, _ in param.when):
                done.append(param)
                pending.remove(param)
                break
        else:
            raise UserError(f"{space.source}: the 'when' conditions of {pending[0].key!r} form a cycle")
    return done


def sample(space: Space, suggest: Callable[[Param], Any], base_value: Callable[[str], Any]) -> dict[str, Any]:
    """One configuration, each active key drawn by `suggest` (an Optuna trial's suggest_* call)."""
    config: dict[str, Any] = {}
    for param in _ordered(space):
        if active(param, config, base_value):
            config[param.key] = suggest(param)
    return config


def suggest(trial: Any, param: Param) -> Any:
    """Draw `param` through an Optuna trial (a queued or retried trial returns its fixed value)."""
    if param.values is not None:
        return trial.suggest_categorical(param.key, list(param.values))
    if param.integer:
        return trial.suggest_int(param.key, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, log=param.log)


def config_label(config: Mapping[str, Any]) -> str:
    """`lr=0.001 customer_percent=50`: the last segment of each key (the full key when ambiguous)."""
    shorts = [k.rsplit(".", 1)[-1] for k in config]
    names = [s if shorts.count(s) == 1 else k for s, k in zip(shorts, config, strict=True)]
    return " ".join(f"{n}={_fmt(v)}" for n, v in zip(names, config.values(), strict=True))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
