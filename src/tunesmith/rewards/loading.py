"""`load_reward`: a reward spec (string, mapping or `RewardSpec`) -> a ready `RewardFunction`."""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
from pathlib import Path
from typing import Any

from tunesmith.bounded import read_text_bounded
from tunesmith.errors import UserError
from tunesmith.rewards.base import EventSink, RewardFunction
from tunesmith.rewards.config import RewardSpec, parse_reward_spec


def load_reward(
    spec: str | dict | RewardSpec | RewardFunction,
    *,
    on_event: EventSink | None = None,
    base_dir: Path | None = None,
    lambda_client: Any = None,
    policy: bool = True,
) -> RewardFunction:
    """Build the reward a spec names.

    `on_event` receives one dict per fault and per failure-policy decision; `base_dir` resolves relative
    paths (`file.py:function`, a `schema` file) and is searched first for `module:function`;
    `lambda_client` replaces boto3's client for Lambda ARNs (anything with `.invoke(FunctionName, Payload)`);
    `policy=False` never stops (a server scores what it is sent; components leave it to their combination).
    A RewardFunction passes through unchanged.
    """
    if isinstance(spec, RewardFunction):
        return spec
    spec = parse_reward_spec(spec)
    common = _common(spec, on_event, policy)
    kind, target = spec.kind, spec.target
    if kind == "weighted":
        from tunesmith.rewards.verifiers import Weighted

        assert spec.components is not None
        components = [
            (
                c.label,
                c.weight,
                load_reward(
                    c, on_event=on_event, base_dir=base_dir, lambda_client=lambda_client, policy=False
                ),
            )
            for c in spec.components
        ]
        return Weighted(components, **common)
    if kind == "builtin":
        return _builtin(target, spec, base_dir, common)
    if kind == "module":
        from tunesmith.rewards.callables import (
            BatchCallableTransport,
            PerSampleCallable,
            import_callable,
            is_batch_function,
        )

        fn = import_callable(target, base_dir)
        if is_batch_function(fn):
            from tunesmith.rewards.client import EndpointReward

            transport = BatchCallableTransport(fn, target)
            return EndpointReward(transport, concurrency=1, batch_size=spec.batch_size, retries=0, **common)
        return PerSampleCallable(fn, **common)
    from tunesmith.rewards.client import EndpointReward, HttpTransport, LambdaTransport

    endpoint = {
        "timeout_s": spec.timeout_s,
        "concurrency": spec.concurrency,
        "batch_size": spec.batch_size,
        "retries": spec.retries,
        "backoff_s": spec.backoff_s,
    }
    if kind == "http":
        token = None
        if spec.bearer_token_env:
            token = os.environ.get(spec.bearer_token_env)
            if not token:
                raise UserError(
                    f"reward {target}: bearer_token_env {spec.bearer_token_env} is not set — "
                    f"export {spec.bearer_token_env}=<the server's token>"
                )
        return EndpointReward(HttpTransport(target, token=token), **endpoint, **common)
    assert kind == "lambda", kind
    transport = LambdaTransport(
        target, client=lambda_client, timeout_s=spec.timeout_s, concurrency=spec.concurrency
    )
    return EndpointReward(transport, **endpoint, **common)


def check_reward(
    spec: str | dict | RewardSpec, *, base_dir: Path | None = None, where: str = "reward"
) -> RewardSpec:
    """What can be known about a reward before training, without calling it or importing user code: the
    spec parses (a name gets a did-you-mean, a URL needs a host, an ARN its parts), a built-in verifier builds
    (its pattern compiles, its schema file reads and is a valid schema), a `file.py:function` file exists and
    a `module:function` module can be found. Raises a one-line `UserError` naming `where`."""
    parsed = parse_reward_spec(spec, where=where)
    for index, component in enumerate(parsed.components or []):
        check_reward(component, base_dir=base_dir, where=f"{where}.components[{index}]")
    kind, target = parsed.kind, parsed.target
    if kind == "builtin":
        try:
            _builtin(target, parsed, base_dir, _common(parsed, None, False))
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
    elif kind == "module":
        module, _, _ = target.rpartition(":")
        if module.endswith(".py"):
            path = Path(module).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if not path.is_file():
                raise UserError(
                    f"{where}: {target!r}: no file {path} — check the path (relative to the recipe's folder)"
                )
            function = target.rpartition(":")[2]
            if not _may_define(path, function):
                raise UserError(
                    f"{where}: {target!r}: {path} defines no top-level {function!r} — check the function name"
                )
        elif not _module_exists(module.split(".")[0], base_dir):
            raise UserError(
                f"{where}: {target!r}: no module {module.split('.')[0]!r} on the Python path or in the "
                "recipe's folder — check the name (or use path/file.py:function)"
            )
    return parsed


def _may_define(path: Path, name: str) -> bool:
    """Whether the Python file at `path` may define the top-level `name`, read with `ast` (nothing of it runs):
    a def, class, assignment or import of that name, or a star import (which could bring it). A file that
    cannot be parsed is left to the reward's loader, which reports it with its line."""
    try:
        tree = ast.parse(read_text_bounded(path), filename=str(path))
    except (OSError, ValueError, SyntaxError):
        return True
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            alias.name == "*" or (alias.asname or alias.name) == name for alias in node.names
        ):
            return True
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
        if isinstance(node, ast.If | ast.Try):  # definitions under `if`/`try`: do not guess
            return True
    return False


def _module_exists(name: str, base_dir: Path | None) -> bool:
    """Whether a top-level module can be imported (found, not imported: nothing of it runs)."""
    if name in sys.modules or name in sys.builtin_module_names:
        return True
    search = ([str(base_dir)] if base_dir is not None else []) + sys.path
    return importlib.machinery.PathFinder.find_spec(name, search) is not None


def _common(spec: RewardSpec, on_event: EventSink | None, policy: bool) -> dict[str, Any]:
    """The settings every reward takes from its spec."""
    return {
        "name": spec.label,
        "on_event": on_event,
        "clamp": spec.clamp,
        "max_failure_rate": spec.max_failure_rate,
        "min_samples_for_policy": spec.min_samples_for_policy,
        "policy": policy,
    }


def _builtin(name: str, spec: RewardSpec, base_dir: Path | None, common: dict[str, Any]) -> RewardFunction:
    from tunesmith.rewards import verifiers

    if name in ("exact_match", "normalized_match"):
        return verifiers.TextMatch(verifiers.text_scorer(name), reference_key=spec.reference_key, **common)
    if name == "numeric":
        return verifiers.Numeric(
            tolerance=spec.tolerance or 0.0,
            relative_tolerance=spec.relative_tolerance or 0.0,
            reference_key=spec.reference_key,
            **common,
        )
    if name == "regex":
        full_match = True if spec.full_match is None else spec.full_match
        return verifiers.Regex(
            pattern=spec.pattern, full_match=full_match, reference_key=spec.reference_key, **common
        )
    if name == "json_schema":
        assert spec.json_schema is not None
        return verifiers.JsonSchema(schema=spec.json_schema, base_dir=base_dir, **common)
    assert name == "brindle", name
    return verifiers.Brindle(reference_key=spec.reference_key, **common)
