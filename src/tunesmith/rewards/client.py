"""The reward endpoint client: one code path for HTTP endpoints, AWS Lambda functions and in-process batch
functions, which differ only in their *transport* (`send(payloads, timeout_s) -> decoded JSON reply`).

Per `score()` call the samples are split into requests of `batch_size`, at most `concurrency` in flight.
Each request is retried up to `retries` times with exponential backoff (`backoff_s`, doubled each time:
1 s / 2 s / 4 s by default, as [nova-reward-functions] advises) on timeouts, connection errors, HTTP 408/429/5xx, Lambda
function errors and throttling, and replies that are not JSON or not a list. A reply that is valid for some
ids only (one id missing or repeated, one NaN score, a malformed metrics_list) keeps the valid results and
retries just the faulty samples. Samples still unscored after the last retry score 0.0 with `failed=True`
and the fault of their last attempt. Every fault (each attempt) is counted and sent to `on_event`.

At the first call, an endpoint that could not be reached at all (connection refused, 401/403/404, an
unknown Lambda) raises `RewardFailureError` at once, naming the endpoint and the fix, instead of waiting
for the failure policy.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlparse

from tunesmith.bounded import MAX_DOCUMENT_BYTES, loads
from tunesmith.errors import UserError
from tunesmith.rewards.base import (
    RewardFailureError,
    RewardFunction,
    RewardResult,
    RewardSample,
    failed_result,
    fault_fix,
)
from tunesmith.rewards.contract import ReplyError, check_reply, dumps

RETRYABLE_REPLY_FAULTS = frozenset(
    {"missing_id", "duplicate_id", "invalid_score", "non_finite_score", "invalid_metrics"}
)
"""Per-sample reply faults worth asking again (a server's own `fault` entries are final)."""

FIRST_CONTACT_FAULTS = frozenset(
    {"connection_error", "http_401", "http_403", "http_404", "lambda_client_error"}
)
"""Faults that, when they are all the first call got, mean the endpoint is misconfigured, not flaky."""


class TransportFault(Exception):
    """One failed request: `kind` names the fault, `retryable` whether asking again may help."""

    def __init__(self, kind: str, detail: str = "", *, retryable: bool = True) -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail
        self.retryable = retryable


class Transport(Protocol):
    endpoint: str
    retry_reply_faults: bool

    def send(self, payloads: list[dict], timeout_s: float) -> Any: ...

    def close(self) -> None: ...


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


MAX_REPLY_BYTES = MAX_DOCUMENT_BYTES
"""Largest reply read (ours: a reply carries one score per sample, far below this)."""


def _read_reply(response: Any, timeout_s: float) -> bytes:
    """The reply body, within `timeout_s` in all (the socket timeout bounds each read, not a reply that
    trickles in) and at most `MAX_REPLY_BYTES`."""
    deadline = time.monotonic() + timeout_s
    chunks, size = [], 0
    while chunk := response.read1(1 << 16):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise TransportFault(
                "malformed_reply", f"reply larger than {MAX_REPLY_BYTES} bytes", retryable=False
            )
        if time.monotonic() > deadline:
            raise TransportFault("timeout", f"the reply did not arrive within {timeout_s:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


class HttpTransport:
    """POST the JSON list to a URL (stdlib urllib); optional `Authorization: Bearer` token."""

    retry_reply_faults = True

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.endpoint = url
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        # loopback never goes through an http_proxy from the environment
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(urlparse(url).hostname) else []
        self.opener = urllib.request.build_opener(*handlers)

    def send(self, payloads: list[dict], timeout_s: float) -> Any:
        request = urllib.request.Request(
            self.endpoint, data=dumps(payloads).encode("utf-8"), headers=self.headers, method="POST"
        )
        try:
            with self.opener.open(request, timeout=timeout_s) as response:
                body = _read_reply(response, timeout_s)
        except urllib.error.HTTPError as err:
            try:
                detail = err.read(300).decode("utf-8", "replace")
            except Exception:
                detail = ""
            retryable = err.code >= 500 or err.code in (408, 429)
            raise TransportFault(
                f"http_{err.code}", f"HTTP {err.code} {err.reason} {detail}", retryable=retryable
            ) from None
        except TimeoutError as err:
            raise TransportFault("timeout", f"no reply within {timeout_s:g} s ({err})") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise TransportFault("timeout", f"no connection within {timeout_s:g} s") from None
            raise TransportFault("connection_error", str(err.reason)) from None
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            raise TransportFault("connection_error", f"{type(err).__name__}: {err}") from None
        try:
            return loads(body)
        except ValueError as err:  # invalid JSON, or past the depth / number-size limits
            raise TransportFault("malformed_json", f"reply is not JSON ({err}): {body[:100]!r}") from None

    def close(self) -> None:
        pass


_LAMBDA_RETRYABLE_CODES = (
    "TooManyRequestsException",
    "ServiceException",
    "ResourceNotReadyException",
    "EC2ThrottledException",
    "ENILimitReachedException",
    "SubnetIPAddressLimitReachedException",
)


def make_lambda_client(arn: str, *, timeout_s: float, concurrency: int) -> Any:
    """A boto3 Lambda client for the ARN's region, with our timeout and no botocore retries (ours apply)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UserError(
            f"reward {arn}: calling a Lambda needs boto3 — pip install 'tunesmith[aws]'"
        ) from None
    region = arn.split(":")[3]
    config = Config(
        read_timeout=timeout_s,
        connect_timeout=min(timeout_s, 10),
        retries={"max_attempts": 0},
        max_pool_connections=max(10, concurrency),
    )
    return boto3.client("lambda", region_name=region, config=config)


class LambdaTransport:
    """`client.invoke(FunctionName=arn, Payload=json list)` — boto3's, or any object with that method
    returning `{"Payload": file-like or bytes, "FunctionError"?: ...}` (tests inject one)."""

    retry_reply_faults = True

    def __init__(
        self, arn: str, *, client: Any = None, timeout_s: float = 60.0, concurrency: int = 12
    ) -> None:
        self.endpoint = arn
        self.client = (
            client
            if client is not None
            else make_lambda_client(arn, timeout_s=timeout_s, concurrency=concurrency)
        )

    def send(self, payloads: list[dict], timeout_s: float) -> Any:
        try:
            response = self.client.invoke(FunctionName=self.endpoint, Payload=dumps(payloads))
        except Exception as err:
            name = type(err).__name__
            code = (getattr(err, "response", None) or {}).get("Error", {}).get("Code", "")
            detail = f"{name}: {err}"
            if "Timeout" in name:
                raise TransportFault("timeout", detail) from None
            if code in _LAMBDA_RETRYABLE_CODES or name in _LAMBDA_RETRYABLE_CODES:
                raise TransportFault(
                    "lambda_throttled" if "TooMany" in (code or name) else "lambda_service_error", detail
                ) from None
            if name in ("EndpointConnectionError", "ConnectionClosedError", "ConnectionError"):
                raise TransportFault("connection_error", detail) from None
            raise TransportFault("lambda_client_error", detail, retryable=False) from None
        payload = response.get("Payload", b"")
        body = payload.read() if hasattr(payload, "read") else payload
        if response.get("FunctionError"):
            text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
            raise TransportFault("lambda_error", f"{response['FunctionError']}: {text[:300]}")
        try:
            return loads(body)
        except (TypeError, ValueError) as err:
            raise TransportFault("malformed_json", f"reply is not JSON ({err}): {body[:100]!r}") from None

    def close(self) -> None:
        pass


class EndpointReward(RewardFunction):
    """A reward behind a transport: batching, concurrency, retries, reply checks (module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout_s: float = 60.0,
        concurrency: int = 12,
        batch_size: int = 16,
        retries: int = 3,
        backoff_s: float = 1.0,
        **kw: Any,
    ) -> None:
        kw.setdefault("name", transport.endpoint)
        super().__init__(**kw)
        self.transport = transport
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.retries = retries
        self.backoff_s = backoff_s
        self._pool: ThreadPoolExecutor | None = None
        self._first_call = True

    def _score(self, samples: list[RewardSample]) -> list[RewardResult]:
        batches = [samples[i : i + self.batch_size] for i in range(0, len(samples), self.batch_size)]
        if len(batches) == 1 or self.concurrency == 1:
            outcomes = [self._score_batch(batch) for batch in batches]
        else:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="reward")
                pool = self._pool
            outcomes = list(pool.map(self._score_batch, batches))
        by_id = {}
        reached = False
        faults: dict[str, str] = {}
        for results, batch_reached, batch_detail in outcomes:
            reached = reached or batch_reached
            for result in results:
                by_id[result.id] = result
                if result.failed:
                    faults.setdefault(result.fault or "exception", batch_detail)
        if self._first_call and not reached and faults and set(faults) <= FIRST_CONTACT_FAULTS:
            self._unreachable(faults)
        self._first_call = False
        return [by_id[s.id] for s in samples]

    def _unreachable(self, faults: dict[str, str]) -> None:
        kind, detail = next(iter(faults.items()))
        if kind == "connection_error" and self.endpoint_is_http:
            port = urlparse(self.transport.endpoint).port or "PORT"
            fix = f"start it (e.g. `tunesmith reward serve my_module:my_reward --port {port}`) or fix the URL"
        else:
            fix = fault_fix(kind)
        self.emit(
            {
                "event": "reward_failure_policy",
                "action": "stop",
                "endpoint": self.name,
                "reason": "unreachable",
                "fault": kind,
            }
        )
        raise RewardFailureError(
            f"reward endpoint {self.transport.endpoint} cannot be reached ({kind}: {detail}) — {fix}"
        )

    @property
    def endpoint_is_http(self) -> bool:
        return isinstance(self.transport, HttpTransport)

    def _score_batch(self, batch: list[RewardSample]) -> tuple[list[RewardResult], bool, str]:
        """Results of one request (with its retries), whether the endpoint answered, and the last fault's detail."""
        pending = list(batch)
        done: dict[str, RewardResult] = {}
        final: dict[str, str] = {}  # sample id -> fault kind, no more retries
        last: dict[str, str] = {}
        detail = ""
        reached = False
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                time.sleep(self.backoff_s * 2 ** (attempt - 2))
                with self._lock:
                    self.stats.retries += 1
            with self._lock:
                self.stats.requests += 1
            can_retry = attempt <= self.retries
            try:
                reply = self.transport.send([s.to_payload() for s in pending], self.timeout_s)
                reached = True
                good, bad = check_reply(reply, [s.id for s in pending])
            except (TransportFault, ReplyError) as err:
                retryable = getattr(err, "retryable", True)
                detail = getattr(err, "detail", "") or str(err)
                self.fault(
                    err.kind,
                    samples=len(pending),
                    attempt=attempt,
                    detail=detail,
                    retry=retryable and can_retry,
                )
                last = {s.id: err.kind for s in pending}
                if retryable and can_retry:
                    continue
                break
            done.update(good)
            by_kind: dict[str, list[str]] = {}
            for sample_id, kind in bad.items():
                by_kind.setdefault(kind, []).append(sample_id)
            retry_ids = set()
            for kind, ids in by_kind.items():
                retry = self.transport.retry_reply_faults and kind in RETRYABLE_REPLY_FAULTS and can_retry
                detail = f"{kind} for sample(s) {', '.join(ids[:5])}"
                self.fault(kind, samples=len(ids), attempt=attempt, detail=detail, retry=retry)
                if retry:
                    retry_ids.update(ids)
                else:
                    final.update(dict.fromkeys(ids, kind))
            pending = [s for s in pending if s.id in retry_ids]
            last = {s.id: bad[s.id] for s in pending}
            if not pending:
                break
        final.update(last)
        results = [done.get(s.id) or failed_result(s.id, final.get(s.id, "exception")) for s in batch]
        return results, reached, detail

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.transport.close()
