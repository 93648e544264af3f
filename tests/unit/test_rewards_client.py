"""The reward client against real servers on 127.0.0.1: a fault-injecting one (timeouts, 5xx, malformed
JSON, missing / duplicate ids, NaN scores), `start_server`, and a Lambda through an injected client that
calls `make_lambda_handler` — retries, per-sample failures, events, the failure policy, identity."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tunesmith.errors import UserError
from tunesmith.rewards import (
    RewardFailureError,
    RewardSample,
    load_reward,
    make_lambda_handler,
    start_server,
)

FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 2.0}
ARN = "arn:aws:lambda:us-east-1:123456789012:function:SageMaker-reward"


def graded(completion: str, reference_answer: str, **extra) -> dict:
    """The reference reward: share of the reference's characters present, plus a length metric."""
    hits = sum(ch in completion for ch in reference_answer) / max(len(reference_answer), 1)
    return {
        "score": hits,
        "metrics_list": [
            {"name": "hits", "value": hits, "type": "Reward"},
            {"name": "length", "value": len(completion), "type": "Metric"},
        ],
    }


def make_samples(n: int, prefix: str = "s") -> list[RewardSample]:
    return [
        RewardSample(
            id=f"{prefix}{i}",
            messages=[
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "ab"[: i % 3] + "z"},
            ],
            reference_answer="abc",
            extra={"task": "t"},
        )
        for i in range(n)
    ]


def expected(sample: RewardSample) -> float:
    return graded(sample.completion, sample.reference_answer)["score"]


