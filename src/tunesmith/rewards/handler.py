"""Deploy any reward as an AWS Lambda: `make_lambda_handler(spec)` returns `handler(event, context)`.

    # lambda_function.py (package tunesmith and your reward module with it)
    from tunesmith.rewards.handler import make_lambda_handler
    lambda_handler = make_lambda_handler("my_rewards:score")

The event is the contract's request: a list of `{id, messages, reference_answer?, ...}` (or an API Gateway
style `{"body": "<json list>"}`); the return value is the contract's reply list. The reward is built once,
at cold start, with the failure policy off (the caller's client judges failures). A sample the reward could
not score comes back with score 0.0 ([nova-reward-functions]'s rule) and a `fault` key. A malformed event raises
`RequestError`, which the caller sees as a Lambda FunctionError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.rewards.base import RewardFunction
from tunesmith.rewards.config import RewardSpec
from tunesmith.rewards.contract import score_payloads


def make_lambda_handler(
    spec: str | dict | RewardSpec | RewardFunction, *, base_dir: Path | None = None
) -> Callable[[Any, Any], list[dict]]:
    """A Lambda handler scoring contract requests with the reward `spec` names."""
    from tunesmith.rewards.loading import load_reward

    reward = load_reward(spec, base_dir=base_dir, policy=False)

    def handler(event: Any, context: Any = None) -> list[dict]:
        return score_payloads(reward, event)

    handler.reward = reward  # type: ignore[attr-defined]
    return handler
