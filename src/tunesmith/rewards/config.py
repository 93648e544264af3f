"""`RewardSpec`: what to score with and how to talk to it — the recipe's `stages[].rft.reward`.

A plain string is a spec with only `function` set (`reward: exact_match` == `reward: {function:
exact_match}`). Strict like every recipe node (unknown keys are errors); it cannot subclass
`tunesmith.recipe.schema.Strict` because the recipe schema imports this module, so it repeats its config.

Endpoint defaults come from the managed service's reward-Lambda documentation
([nova-reward-functions]): a 60 s timeout and 3 retries with exponential
backoff 1 s / 2 s / 4 s (its LLM-judge example), 0.0 for a failed sample, clamping to [0, 1] (opt-in here,
since the contract also allows "task-defined" ranges), and `lambda_concurrency_limit` 12 (SMTJ). The batch
size per call is not documented; the failure policy is ours.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlparse

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tunesmith.errors import UserError
from tunesmith.suggest import did_you_mean

BUILTINS: tuple[str, ...] = ("exact_match", "normalized_match", "numeric", "regex", "json_schema", "brindle")
"""Built-in verifiers (`name` or `builtin:name`; the demo domain's is usually written `builtin:brindle`)."""

TEXT_VERIFIERS = ("exact_match", "normalized_match", "numeric", "regex", "brindle")
"""Built-ins that compare the completion with the reference answer (and so use `reference_key`)."""

Kind = Literal["builtin", "module", "http", "lambda", "weighted"]

_LAMBDA_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Rate = Annotated[float, Field(ge=0, le=1)]


def _scalar_types(annotation: Any) -> set[Any]:
    """The plain types a field annotation admits (`Annotated` and unions unwrapped); `object` stands for
    anything else (literals, lists, mappings, models), which pydantic checks exactly already."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_scalar_types(arg) for arg in get_args(annotation)))
    if annotation in (bool, int, float, str, type(None)):
        return {annotation}
    return {object}


def coercion_problem(annotation: Any, value: Any) -> str | None:
    """Why `value` would only fit the field by a silent conversion that pydantic's lax mode makes (`true`
    -> 1.0 for a number, `1` or `"yes"` -> true for a flag), else None. A string holding a number is still
    accepted for a number (YAML reads `1e-4` as a string)."""
    admitted = _scalar_types(annotation)
    if isinstance(value, bool):
        if bool not in admitted and admitted & {int, float}:
            return "expected a number, not a boolean (true/false)"
    elif value is not None and bool in admitted and not admitted & {int, float, str, object}:
        return f"expected true or false, not {type(value).__name__} {value!r}"
    return None


def refuse_coercion(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """The body of a strict model's `field_validator("*", mode="before")`: raises `ValueError` (pydantic
    names the field) for a value that `coercion_problem` finds."""
    field = model.model_fields.get(info.field_name or "")
    problem = coercion_problem(field.annotation, value) if field is not None else None
    if problem:
        raise ValueError(problem)
    return value


def classify(function: str) -> tuple[Kind, str]:
    """`(kind, target)` of a reward function string; raises ValueError naming the accepted forms."""
    if function.startswith(("http://", "https://")):
        url = urlparse(function)
        if not url.netloc:
            raise ValueError(f"{function!r} is not a valid URL (expected e.g. http://127.0.0.1:8080/)")
        return "http", function
    if function.startswith("arn:"):
        if not _LAMBDA_ARN.match(function):
            raise ValueError(
                f"{function!r} is not a Lambda function ARN "
                "(expected arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])"
            )
        return "lambda", function
    if function == "weighted":
        return "weighted", function
    name = function.removeprefix("builtin:")
    if name in BUILTINS:
        return "builtin", name
    if function.startswith("builtin:"):
        raise ValueError(
            f"unknown built-in verifier {name!r}{did_you_mean(name, BUILTINS)}; built-ins: {', '.join(BUILTINS)}"
        )
    module, sep, attribute = function.rpartition(":")
    if sep and module and (module.endswith(".py") or _MODULE.match(module)) and _IDENTIFIER.match(attribute):
        return "module", function
    raise ValueError(
        f"unknown reward {function!r}{did_you_mean(function, BUILTINS)}: use a built-in verifier "
        f"({', '.join(BUILTINS)}), module:function (or path/file.py:function), an http(s):// URL or a Lambda ARN"
    )


class RewardSpec(BaseModel):
    """A reward: one function (built-in verifier, Python callable, HTTP endpoint, Lambda) or a weighted
    combination of `components`, plus how to call it and when to give up on it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    function: str | None = Field(
        None,
        description="exact_match | normalized_match | numeric | regex | json_schema | builtin:brindle | "
        "module:function | path/file.py:function | http(s)://URL | arn:aws:lambda:... (omit with components)",
    )
    name: str | None = Field(None, description="label in metrics_list and messages (default: the function)")
    weight: Annotated[float, Field(ge=0)] = Field(
        1.0, description="weight of this component in a combination"
    )
    components: list[RewardSpec] | None = Field(
        None, description="weighted combination: score = sum(weight * score) / sum(weight)"
    )

    # --- verifier parameters ------------------------------------------------------------------------------
    tolerance: Annotated[float, Field(ge=0)] | None = Field(
        None, description="numeric: absolute tolerance (default 0: equal after parsing)"
    )
    relative_tolerance: Annotated[float, Field(ge=0)] | None = Field(
        None, description="numeric: relative tolerance, a share of the reference (default 0)"
    )
    pattern: str | None = Field(
        None, description="regex: Python regular expression (default: the sample's reference answer)"
    )
    full_match: bool | None = Field(
        None, description="regex: the whole (stripped) completion must match (default true); false = search"
    )
    json_schema: dict[str, Any] | str | None = Field(
        None,
        validation_alias=AliasChoices("schema", "json_schema"),
        serialization_alias="schema",
        description="json_schema: the JSON Schema, inline or a file path (relative to the recipe)",
    )
    reference_key: str | None = Field(
        None,
        description="text verifiers: field of a dict reference_answer holding the answer "
        "(default: answer, value, label or text, else the first field)",
    )

    # --- endpoint settings (http / Lambda) -------------------------------------------------------------------
    timeout_s: Annotated[float, Field(gt=0, le=900)] = Field(
        60.0,
        description="seconds per request; [nova-reward-functions]'s LLM-judge example uses 60 s (Lambda's maximum is 900 s)",
    )
    concurrency: Annotated[int, Field(ge=1, le=1024)] = Field(
        12,
        description="requests in flight at most; the managed service's SMTJ lambda_concurrency_limit is 12",
    )
    batch_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        16,
        description="samples per request (not documented by the service; small so a timeout fails few samples)",
    )
    retries: Annotated[int, Field(ge=0, le=10)] = Field(
        3,
        description="retries after a timeout / connection error / 5xx / bad reply ([nova-reward-functions]: 3)",
    )
    backoff_s: Annotated[float, Field(ge=0, le=60)] = Field(
        1.0,
        description="first retry delay in seconds, doubled each retry ([nova-reward-functions]: 1 s, 2 s, 4 s)",
    )
    bearer_token_env: str | None = Field(
        None, description="http: environment variable holding a bearer token for the Authorization header"
    )

    # --- policy -----------------------------------------------------------------------------------------------
    max_failure_rate: Rate = Field(
        0.1,
        description="share (0-1) of failed samples (scored 0) past which the stage stops (ours: 0.1); 1 = never",
    )
    min_samples_for_policy: Annotated[int, Field(ge=0)] = Field(
        32, description="samples scored before the failure policy judges (ours: two default batches)"
    )
    clamp: bool = Field(
        False,
        description="clamp scores to [0, 1] ([nova-reward-functions]'s judge example does; off: task-defined range)",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_coercion(cls, value, info)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"function": data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RewardSpec:
        if self.components is not None:
            if self.function not in (None, "weighted"):
                raise ValueError("set `function` or `components` (a weighted combination), not both")
            if not self.components:
                raise ValueError("`components` must list at least one reward")
            if sum(c.weight for c in self.components) <= 0:
                raise ValueError("the components' weights must not all be 0")
        elif self.function is None:
            raise ValueError("set `function` (e.g. exact_match, module:function or an endpoint URL)")
        kind, target = classify(self.function or "weighted")
        if kind == "weighted" and self.components is None:
            raise ValueError("`function: weighted` needs `components`")
        verifier = target if kind == "builtin" else None
        for field, applies in (
            ("tolerance", ("numeric",)),
            ("relative_tolerance", ("numeric",)),
            ("pattern", ("regex",)),
            ("full_match", ("regex",)),
            ("json_schema", ("json_schema",)),
            ("reference_key", TEXT_VERIFIERS),
        ):
            if getattr(self, field) is not None and verifier not in applies:
                key = "schema" if field == "json_schema" else field
                raise ValueError(
                    f"`{key}` applies to the {' / '.join(applies)} verifier(s), not to {self.function!r}"
                )
        if verifier == "json_schema" and self.json_schema is None:
            raise ValueError("the json_schema verifier needs `schema` (a JSON Schema object or a file path)")
        if self.bearer_token_env is not None:
            if kind != "http":
                raise ValueError("`bearer_token_env` applies to http(s) endpoints only")
            if not _ENV_NAME.match(self.bearer_token_env):
                raise ValueError(
                    f"bearer_token_env {self.bearer_token_env!r} is not an environment variable name"
                )
        return self

    @property
    def kind(self) -> Kind:
        return "weighted" if self.components is not None else classify(self.function or "")[0]

    @property
    def target(self) -> str:
        """The built-in's bare name, or the function string itself."""
        return "weighted" if self.components is not None else classify(self.function or "")[1]

    @property
    def label(self) -> str:
        """The name shown in metrics_list, events and messages."""
        if self.name:
            return self.name
        if self.components is not None:
            return "weighted"
        return self.function or "reward"


RewardSpec.model_rebuild()


def _one_line(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"] if p not in ("function-after[_consistent()]",))
        msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_reward_spec(value: str | dict | RewardSpec, *, where: str = "reward") -> RewardSpec:
    """A string / mapping / spec -> `RewardSpec`; invalid input -> one-line `UserError` naming `where`."""
    if isinstance(value, RewardSpec):
        return value
    if not isinstance(value, (str, dict)):
        raise UserError(f"{where}: expected a reward name/URL or a mapping, got {type(value).__name__}")
    try:
        return RewardSpec.model_validate(value)
    except ValidationError as err:
        raise UserError(f"{where}: {_one_line(err)}") from None