class FaultServer:
    """Scores like `graded`; a fault from `plan` (one per request, in order) or `persistent` applies to the
    request — or, for id faults, to the samples whose id is in `targets` (default: the first of the request).

    Faults: sleep (past the client's timeout), 500, malformed (not JSON), not_list, missing, duplicate, nan,
    deep (JSON nested 100k deep), trickle (the reply a byte every 50 ms: each read within the timeout, the
    whole reply not), huge (a reply of 1 MiB).
    """

    def __init__(
        self, plan: list[str] | None = None, persistent: str | None = None, targets=None, sleep_s=0.6
    ):
        self.plan, self.persistent, self.targets, self.sleep_s = (
            list(plan or []),
            persistent,
            targets,
            sleep_s,
        )
        self.requests: list[list[str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                payloads = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append([p["id"] for p in payloads])
                    fault = outer.plan.pop(0) if outer.plan else outer.persistent
                reply = [
                    {
                        "id": p["id"],
                        "aggregate_reward_score": graded(p["messages"][-1]["content"], p["reference_answer"])[
                            "score"
                        ],
                    }
                    for p in payloads
                ]
                targets = outer.targets or {payloads[0]["id"]}
                if fault == "sleep":
                    time.sleep(outer.sleep_s)
                elif fault == "500":
                    return self._send(500, b'{"error": "boom"}')
                elif fault == "malformed":
                    return self._send(200, b'[{"id": "s0", "aggregate_')
                elif fault == "not_list":
                    return self._send(200, b'{"results": []}')
                elif fault == "deep":
                    return self._send(200, b"[" * 100_000 + b"]" * 100_000)
                elif fault == "huge":
                    return self._send(200, b" " * (1 << 20) + json.dumps(reply).encode())
                elif fault == "trickle":
                    return self._send(200, b" " * 40 + json.dumps(reply).encode(), byte_delay_s=0.05)
                elif fault == "missing":
                    reply = [r for r in reply if r["id"] not in targets]
                elif fault == "duplicate":
                    reply += [r for r in reply if r["id"] in targets]
                elif fault == "nan":
                    reply = [
                        {**r, "aggregate_reward_score": float("nan")} if r["id"] in targets else r
                        for r in reply
                    ]
                self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, body: bytes, byte_delay_s: float = 0.0) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not byte_delay_s:
                        self.wfile.write(body)
                    for i in range(len(body) if byte_delay_s else 0):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(byte_delay_s)
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_server() -> Iterator:
    servers: list[FaultServer] = []

    def make(**kw) -> FaultServer:
        servers.append(FaultServer(**kw))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def client(url: str, events: list[dict] | None = None, **spec):
    return load_reward({"function": url, **FAST, **spec}, on_event=None if events is None else events.append)


def fault_events(events: list[dict]) -> list[str]:
    return [e["fault"] for e in events if e["event"] == "reward_fault"]


# --- transient faults are retried ----------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["sleep", "500", "malformed", "not_list", "missing", "duplicate", "nan"])
def test_transient_fault_is_retried_and_succeeds(fault_server, fault: str) -> None:
    server = fault_server(plan=[fault])
    events: list[dict] = []
    reward = client(server.url, events, timeout_s=0.3)
    samples = make_samples(6)
    results = reward.score(samples)
    assert [r.score for r in results] == [expected(s) for s in samples]
    assert not any(r.failed for r in results)
    kind = {
        "sleep": "timeout",
        "500": "http_500",
        "malformed": "malformed_json",
        "not_list": "malformed_reply",
        "missing": "missing_id",
        "duplicate": "duplicate_id",
        "nan": "non_finite_score",
    }[fault]
    assert reward.stats.faults == {kind: 1} and reward.stats.retries == 1 and reward.stats.failed == 0
    assert fault_events(events) == [kind] and events[0]["retry"] is True and events[0]["attempt"] == 1
    # request faults resend the whole request; id faults only the affected sample
    assert server.requests[1] == (["s0"] if fault in ("missing", "duplicate", "nan") else server.requests[0])


# --- persistent faults fail only the affected samples ----------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "kind"), [("missing", "missing_id"), ("duplicate", "duplicate_id"), ("nan", "non_finite_score")]
)
def test_persistent_id_fault_fails_only_that_sample(fault_server, fault: str, kind: str) -> None:
    server = fault_server(persistent=fault, targets={"s2"})
    events: list[dict] = []
    reward = client(server.url, events, batch_size=4, max_failure_rate=0.5, min_samples_for_policy=1)
    samples = make_samples(8)
    results = reward.score(samples)
    assert [(r.id, r.fault) for r in results if r.failed] == [("s2", kind)]
    assert [r.score for r in results] == [0.0 if s.id == "s2" else expected(s) for s in samples]
    # 1 + 2 retries for s2 alone; every attempt is a fault event
    assert reward.stats.faults == {kind: 3} and fault_events(events) == [kind] * 3
    assert reward.stats.failed == 1 and reward.stats.failed_by_fault == {kind: 1}
    assert events[-1]["event"] == "reward_failure_policy" and events[-1]["action"] == "continue"
    assert sorted(len(r) for r in server.requests) == [1, 1, 4, 4]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("sleep", "timeout"),
        ("trickle", "timeout"),
        ("500", "http_500"),
        ("malformed", "malformed_json"),
        ("deep", "malformed_json"),
    ],
)
def test_persistent_request_fault_fails_its_samples_and_the_policy_stops(fault_server, fault, kind) -> None:
    server = fault_server(persistent=fault)
    events: list[dict] = []
    reward = client(
        server.url, events, timeout_s=0.3, retries=1, max_failure_rate=0.1, min_samples_for_policy=4
    )
    with pytest.raises(RewardFailureError) as err:
        reward.score(make_samples(4))
    message = str(err.value)
    assert (
        f"reward {server.url}: 4 of 4 samples failed (100.0%) > max_failure_rate 10.0% (faults: {kind} 4)"
        in message
    )
    assert "\n" not in message and "raise rft.reward.max_failure_rate" in message
    assert reward.stats.failed == 4 and reward.stats.faults == {kind: 2} and reward.stats.retries == 1
    assert fault_events(events) == [kind, kind]
    assert events[-1] == {
        "event": "reward_failure_policy",
        "action": "stop",
        "endpoint": server.url,
        "failure_rate": 1.0,
        "threshold": 0.1,
        "failed": 4,
        "samples": 4,
        "faults": {kind: 4},
    }
    assert len(server.requests) == 2


