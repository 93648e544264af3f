"""Rewards: built-in verifiers, Python callables, the HTTP / Lambda reward client, a reward server and a
Lambda handler — all speaking the managed service's reward contract
([nova-reward-functions]): a JSON list of `{id, messages, reference_answer?, ...}` in, `{id, aggregate_reward_score,
metrics_list?}` per sample out.

    reward = load_reward("numeric", on_event=events.append)       # or a RewardSpec / mapping
    results = reward.score([RewardSample(id="1", messages=[...], reference_answer="24")])

Layout: `base` (samples, results, counters, failure policy), `config` (RewardSpec), `contract` (the wire
format, both sides), `verifiers` (built-ins + weighted), `callables` (module:function), `client` (HTTP and
Lambda transports under one retrying client), `loading` (load_reward), `handler` (deploy as a Lambda),
`server` (`tunesmith reward serve`). No torch here (exact_match / normalized_match are
`tunesmith.matching`'s, shared with the evaluation suite).
"""

from tunesmith.rewards.base import (
    RewardFailureError,
    RewardFunction,
    RewardResult,
    RewardSample,
    RewardStats,
)
from tunesmith.rewards.config import RewardSpec, parse_reward_spec
from tunesmith.rewards.handler import make_lambda_handler
from tunesmith.rewards.loading import load_reward
from tunesmith.rewards.server import start_server

__all__ = [
    "RewardFailureError",
    "RewardFunction",
    "RewardResult",
    "RewardSample",
    "RewardSpec",
    "RewardStats",
    "load_reward",
    "make_lambda_handler",
    "parse_reward_spec",
    "start_server",
]
