"""Raw HTTP requests to `tunesmith reward serve` (class 6 of issue 21): each is sent on its own connection
to one running server; the reply's status must be one of `statuses` (None: the server may also close the
connection without a reply), after which the server must still answer a valid request, and its stderr must
never show a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass

VALID_BODY = json.dumps(
    [{"id": "a", "messages": [{"role": "assistant", "content": "4"}], "reference_answer": "4"}]
).encode()


def post(body: bytes, *, headers: str = "", length: int | str | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n{headers}\r\n"
    ).encode() + body


@dataclass(frozen=True)
class HttpCase:
    name: str
    request: bytes
    statuses: tuple[int | None, ...]  # acceptable reply statuses; None = closed without a reply
    wait_s: float = 10  # how long the server may take to reply or close
    send_slowly_s: float = 0  # keep the connection open this long before reading (a half-open client)
    concurrent: int = 1  # connections opened at once with this request


HTTP_CASES: list[HttpCase] = [
    HttpCase("valid-request", post(VALID_BODY), (200,)),
    HttpCase("valid-health-get", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", (200,)),
    HttpCase(
        "valid-unicode-body",
        post(
            json.dumps(
                [{"id": "ü🎉", "messages": [{"role": "assistant", "content": "é"}], "reference_answer": "é"}],
                ensure_ascii=False,
            ).encode()
        ),
        (200,),
    ),
    HttpCase("valid-empty-list", post(b"[]"), (200, 400)),
    HttpCase("garbage-request-line", b"GARBAGE\r\n\r\n", (400, None)),
    HttpCase("binary-noise", bytes(range(256)) * 8, (400, None)),
    HttpCase("http-0.9", b"GET /\r\n\r\n", (400, None)),
    HttpCase("invalid-json-body", post(b"{not json"), (400,)),
    HttpCase("json-object-not-list", post(b'{"id": "a"}'), (400,)),
    HttpCase("list-of-numbers", post(b"[1, 2, 3]"), (400,)),
    HttpCase("sample-without-id", post(b'[{"messages": []}]'), (400,)),
    HttpCase("messages-not-a-list", post(b'[{"id": "a", "messages": "hi"}]'), (400,)),
    HttpCase("deep-json-100k", post(b"[" * 100_000 + b"]" * 100_000), (400,)),
    HttpCase("deep-json-object", post(b'{"a":' * 50_000 + b"1" + b"}" * 50_000), (400,)),
    HttpCase(
        "deep-json-in-sample",
        post(b'[{"id": "a", "messages": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]"),
        (200, 400),
    ),
    HttpCase(
        "number-5000-digits",
        post(b'[{"id": "a", "messages": [], "reference_answer": ' + b"9" * 5000 + b"}]"),
        (200, 400),
    ),
    HttpCase("number-1e999", post(b'[{"id": "a", "messages": [], "reference_answer": 1e999}]'), (200, 400)),
    HttpCase("nan-literal", post(b'[{"id": "a", "messages": [], "reference_answer": NaN}]'), (200, 400)),
    HttpCase(
        "lone-surrogate",
        post(b'[{"id": "\\ud800", "messages": [{"role": "assistant", "content": "\\udfff"}]}]'),
        (200, 400),
    ),
    HttpCase("invalid-utf8-body", post(b'[{"id": "\xff\xfe", "messages": []}]'), (400,)),
    HttpCase(
        "duplicate-ids", post(b'[{"id": "a", "messages": []}, {"id": "a", "messages": []}]'), (200, 400)
    ),
    HttpCase("huge-content-length", post(b"[]", length=10**12), (413,)),
    HttpCase("negative-content-length", post(b"[]", length=-5), (400, 411, None)),
    HttpCase("content-length-not-a-number", post(b"[]", length="abc"), (400, 411, None)),
    HttpCase("two-content-lengths", post(b"[]", headers="Content-Length: 7\r\n"), (400, None)),
    HttpCase(
        "chunked-garbage",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
        (400, 411, None),
    ),
    HttpCase(
        "header-100kb",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        (200, 400, 413, 431, None),
    ),
    HttpCase(
        "ten-thousand-headers",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n",
        (200, 400, 413, 431, None),
    ),
    HttpCase(
        "body-over-max-request-bytes",
        post(b"[" + b'{"id": "a", "messages": []},' * 700_000 + b"1]"),
        (413,),
        wait_s=30,
    ),
    HttpCase("wrong-method", b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
    HttpCase("path-traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", (200, 400, 404)),
    HttpCase("slow-body", post(b"[", length=100), (408, None), wait_s=45, send_slowly_s=0.5),
    HttpCase(
        "half-open-headers",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le",
        (408, None),
        wait_s=45,
        send_slowly_s=0.5,
    ),
    HttpCase("burst-200-concurrent", post(VALID_BODY), (200,), wait_s=60, concurrent=200),
    # round two (issue 32): framing and field shapes the first corpus did not send
    HttpCase(
        "chunked-bad-size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
        (400, 411, 501, None),
    ),
    HttpCase(
        "chunked-and-content-length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
        (200, 400, 411, 501, None),
    ),
    HttpCase("header-non-ascii", post(VALID_BODY, headers="X-Name: \u00ff\u00fe\r\n"), (200, 400, None)),
    HttpCase("expect-100-continue", post(VALID_BODY, headers="Expect: 100-continue\r\n"), (100, 200, 417)),
    HttpCase("pipelined-two", post(VALID_BODY) + post(VALID_BODY), (200,)),
    HttpCase(
        "lone-surrogate-in-json",
        post(b'[{"id": "a", "messages": [{"role": "assistant", "content": "\\ud800"}]}]'),
        (200, 400, 422),
    ),
    HttpCase(
        "reference-answer-an-object",
        post(
            json.dumps(
                [
                    {
                        "id": "a",
                        "messages": [{"role": "assistant", "content": "4"}],
                        "reference_answer": {"x": [1]},
                    }
                ]
            ).encode()
        ),
        (200, 400, 422),
    ),
    HttpCase(
        "content-a-list-of-parts",
        post(
            json.dumps(
                [{"id": "a", "messages": [{"role": "assistant", "content": [{"type": "image_url"}]}]}]
            ).encode()
        ),
        (200, 400, 422),
    ),
    HttpCase(
        "id-an-object",
        post(json.dumps([{"id": {"a": 1}, "messages": [{"role": "assistant", "content": "4"}]}]).encode()),
        (200, 400, 422),
    ),
    HttpCase("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 404, 405, 505, None)),
    HttpCase("absolute-uri", b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", (200, 400, 404)),
]