def test_a_reply_past_the_size_limit_fails_its_samples_without_retry(fault_server, monkeypatch) -> None:
    from tunesmith.rewards import client as client_module

    monkeypatch.setattr(client_module, "MAX_REPLY_BYTES", 1 << 19)  # 512 KiB: the 1 MiB reply is past it
    server = fault_server(persistent="huge")
    events: list[dict] = []
    reward = client(server.url, events, max_failure_rate=1.0)
    results = reward.score(make_samples(2))
    assert [(r.failed, r.fault) for r in results] == [(True, "malformed_reply")] * 2
    assert fault_events(events) == ["malformed_reply"] and len(server.requests) == 1  # not retried


def test_policy_continues_below_threshold_then_stops_past_it(fault_server) -> None:
    server = fault_server(plan=["500", "500"] + [None] * 4 + ["500", "500"])
    events: list[dict] = []
    reward = client(
        server.url,
        events,
        retries=1,
        batch_size=4,
        concurrency=1,
        max_failure_rate=0.25,
        min_samples_for_policy=8,
    )
    first = reward.score(make_samples(4, "a"))  # 4 of 4 failed, but fewer than 8 samples seen: continue
    assert all(r.failed and r.fault == "http_500" for r in first)
    assert events[-1]["action"] == "continue" and events[-1]["judged"] is False
    seen = len(events)
    ok = reward.score(make_samples(16, "b"))  # 4 of 20 = 20% <= 25%: no policy event (no failures now)
    assert not any(r.failed for r in ok) and len(events) == seen
    with pytest.raises(
        RewardFailureError, match=r"8 of 24 samples failed \(33.3%\) > max_failure_rate 25.0%"
    ):
        reward.score(make_samples(4, "c"))
    assert reward.stats.samples == 24 and reward.stats.calls == 3  # the stopping call is counted too
    assert sum(reward.stats.faults.values()) == len(fault_events(events)) == 4


def test_batches_run_concurrently_and_keep_order(fault_server) -> None:
    server = fault_server(persistent="sleep", sleep_s=0.3)
    reward = client(server.url, batch_size=2, concurrency=4, timeout_s=2.0)
    samples = make_samples(8)
    start = time.perf_counter()
    results = reward.score(samples)
    elapsed = time.perf_counter() - start
    assert [r.id for r in results] == [s.id for s in samples]
    assert [r.score for r in results] == [expected(s) for s in samples]
    assert len(server.requests) == 4 and elapsed < 0.3 * 4 * 0.75  # 4 requests of 0.3 s overlapped
    reward.close()


# --- first contact ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_a_clear_one_line_error() -> None:
    port = free_port()
    events: list[dict] = []
    reward = client(f"http://127.0.0.1:{port}/score", events, retries=1)
    with pytest.raises(RewardFailureError) as err:
        reward.score(make_samples(2))
    message = str(err.value)
    assert message.startswith(
        f"reward endpoint http://127.0.0.1:{port}/score cannot be reached (connection_error"
    )
    assert f"`tunesmith reward serve my_module:my_reward --port {port}`" in message and "\n" not in message
    assert fault_events(events) == ["connection_error", "connection_error"]
    assert events[-1]["action"] == "stop" and events[-1]["reason"] == "unreachable"


def test_bearer_token(monkeypatch) -> None:
    server, url = start_server(f"{__name__}:graded", token="s3cret")
    try:
        with pytest.raises(RewardFailureError, match="cannot be reached \\(http_401.*set bearer_token_env"):
            client(url).score(make_samples(1))
        monkeypatch.setenv("REWARD_TOKEN", "s3cret")
        results = client(url, bearer_token_env="REWARD_TOKEN").score(make_samples(3))
        assert [r.score for r in results] == [expected(s) for s in make_samples(3)]
        monkeypatch.delenv("REWARD_TOKEN")
        with pytest.raises(UserError, match="bearer_token_env REWARD_TOKEN is not set"):
            client(url, bearer_token_env="REWARD_TOKEN")
    finally:
        server.stop()


def test_server_refuses_large_and_malformed_requests() -> None:
    import urllib.error
    import urllib.request

    server, url = start_server("exact_match", max_request_bytes=200)
    try:
        for body, status in [(b"x" * 500, 413), (b"{nope", 400), (b'{"a": 1}', 400), (b'[{"id": 1}]', 400)]:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=5)
            assert err.value.code == status and "error" in json.loads(err.value.read())
        with urllib.request.urlopen(url, timeout=5) as health:
            assert json.loads(health.read()) == {"status": "ok", "reward": "exact_match"}
        events: list[dict] = []
        with pytest.raises(RewardFailureError):  # http_413 is not retried
            client(url, events, min_samples_for_policy=1).score(make_samples(4))
        assert fault_events(events) == ["http_413"]
    finally:
        server.stop()


