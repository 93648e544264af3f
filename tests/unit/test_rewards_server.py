"""`tunesmith reward serve` on Starlette + uvicorn: 200 concurrent clients, hostile bodies (deep JSON, a body
that never arrives, a chunked body past the limit), and the server keeps serving after each."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

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
