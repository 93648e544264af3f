"""The reward vocabulary every scorer shares: samples in, results out, counters, the failure policy.

A `RewardFunction` scores a batch of `RewardSample`s (the reward contract's payloads, see
[nova-reward-functions]) and returns one `RewardResult` per sample, in order. A
sample that could not be scored (timeout, bad reply, exception in the reward) is *failed*: it scores 0.0
(the managed service's documented rule for failures), carries its fault kind, is counted in `stats` and
reported through `on_event`. After every `score()` call the failure policy compares the cumulative share
of failed samples with `max_failure_rate` and raises `RewardFailureError` past it, so a broken reward
stops the stage instead of silently training on zeros.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunesmith.errors import UserError

EventSink = Callable[[dict], None]

FAULT_FIXES: dict[str, str] = {
    "timeout": "raise timeout_s, lower batch_size, or make the reward faster",
    "connection_error": "check that the endpoint is running and reachable",
    "http_401": "set bearer_token_env to the variable holding the server's token",
    "http_403": "check the token / credentials",
    "http_404": "check the endpoint URL",
    "http_413": "lower batch_size (the server refuses requests this large)",
    "malformed_json": "make the endpoint reply with a JSON list",
    "malformed_reply": "reply with a JSON list of {id, aggregate_reward_score, metrics_list?}",
    "missing_id": "answer every request id exactly once",
    "duplicate_id": "answer every request id exactly once",
    "invalid_score": "make aggregate_reward_score a number",
    "non_finite_score": "make aggregate_reward_score a finite number (no NaN / inf)",
    "invalid_metrics": "make metrics_list a list of {name, value, type: Reward|Metric}",
    "missing_reference": "give every prompt a reference_answer (at the root or under metadata)",
    "exception": "fix the reward function (call it on one failing sample to see the error)",
    "lambda_error": "check the Lambda's CloudWatch logs",
    "lambda_client_error": "check the Lambda ARN, region and AWS credentials",
}
"""Fault kind -> the fix named in `RewardFailureError` messages (5xx: see `fault_fix`)."""


def fault_fix(kind: str) -> str:
    if kind in FAULT_FIXES:
        return FAULT_FIXES[kind]
    if kind.startswith("http_5"):
        return "check the endpoint's logs (it answers with server errors)"
    return "check the reward"


class RewardFailureError(UserError):
    """The failure policy stopped the stage: too many samples could not be scored (one-line message)."""


@dataclass
class RewardSample:
    """One payload of the reward contract: the conversation ending with the generated assistant turn."""

    id: str
    messages: list[dict]
    reference_answer: Any = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        metadata = self.extra.get("metadata")
        if self.reference_answer is None and isinstance(metadata, dict):  # the layout of some AWS pages
            self.reference_answer = metadata.get("reference_answer")

    @property
    def completion(self) -> str:
        """The generated answer: the last message's content (text parts joined for content-block lists)."""
        if not self.messages:
            return ""
        content = self.messages[-1].get("content", "")
        if isinstance(content, list):  # Bedrock / OpenAI content blocks: [{"text": ...}, ...]
            return "".join(
                str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
            )
        return "" if content is None else str(content)

    def to_payload(self) -> dict:
        """`{"id", "messages", "reference_answer", **extra}` — the contract's request element.

        `reference_answer` is left out when None; extra fields (e.g. `metadata`, `task`) never override the
        three contract keys.
        """
        payload: dict[str, Any] = {"id": self.id, "messages": self.messages}
        if self.reference_answer is not None:
            payload["reference_answer"] = self.reference_answer
        for key, value in self.extra.items():
            payload.setdefault(key, value)
        return payload

    @classmethod
    def from_payload(cls, payload: dict) -> RewardSample:
        """A contract payload -> sample. The reference is read at the root or, failing that, under
        `metadata` (the AWS pages disagree on where it goes; we accept both). Raises ValueError when the
        payload has no `id` or no `messages` list."""
        if not isinstance(payload, dict):
            raise ValueError(f"a sample must be a JSON object, got {type(payload).__name__}")
        if "id" not in payload or payload["id"] is None:
            raise ValueError("a sample has no `id`")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError(f"sample {payload['id']!r}: `messages` must be a list of message objects")
        reference = payload.get("reference_answer")  # None: __post_init__ looks under metadata
        extra = {k: v for k, v in payload.items() if k not in ("id", "messages", "reference_answer")}
        return cls(id=str(payload["id"]), messages=messages, reference_answer=reference, extra=extra)


@dataclass
class RewardResult:
    """The score of one sample: `score` is the contract's `aggregate_reward_score` (0.0 when failed)."""

    id: str
    score: float
    metrics: list[dict] = field(default_factory=list)
    failed: bool = False
    fault: str | None = None

    def to_reply(self) -> dict:
        """The contract's reply element; a failed sample also carries `fault` (an extra key our client reads
        and other consumers ignore) next to its 0.0 score."""
        reply: dict[str, Any] = {"id": self.id, "aggregate_reward_score": self.score}
        if self.metrics:
            reply["metrics_list"] = self.metrics
        if self.failed:
            reply["fault"] = self.fault or "exception"
        return reply