# --- Lambda --------------------------------------------------------------------------------------------
class ThrottledError(Exception):
    def __init__(self) -> None:
        super().__init__("Rate exceeded")
        self.response = {"Error": {"Code": "TooManyRequestsException"}}


class ResourceNotFoundException(Exception):  # noqa: N818 (botocore's name)
    response = {"Error": {"Code": "ResourceNotFoundException"}}


class FakeLambdaClient:
    """Stands in for boto3's Lambda client: `invoke` calls a handler like Lambda would, with optional faults."""

    def __init__(self, handler, plan: list[str] | None = None) -> None:
        self.handler, self.plan, self.calls = handler, list(plan or []), []

    def invoke(self, FunctionName: str, Payload: str) -> dict:  # noqa: N803 (boto3's names)
        self.calls.append(FunctionName)
        fault = self.plan.pop(0) if self.plan else None
        if fault == "throttle":
            raise ThrottledError()
        if fault == "not_found":
            raise ResourceNotFoundException("Function not found: " + FunctionName)
        if fault == "function_error":
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(b'{"errorMessage": "x"}'),
            }
        reply = self.handler(json.loads(Payload), None)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(reply).encode())}


def test_lambda_transport_retries_and_reports(monkeypatch) -> None:
    fake = FakeLambdaClient(make_lambda_handler(f"{__name__}:graded"), plan=["throttle", "function_error"])
    events: list[dict] = []
    reward = load_reward({"function": ARN, **FAST}, on_event=events.append, lambda_client=fake)
    samples = make_samples(3)
    assert [r.score for r in reward.score(samples)] == [expected(s) for s in samples]
    assert fault_events(events) == ["lambda_throttled", "lambda_error"] and reward.stats.retries == 2
    assert fake.calls == [ARN] * 3
    missing = FakeLambdaClient(lambda event, context: [], plan=["not_found"])
    with pytest.raises(
        RewardFailureError, match="cannot be reached \\(lambda_client_error.*check the Lambda ARN"
    ):
        load_reward({"function": ARN, **FAST}, lambda_client=missing).score(samples)
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)
    with pytest.raises(UserError, match=r"needs boto3 — pip install 'tunesmith\[aws\]'"):
        load_reward(ARN)


# --- identity: in-process == HTTP == Lambda ----------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        f"{__name__}:graded",
        "builtin:brindle",
        {"components": [{"function": "numeric", "weight": 2}, f"{__name__}:graded", "normalized_match"]},
    ],
    ids=["module", "builtin", "weighted"],
)
def test_in_process_http_and_lambda_give_identical_results(spec) -> None:
    samples = make_samples(10) + [
        RewardSample(
            id="n1",
            messages=[{"role": "assistant", "content": "4 x 6 = 24 brix"}],
            reference_answer="4 x 6 = 24 brix",
        ),
        RewardSample(
            id="n2",
            messages=[{"role": "assistant", "content": "3 x 2 = 7 brix"}],
            reference_answer=None,
            extra={"metadata": {"reference_answer": "4 x 2 = 7 brix"}},
        ),
    ]
    local = load_reward(spec).score(samples)
    server, url = start_server(spec)
    try:
        over_http = client(url, batch_size=3, concurrency=2).score(samples)
    finally:
        server.stop()
    fake = FakeLambdaClient(make_lambda_handler(spec))
    over_lambda = load_reward({"function": ARN, **FAST, "batch_size": 5}, lambda_client=fake).score(samples)
    assert len(fake.calls) == 3
    as_tuples = [[(r.id, r.score, r.metrics, r.failed) for r in rs] for rs in (local, over_http, over_lambda)]
    assert as_tuples[0] == as_tuples[1] == as_tuples[2]
    assert len({r.score for r in local}) > 2  # the samples do discriminate
