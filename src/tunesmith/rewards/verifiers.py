"""Built-in verifiers (scored in-process, per sample) and the weighted combination of rewards.

- `exact_match`, `normalized_match`: the evaluation suite's scorers (`tunesmith.matching`), so a reward
  and the domain suite report the same number.
- `numeric`: the last number of the completion equals the reference's number within `tolerance`
  (absolute) or `relative_tolerance`; numbers may carry a sign, decimals, an exponent and thousands commas.
- `regex`: the completion (stripped) fully matches `pattern` (or contains a match with `full_match: false`);
  without `pattern`, the sample's reference answer is the pattern.
- `json_schema`: the completion (or its first ``` fenced block) parses as JSON and validates against the
  schema (the `jsonschema` library; the draft is taken from the schema's `$schema`, default the latest).
- `brindle`: the demo domain's verifier (`tunesmith.data.domain.reward`).

Reference answers. A string is used as is; a number as its text (`numeric` uses it as a number); a list is
a set of acceptable answers (the best score wins); a dict — like the contract's example
`{"compliant": "No", "explanation": "..."}` — is reduced to one field: `reference_key` when set, else the
first of `answer`, `value`, `label`, `text` present, else its first field (`"No"` in the example). A sample
without a reference (or without `reference_key`) fails with fault `missing_reference`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith import matching
from tunesmith.bounded import LimitError, load_yaml, loads, read_text_bounded
from tunesmith.errors import UserError
from tunesmith.rewards.base import RewardFunction, RewardResult, RewardSample, failed_result

ANSWER_KEYS = ("answer", "value", "label", "text")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FENCED = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


class MissingReference(ValueError):
    """The sample has no reference answer the verifier can use."""


def reference_values(reference: Any, key: str | None = None) -> list[Any]:
    """The acceptable answers of a reference (see the module docstring), as str / int / float values."""
    if reference is None:
        raise MissingReference("no reference_answer")
    if isinstance(reference, (list, tuple)):
        values = [v for item in reference for v in reference_values(item, key)]
        if not values:
            raise MissingReference("empty reference_answer list")
        return values
    if isinstance(reference, dict):
        if key is not None:
            if key not in reference:
                raise MissingReference(f"reference_answer has no field {key!r}")
            return reference_values(reference[key])
        for candidate in ANSWER_KEYS:
            if candidate in reference:
                return reference_values(reference[candidate])
        if not reference:
            raise MissingReference("empty reference_answer object")
        return reference_values(next(iter(reference.values())))
    if isinstance(reference, bool):
        return [str(reference).lower()]
    return [reference]


def reference_texts(reference: Any, key: str | None = None) -> list[str]:
    return [v if isinstance(v, str) else _number_text(v) for v in reference_values(reference, key)]


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands commas allowed), or None."""
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


class PerSampleReward(RewardFunction):
    """A reward computed sample by sample in-process: subclasses implement `verify`."""

    def verify(self, sample: RewardSample) -> float | tuple[float, list[dict]]:
        raise NotImplementedError

    def _score(self, samples: list[RewardSample]) -> list[RewardResult]:
        results: list[RewardResult] = []
        faults: dict[str, list[str]] = {}
        for sample in samples:
            try:
                value = self.verify(sample)
            except MissingReference as err:
                faults.setdefault("missing_reference", []).append(f"sample {sample.id}: {err}")
                results.append(failed_result(sample.id, "missing_reference"))
                continue
            except Exception as err:  # the verifier's own bug or odd input: fail this sample only
                faults.setdefault("exception", []).append(f"sample {sample.id}: {type(err).__name__}: {err}")
                results.append(failed_result(sample.id, "exception"))
                continue
            score, metrics = value if isinstance(value, tuple) else (value, [])
            if not math.isfinite(score):
                faults.setdefault("non_finite_score", []).append(f"sample {sample.id}: score {score}")
                results.append(failed_result(sample.id, "non_finite_score"))
                continue
            results.append(RewardResult(id=sample.id, score=float(score), metrics=metrics))
        for kind, details in faults.items():
            self.fault(kind, samples=len(details), detail=details[0])
        return results


class TextMatch(PerSampleReward):
    """`scorer(completion, reference) -> float`, best over the acceptable answers."""

    def __init__(self, scorer: Callable[[str, str], float], *, reference_key: str | None = None, **kw: Any):
        super().__init__(**kw)
        self.scorer = scorer
        self.reference_key = reference_key

    def verify(self, sample: RewardSample) -> float:
        completion = sample.completion
        return max(
            float(self.scorer(completion, ref))
            for ref in reference_texts(sample.reference_answer, self.reference_key)
        )


