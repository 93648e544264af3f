"""The readiness probe for multi-turn RFT: k episodes per task against the environment before training.

Like the managed service's `val_at_start` pass@k baseline ([nova-recipes], MTRL recipe), with the verdicts of
the single-turn probe (`evaluation.probe.summarize`: do SFT first below 5% positive episodes, saturated
above 95%, no signal when almost no task's k episodes differ). It adds pass@k (the share of tasks solved,
score 1, by at least one of their k episodes), the mean turns per episode, and the environment's faults,
judged by the reward failure policy (`rewards.environments.EnvironmentReward`): past `max_failure_rate` the
verdict is "reward_failed" with the policy's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunesmith.evaluation.probe import ProbeSettings, summarize
from tunesmith.rewards.base import RewardSample
from tunesmith.rewards.environments import (
    DEFAULT_MAX_TURNS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    Environment,
    EnvironmentReward,
    Policy,
    run_episode,
)

SOLVED = 1.0 - 1e-9


def probe_environment(
    factory: Callable[[], Environment],
    tasks: list[dict[str, Any]],
    act: Policy,
    *,
    settings: ProbeSettings | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    max_failure_rate: float = 0.1,
) -> dict[str, Any]:
    """`settings.generations` episodes per task with the policy `act`; the single-turn probe's statistics and
    verdict, plus `pass_at_k`, `mean_turns` and the environment's fault counts."""
    settings = settings or ProbeSettings()
    started = time.perf_counter()
    reward = EnvironmentReward(max_failure_rate=max_failure_rate, policy=False)
    scores: list[list[float]] = []
    turns: list[int] = []
    for task in tasks:
        samples = []
        for sample in range(settings.generations):
            episode = run_episode(
                factory, task, act, max_turns=max_turns, timeout_s=timeout_s, retries=retries
            )
            turns.append(episode.turns)
            samples.append(
                RewardSample(
                    id=f"{task.get('id', len(scores))}/{sample}", messages=[], extra={"episode": episode}
                )
            )
        scores.append([r.score for r in reward.score(samples)])
    failure = reward.failure_message() if reward.over_max_failure_rate() else None
    summary = summarize(scores, settings, failed=reward.stats.failed, reward_failure=failure)
    summary.update(
        tasks=len(tasks),
        k=settings.generations,
        pass_at_k=sum(1 for group in scores if max(group) >= SOLVED) / len(scores) if scores else 0.0,
        mean_turns=sum(turns) / len(turns) if turns else 0.0,
        faults=dict(reward.stats.faults),
        seconds=round(time.perf_counter() - started, 3),
    )
    return summary


def model_policy(
    model: Any, tokenizer: Any, *, temperature: float | None = 1.0, max_new_tokens: int = 32
) -> Policy:
    """A policy that samples the model's next reply (greedy with `temperature` None)."""
    from tunesmith.models.generate import generate_batch

    def act(messages: list[dict[str, str]]) -> str:
        return generate_batch(
            model, tokenizer, [messages], max_new_tokens=max_new_tokens, temperature=temperature
        )[0]

    return act
