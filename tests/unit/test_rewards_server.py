"""`tunesmith reward serve` on Starlette + uvicorn, a real server on loopback: 200 concurrent clients (also
while stalled clients hold connections), hostile bodies (JSON past the depth or number-size limits, a body
that never arrives, a chunked body past the limit), half-open and slow-head connections dropped after the
read timeout without a thread each, a reward raising RecursionError, and the server keeps serving after each."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tunesmith.bounded import MAX_JSON_DEPTH
from tunesmith.rewards import load_reward, start_server
from tunesmith.rewards.server import RewardServer


def post(url: str, body: bytes, timeout: float = 30) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def samples(i: int) -> bytes:
    return json.dumps(
        [
            {
                "id": f"{i}-a",
                "messages": [{"role": "assistant", "content": str(i)}],
                "reference_answer": str(i),
            },
            {"id": f"{i}-b", "messages": [{"role": "assistant", "content": "x"}], "reference_answer": str(i)},
        ]
    ).encode()


@pytest.fixture()
def served():
    server, url = start_server("exact_match", max_request_bytes=4096)
    yield server, url
    server.stop()


def test_200_concurrent_requests_are_all_answered(served) -> None:
    _, url = served
    with ThreadPoolExecutor(max_workers=200) as pool:
        replies = list(pool.map(lambda i: post(url, samples(i)), range(200)))
    assert [status for status, _ in replies] == [200] * 200
    for i, (_, reply) in enumerate(replies):
        assert [(r["id"], r["aggregate_reward_score"]) for r in reply] == [(f"{i}-a", 1.0), (f"{i}-b", 0.0)]


def test_deep_json_is_400_a_chunked_body_411_and_the_server_keeps_serving(served) -> None:
    _, url = served
    status, error = post(url, b"[" * 2000 + b"]" * 2000)
    assert status == 400 and "nested too deeply" in error["error"]

    def chunks():
        for _ in range(10):
            yield b"[" + b" " * 1000

    request = urllib.request.Request(url, data=chunks(), headers={"Transfer-Encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as err:  # no Content-Length: refused before reading
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 411 and "Content-Length" in json.loads(err.value.read())["error"]
    assert post(url, samples(7))[0] == 200


def test_a_body_that_never_arrives_gets_408_and_others_are_served_meanwhile() -> None:
    server = RewardServer(("127.0.0.1", 0), load_reward("exact_match", policy=False), read_timeout_s=1.0)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
            slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
            started = time.monotonic()
            assert post(server.url, samples(1))[0] == 200  # not blocked by the slow client
            reply = b""
            while chunk := slow.recv(4096):  # the server closes the connection after its reply
                reply += chunk
            reply = reply.decode()
            assert reply.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in reply
            assert time.monotonic() - started < 8
        assert post(server.url, samples(2))[0] == 200
    finally:
        server.stop()


READ_TIMEOUT_S = 0.5


def one_sample(i: int) -> bytes:
    row = {"id": str(i), "messages": [{"role": "assistant", "content": str(i)}], "reference_answer": str(i)}
    return json.dumps([row]).encode()


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `within_s` seconds."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.fixture()
def server():  # a short read timeout, so stalled clients are dropped within the test
    served = RewardServer(
        ("127.0.0.1", 0), load_reward("exact_match", policy=False), read_timeout_s=READ_TIMEOUT_S
    )
    yield served
    served.stop()


def test_half_open_and_slow_head_connections_are_dropped_after_the_read_timeout(server) -> None:
    threads_before = threading.active_count()
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    slow_heads = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    try:
        for sock in slow_heads:  # a request head that never ends: each byte would reset a keep-alive timer
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        assert threading.active_count() <= threads_before + 1  # no thread per stalled client
        assert post(server.url, one_sample(1))[0] == 200  # served while they stall
        started = time.monotonic()
        for sock in silent + slow_heads:
            assert closed_by_server(sock, within_s=10)
        assert time.monotonic() - started < 10
    finally:
        for sock in silent + slow_heads:
            sock.close()
    assert post(server.url, one_sample(2)) == (200, [{"id": "2", "aggregate_reward_score": 1.0}])


def test_a_stalled_second_request_on_a_kept_alive_connection_is_dropped(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        body = one_sample(3)
        head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        sock.sendall(head + body)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
        assert closed_by_server(sock, within_s=10)


def test_200_concurrent_requests_are_answered_while_stalled_clients_hold_connections(server) -> None:
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
    try:
        with ThreadPoolExecutor(max_workers=200) as pool:
            replies = list(pool.map(lambda i: post(server.url, one_sample(i)), range(200)))
    finally:
        for sock in stalled:
            sock.close()
    assert [status for status, _ in replies] == [200] * 200
    assert [reply[0]["id"] for _, reply in replies] == [str(i) for i in range(200)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000, f"nested too deeply (more than {MAX_JSON_DEPTH} levels)"),
        (b'[{"id": "1", "messages": [], "reference_answer": ' + b"9" * 5000 + b"}]", "5000 digits"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"1" + b"]" * (MAX_JSON_DEPTH + 1), "nested too deeply"),
    ],
    ids=["100k-deep", "5000-digit-number", "one-level-too-deep"],
)
def test_json_past_the_limits_is_a_one_line_400_and_the_server_keeps_serving(server, body, expected) -> None:
    status, reply = post(server.url, body)
    assert status == 400
    assert expected in reply["error"] and "\n" not in reply["error"]
    assert post(server.url, one_sample(4))[0] == 200


def test_json_at_the_depth_limit_is_accepted(server) -> None:
    depth = MAX_JSON_DEPTH - 1  # the list of samples is one more level
    nested: object = "x"
    for _ in range(depth - 2):  # the sample object and the list itself
        nested = [nested]
    row = {"id": "1", "messages": [{"role": "assistant", "content": "1"}], "reference_answer": "1"}
    row["extra"] = nested
    status, reply = post(server.url, json.dumps([row]).encode())
    assert (status, reply) == (200, [{"id": "1", "aggregate_reward_score": 1.0}])


def test_a_reward_that_raises_recursion_error_fails_its_samples_and_serving_goes_on(tmp_path) -> None:
    (tmp_path / "deep_reward.py").write_text(
        "def deep(completion, reference_answer, **kw):\n"
        "    if completion == 'recurse':\n"
        "        return deep(completion, reference_answer)\n"
        "    return 1.0\n"
    )
    reward = load_reward(str(tmp_path / "deep_reward.py") + ":deep", policy=False)
    served = RewardServer(("127.0.0.1", 0), reward, read_timeout_s=READ_TIMEOUT_S)
    try:
        rows = [
            {"id": "a", "messages": [{"role": "assistant", "content": "recurse"}]},
            {"id": "b", "messages": [{"role": "assistant", "content": "fine"}]},
        ]
        status, reply = post(served.url, json.dumps(rows).encode())
        assert status == 200
        assert [(r["id"], r["aggregate_reward_score"]) for r in reply] == [("a", 0.0), ("b", 1.0)]
        assert post(served.url, json.dumps(rows[1:]).encode()) == (
            200,
            [{"id": "b", "aggregate_reward_score": 1.0}],
        )
    finally:
        served.stop()