@dataclass
class RewardStats:
    """Counters of a reward function since it was created."""

    calls: int = 0  # score() calls
    samples: int = 0  # samples scored (failed ones included)
    failed: int = 0  # samples that ended failed (score 0)
    faults: dict[str, int] = field(default_factory=dict)  # fault kind -> fault events (attempts included)
    failed_by_fault: dict[str, int] = field(default_factory=dict)  # fault kind -> failed samples
    retries: int = 0  # requests sent again after a fault
    requests: int = 0  # requests / invocations sent (endpoints only)

    @property
    def failure_rate(self) -> float:
        """Share (0-1) of scored samples that failed."""
        return self.failed / self.samples if self.samples else 0.0

    def to_dict(self) -> dict:
        return {
            "calls": self.calls,
            "samples": self.samples,
            "failed": self.failed,
            "failure_rate": self.failure_rate,
            "faults": dict(self.faults),
            "failed_by_fault": dict(self.failed_by_fault),
            "retries": self.retries,
            "requests": self.requests,
        }


def failed_result(sample_id: str, fault: str) -> RewardResult:
    return RewardResult(id=sample_id, score=0.0, failed=True, fault=fault)


class RewardFunction:
    """Base of every reward: subclasses implement `_score`; `score` adds clamping, counters and the policy.

    Also callable as `(completion, reference_answer, **extra) -> float` so a reward can stand in for the
    evaluation suite's scorers.
    """

    name: str = "reward"

    def __init__(
        self,
        *,
        name: str | None = None,
        on_event: EventSink | None = None,
        clamp: bool = False,
        max_failure_rate: float = 0.1,
        min_samples_for_policy: int = 32,
        policy: bool = True,
    ) -> None:
        if name is not None:
            self.name = name
        self.stats = RewardStats()
        self.on_event = on_event
        self.clamp = clamp
        self.max_failure_rate = max_failure_rate
        self.min_samples_for_policy = min_samples_for_policy
        self.policy = policy
        self._lock = threading.RLock()

    # --- to implement ---------------------------------------------------------------------------------
    def _score(self, samples: list[RewardSample]) -> list[RewardResult]:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------------
    def score(self, samples: Sequence[RewardSample]) -> list[RewardResult]:
        """One result per sample, in order. Raises `RewardFailureError` when the failure policy says stop."""
        samples = list(samples)
        if not samples:
            return []
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"sample ids must be unique within one score() call; repeated: {duplicates[:5]}")
        results = self._score(samples)
        assert [r.id for r in results] == ids, "a reward must answer every sample once, in order"
        for result in results:
            if result.failed:
                result.score = 0.0
            elif self.clamp:
                result.score = min(1.0, max(0.0, result.score))
        with self._lock:
            self.stats.calls += 1
            self.stats.samples += len(results)
            for result in results:
                if result.failed:
                    self.stats.failed += 1
                    kind = result.fault or "exception"
                    self.stats.failed_by_fault[kind] = self.stats.failed_by_fault.get(kind, 0) + 1
        if self.policy:
            self._apply_policy(sum(r.failed for r in results))
        return results

    def over_max_failure_rate(self) -> bool:
        """The failure policy's rule: more than `max_failure_rate` of the samples scored so far failed."""
        return self.stats.failure_rate > self.max_failure_rate

    def _apply_policy(self, failed_now: int) -> None:
        stats = self.stats
        judged = stats.samples >= self.min_samples_for_policy
        if judged and self.over_max_failure_rate():
            self.emit(
                {
                    "event": "reward_failure_policy",
                    "action": "stop",
                    "endpoint": self.name,
                    "failure_rate": stats.failure_rate,
                    "threshold": self.max_failure_rate,
                    "failed": stats.failed,
                    "samples": stats.samples,
                    "faults": dict(stats.failed_by_fault),
                }
            )
            raise RewardFailureError(self.failure_message())
        if failed_now:
            self.emit(
                {
                    "event": "reward_failure_policy",
                    "action": "continue",
                    "endpoint": self.name,
                    "failure_rate": stats.failure_rate,
                    "threshold": self.max_failure_rate,
                    "failed": stats.failed,
                    "samples": stats.samples,
                    "judged": judged,
                }
            )

    def failure_message(self) -> str:
        stats = self.stats
        by_fault = sorted(stats.failed_by_fault.items(), key=lambda kv: -kv[1])
        counts = ", ".join(f"{kind} {n}" for kind, n in by_fault) or "none"
        fix = fault_fix(by_fault[0][0]) if by_fault else "check the reward"
        return (
            f"reward {self.name}: {stats.failed} of {stats.samples} samples failed "
            f"({stats.failure_rate:.1%}) > max_failure_rate {self.max_failure_rate:.1%} (faults: {counts}) — "
            f"{fix}, or raise rft.reward.max_failure_rate"
        )

    def emit(self, event: dict) -> None:
        """Send one event to `on_event` (serialized: endpoints emit from worker threads)."""
        if self.on_event is not None:
            with self._lock:
                self.on_event(event)

    def fault(
        self, kind: str, *, samples: int, attempt: int = 1, detail: str = "", retry: bool = False
    ) -> None:
        """Count one fault and report it as a `reward_fault` event."""
        with self._lock:
            self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
        event = {
            "event": "reward_fault",
            "fault": kind,
            "endpoint": self.name,
            "samples": samples,
            "attempt": attempt,
            "retry": retry,
        }
        if detail:
            event["detail"] = " ".join(detail.split())[:300]
        self.emit(event)

    def close(self) -> None:
        """Release connections / threads (a no-op for in-process rewards)."""

    def __enter__(self) -> RewardFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, completion: str, reference_answer: Any = None, **extra: Any) -> float:
        sample = RewardSample(
            id="0",
            messages=[{"role": "assistant", "content": completion}],
            reference_answer=reference_answer,
            extra=extra,
        )
        return self.score([sample])[0].score

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (bools excluded), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