class Numeric(PerSampleReward):
    """1.0 when the completion's last number equals the reference's number within the tolerances."""

    def __init__(
        self,
        *,
        tolerance: float = 0.0,
        relative_tolerance: float = 0.0,
        reference_key: str | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.tolerance = tolerance
        self.relative_tolerance = relative_tolerance
        self.reference_key = reference_key

    def verify(self, sample: RewardSample) -> float:
        wanted = []
        for value in reference_values(sample.reference_answer, self.reference_key):
            number = float(value) if isinstance(value, (int, float)) else last_number(str(value))
            if number is not None:
                wanted.append(number)
        if not wanted:
            raise MissingReference("the reference answer has no number")
        got = last_number(sample.completion)
        if got is None:
            return 0.0
        return float(
            any(math.isclose(got, w, rel_tol=self.relative_tolerance, abs_tol=self.tolerance) for w in wanted)
        )


class Regex(PerSampleReward):
    """1.0 when the completion matches `pattern` (or, without one, the reference used as a pattern)."""

    def __init__(
        self,
        *,
        pattern: str | None = None,
        full_match: bool = True,
        reference_key: str | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.full_match = full_match
        self.reference_key = reference_key
        self.pattern = None
        if pattern is not None:
            try:
                self.pattern = re.compile(pattern)
            except re.error as err:
                raise UserError(
                    f"reward {self.name}: invalid regex pattern {pattern!r} ({err}) — fix `pattern`"
                ) from None

    def verify(self, sample: RewardSample) -> float:
        text = sample.completion.strip()
        if self.pattern is not None:
            patterns = [self.pattern]
        else:
            patterns = [re.compile(p) for p in reference_texts(sample.reference_answer, self.reference_key)]
        match = (lambda p: p.fullmatch(text)) if self.full_match else (lambda p: p.search(text))
        return float(any(match(p) is not None for p in patterns))


def parse_json_answer(text: str) -> tuple[bool, Any]:
    """`(True, value)` when the text, or its first ``` fenced block, is JSON; else `(False, None)`."""
    candidates = [text.strip()]
    fenced = _FENCED.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    for candidate in candidates:
        try:
            return True, loads(candidate)
        except ValueError:  # not JSON, or past the depth / number-size limits
            continue
    return False, None


def load_schema(schema: dict | str, base_dir: Path | None) -> dict:
    if isinstance(schema, dict):
        return schema
    path = Path(schema).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        text = read_text_bounded(path)
        loaded = load_yaml(text) if path.suffix in (".yaml", ".yml") else loads(text)
    except LimitError as err:
        where = f"{path}:{err.line}" if err.line else str(path)
        raise UserError(f"reward json_schema: cannot read schema {where}: {err} — {err.fix}") from None
    except Exception as err:  # invalid JSON (ValueError) or YAML (yaml.YAMLError)
        raise UserError(
            f"reward json_schema: {path} cannot be parsed ({' '.join(str(err).split())}) — fix the schema file"
        ) from None
    if not isinstance(loaded, dict):
        raise UserError(f"reward json_schema: {path} must hold a JSON Schema object")
    return loaded


class JsonSchema(PerSampleReward):
    """1.0 when the completion is JSON that validates against the schema; metric `valid_json` says whether
    it parsed at all."""

    def __init__(self, *, schema: dict | str, base_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        try:
            import jsonschema
        except ImportError:
            raise UserError(
                "reward json_schema needs the jsonschema package — pip install 'jsonschema>=4'"
            ) from None
        self.schema = load_schema(schema, base_dir)
        cls = jsonschema.validators.validator_for(self.schema)
        try:
            cls.check_schema(self.schema)
        except jsonschema.SchemaError as err:
            raise UserError(
                f"reward json_schema: the schema is invalid ({err.message}) — fix `schema`"
            ) from None
        self.validator = cls(self.schema)

    def verify(self, sample: RewardSample) -> tuple[float, list[dict]]:
        parsed, value = parse_json_answer(sample.completion)
        valid = parsed and self.validator.is_valid(value)
        return float(valid), [{"name": "valid_json", "value": float(parsed), "type": "Metric"}]


class Brindle(PerSampleReward):
    """The demo domain's verifier: exact 1.0, partial credit up to 0.5 (`tunesmith.data.domain.reward`)."""

    def __init__(self, *, reference_key: str | None = None, **kw: Any):
        super().__init__(**kw)
        from tunesmith.data.domain import reward

        self.reward = reward
        self.reference_key = reference_key

    def verify(self, sample: RewardSample) -> float:
        completion = sample.completion
        return max(
            self.reward(completion, ref)
            for ref in reference_texts(sample.reference_answer, self.reference_key)
        )


def text_scorer(name: str) -> Callable[[str, str], float]:
    """The evaluation suite's scorer of that name."""
    return {"exact_match": matching.exact_match, "normalized_match": matching.normalized_match}[name]


class Weighted(RewardFunction):
    """score = sum(weight * component score) / sum(weight); metrics_list carries each component's score
    (type "Reward") and its own metrics as `component/metric`. A sample fails when any component failed it
    (with that component's fault): a partial sum would silently lower its reward."""

    def __init__(self, components: list[tuple[str, float, RewardFunction]], **kw: Any):
        super().__init__(**kw)
        labels = [label for label, _, _ in components]
        self.components = [
            (label if labels.count(label) == 1 else f"{label}#{i}", weight, fn)
            for i, (label, weight, fn) in enumerate(components)
        ]
        self.total_weight = sum(weight for _, weight, _ in components)
        assert self.total_weight > 0

    def _score(self, samples: list[RewardSample]) -> list[RewardResult]:
        per_component = [(label, weight, fn.score(samples)) for label, weight, fn in self.components]
        results = []
        for i, sample in enumerate(samples):
            failed = next((rs[i] for _, _, rs in per_component if rs[i].failed), None)
            if failed is not None:
                results.append(failed_result(sample.id, failed.fault or "exception"))
                continue
            total = sum(weight * rs[i].score for _, weight, rs in per_component)
            metrics = []
            for label, _, rs in per_component:
                metrics.append({"name": label, "value": rs[i].score, "type": "Reward"})
                metrics.extend({**m, "name": f"{label}/{m['name']}"} for m in rs[i].metrics)
            results.append(RewardResult(id=sample.id, score=total / self.total_weight, metrics=metrics))
        return results

    def close(self) -> None:
        for _, _, fn in self.components:
            fn.close()
