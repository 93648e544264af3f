"""Python rewards named `module:function` (or `path/to/file.py:function`), in two forms.

**Per-sample** (the default): `fn(completion, reference_answer, **extra) -> float | dict`. Keyword arguments
are the sample's extra dataset fields (e.g. `task`, `metadata`) that the function declares, or all of them
when it takes `**kwargs`. A dict return is `{"score" | "aggregate_reward_score": x, "metrics_list"?: [...]}`.

**Batch** (Lambda style): `fn(samples) -> list[{id, aggregate_reward_score, metrics_list?}]`, taking the
contract's list of payload dicts — the same function you would deploy as the reward Lambda. A function is
batch when it has an attribute `batch = True`, or (without that attribute) when its first parameter is
named `samples`, `event`, `payloads` or `batch`; a second parameter (`context`) gets None. A batch reply is
checked like an endpoint's (`tunesmith.rewards.contract.check_reply`), without retries.

An exception fails the sample (per-sample) or the whole batch (batch) with fault `exception`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.rewards.base import RewardSample, finite_number
from tunesmith.rewards.contract import check_metrics
from tunesmith.rewards.verifiers import PerSampleReward

BATCH_PARAMETERS = ("samples", "event", "payloads", "batch")


def import_callable(spec: str, base_dir: Path | None = None) -> Callable:
    """`module:function` / `file.py:function` -> the callable; one-line UserError when it cannot be had.
    `base_dir` (the recipe's folder, or the current one for `reward serve`) is searched first."""
    module_name, _, attribute = spec.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise UserError(f"reward {spec!r}: no file {path} — check the path (relative to the recipe)")
        unique = f"_tunesmith_reward_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(unique, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[unique]
            raise UserError(
                f"reward {spec!r}: importing {path} failed ({type(err).__name__}: {err}) — fix it"
            ) from None
    else:
        if base_dir is not None and str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise UserError(
                f"reward {spec!r}: cannot import module {module_name!r} ({err}) — check the name and PYTHONPATH"
            ) from None
        except Exception as err:
            raise UserError(
                f"reward {spec!r}: importing {module_name} failed ({type(err).__name__}: {err}) — fix the module"
            ) from None
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise UserError(f"reward {spec!r}: {module_name} has no callable {attribute!r} — check the name")
    return fn


def is_batch_function(fn: Callable) -> bool:
    """The detection rule of the module docstring."""
    flag = getattr(fn, "batch", None)
    if isinstance(flag, bool):
        return flag
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0].name in BATCH_PARAMETERS


def batch_arity(fn: Callable) -> int:
    """1 for `fn(samples)`, 2 for `fn(event, context)`."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 1
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is inspect.Parameter.empty
    ]
    return 2 if len(positional) >= 2 else 1


class PerSampleCallable(PerSampleReward):
    """A per-sample Python function as a reward."""

    def __init__(self, fn: Callable, **kw: Any):
        super().__init__(**kw)
        self.fn = fn
        try:
            parameters = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            parameters = {}
        self.takes_all = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        positional = [
            n for n, p in parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self.keywords = {
            name for name, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        } - {"completion", "reference_answer", *positional[:2]}
        self.reserved = {"completion", "reference_answer", *positional[:2]}

    def verify(self, sample: RewardSample) -> float | tuple[float, list[dict]]:
        extra = {
            k: v
            for k, v in sample.extra.items()
            if (k in self.keywords) or (self.takes_all and k not in self.reserved)
        }
        value = self.fn(sample.completion, sample.reference_answer, **extra)
        if isinstance(value, dict):
            raw = value.get("aggregate_reward_score", value.get("score"))
            metrics = check_metrics(value.get("metrics_list"))
            if metrics is None:
                raise TypeError("metrics_list must be a list of {name, value, type: Reward|Metric}")
        else:
            raw, metrics = value, []
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError(
                f"the reward returned {type(raw).__name__}, expected a number or a dict with 'score'"
            )
        score = finite_number(raw)
        return (float(raw) if score is None else score), metrics


class BatchCallableTransport:
    """A batch Python function behind the endpoint client (no network, no retries)."""

    retry_reply_faults = False

    def __init__(self, fn: Callable, label: str):
        self.fn = fn
        self.endpoint = label
        self.arity = batch_arity(fn)

    def send(self, payloads: list[dict], timeout_s: float) -> Any:
        from tunesmith.rewards.client import TransportFault

        try:
            return self.fn(payloads, None) if self.arity == 2 else self.fn(payloads)
        except Exception as err:
            raise TransportFault("exception", f"{type(err).__name__}: {err}", retryable=False) from None

    def close(self) -> None:
        pass
