"""The reward contract on the wire ([nova-reward-functions]), both directions.

Request: a JSON list of `{id, messages, reference_answer?, ...}`. Reply: a JSON list with one
`{id, aggregate_reward_score, metrics_list?}` per request id, `metrics_list` entries being
`{name, value, type: "Reward" | "Metric"}`.

`check_reply` is the client's side (used for HTTP, Lambda and in-process batch functions alike): it sorts a
reply into valid results and per-sample faults, so one bad entry fails only its own sample.
`score_payloads` is the server's side (used by `reward serve` and the Lambda handler).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tunesmith.bounded import loads
from tunesmith.rewards.base import RewardFunction, RewardResult, RewardSample, finite_number

METRIC_TYPES = ("Reward", "Metric")


class RequestError(ValueError):
    """A request that is not a list of valid samples (HTTP 400 / a Lambda FunctionError)."""


class ReplyError(ValueError):
    """A reply that cannot be read at all (every sample of the request gets `kind`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def unwrap_body(value: Any) -> Any:
    """An API Gateway style `{"body": "<json>"}` (or `{"body": [...]}`) -> its content; else `value`."""
    if isinstance(value, dict) and "body" in value:
        body = value["body"]
        if isinstance(body, (str, bytes, bytearray)):
            try:
                return loads(body)
            except ValueError as err:  # invalid JSON, or past the depth / number-size limits
                raise ReplyError("malformed_json", f"body is not JSON: {err}") from None
        return body
    return value


def check_metrics(metrics: Any) -> list[dict] | None:
    """A valid `metrics_list` as a list of `{name, value, type}` (missing -> []), or None when invalid."""
    if metrics is None:
        return []
    if not isinstance(metrics, list):
        return None
    checked = []
    for metric in metrics:
        if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
            return None
        value = finite_number(metric.get("value"))
        if value is None or metric.get("type", "Metric") not in METRIC_TYPES:
            return None
        checked.append({"name": metric["name"], "value": value, "type": metric.get("type", "Metric")})
    return checked


def check_reply(reply: Any, ids: list[str]) -> tuple[dict[str, RewardResult], dict[str, str]]:
    """Sort a decoded reply into `(results by id, fault kind by id)`; every id lands in exactly one.

    Raises `ReplyError` when the reply is not a list at all. Per entry: an id answered twice ->
    `duplicate_id`; an id never answered -> `missing_id`; a score that is not a number -> `invalid_score`,
    NaN/inf -> `non_finite_score`; a malformed metrics_list -> `invalid_metrics`; an entry carrying a `fault`
    string (our own server's failed samples, scored 0.0) -> that fault. Entries with unknown ids are ignored.
    """
    reply = unwrap_body(reply)
    if not isinstance(reply, list):
        raise ReplyError("malformed_reply", f"expected a JSON list, got {type(reply).__name__}")
    wanted = set(ids)
    entries: dict[str, list[dict]] = {}
    for entry in reply:
        if isinstance(entry, dict) and "id" in entry and str(entry["id"]) in wanted:
            entries.setdefault(str(entry["id"]), []).append(entry)
    results: dict[str, RewardResult] = {}
    faults: dict[str, str] = {}
    for sample_id in ids:
        found = entries.get(sample_id, [])
        if not found:
            faults[sample_id] = "missing_id"
            continue
        if len(found) > 1:
            faults[sample_id] = "duplicate_id"
            continue
        entry = found[0]
        if isinstance(entry.get("fault"), str):
            faults[sample_id] = entry["fault"]
            continue
        raw = entry.get("aggregate_reward_score")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            faults[sample_id] = "invalid_score"
            continue
        score = finite_number(raw)
        if score is None:
            faults[sample_id] = "non_finite_score"
            continue
        metrics = check_metrics(entry.get("metrics_list"))
        if metrics is None:
            faults[sample_id] = "invalid_metrics"
            continue
        results[sample_id] = RewardResult(id=sample_id, score=score, metrics=metrics)
    return results, faults


def parse_request(payloads: Any) -> list[RewardSample]:
    """The server's reading of a request: a list (or `{"body": ...}`) of samples with unique ids."""
    try:
        payloads = unwrap_body(payloads)
    except ReplyError as err:
        raise RequestError(str(err)) from None
    if not isinstance(payloads, list):
        raise RequestError(f"the request must be a JSON list of samples, got {type(payloads).__name__}")
    try:
        samples = [RewardSample.from_payload(p) for p in payloads]
    except ValueError as err:
        raise RequestError(str(err)) from None
    repeated = [i for i, n in Counter(s.id for s in samples).items() if n > 1]
    if repeated:
        raise RequestError(f"sample ids must be unique; repeated: {repeated[:5]}")
    return samples


def score_payloads(reward: RewardFunction, payloads: Any) -> list[dict]:
    """Score a contract request with `reward` and build the contract reply (ids echoed as sent)."""
    samples = parse_request(payloads)
    raw_ids = [p["id"] for p in unwrap_body(payloads)]
    results = reward.score(samples)
    replies = []
    for raw_id, result in zip(raw_ids, results, strict=True):
        reply = result.to_reply()
        reply["id"] = raw_id
        replies.append(reply)
    return replies


def dumps(value: Any) -> str:
    """JSON for the wire (non-JSON values in extra fields become strings)."""
    return json.dumps(value, default=str)
