"""`tunesmith reward serve SPEC`: any reward over the HTTP reward contract (stdlib `ThreadingHTTPServer`).

POST (any path) a JSON list of samples -> 200 and the reply list. GET -> 200 `{"status": "ok", "reward"}`
(a health check). Errors are JSON `{"error": "..."}`: 400 malformed request, 401 missing/wrong bearer token
(when one is set), 411 no Content-Length, 413 request larger than `max_request_bytes`, 500 the reward
crashed outside a sample. Binds 127.0.0.1 by default: the reward runs your code, so expose it elsewhere
only behind a token.
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.rewards.base import RewardFunction
from tunesmith.rewards.config import RewardSpec
from tunesmith.rewards.contract import RequestError, dumps, score_payloads

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""16 MiB: ~thousands of long samples per request; ours (the contract sets no limit)."""
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024


class RewardHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding one reward; `stop()` shuts it down and closes the reward."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        reward: RewardFunction,
        *,
        token: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        log: bool = False,
    ) -> None:
        self.reward = reward
        self.token = token
        self.max_request_bytes = max_request_bytes
        self.log = log
        super().__init__(address, RewardRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.reward.close()


class RewardRequestHandler(BaseHTTPRequestHandler):
    server: RewardHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "tunesmith-reward"

    def _reply(self, status: int, body: Any, *, close: bool = False) -> None:
        data = dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._authorized():
            self._reply(401, {"error": "missing or wrong bearer token"})
            return
        self._reply(200, {"status": "ok", "reward": self.server.reward.name})

    def _discard_body(self, length: int) -> None:
        """Read (and drop) a refused request's body, up to a bound, so the client reads our reply instead of
        a connection reset."""
        left = min(length, DISCARD_LIMIT_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)

    def do_POST(self) -> None:  # noqa: N802
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.strip().isdigit():
            self._reply(411, {"error": "a Content-Length header is required"}, close=True)
            return
        length = int(length_header)
        if not self._authorized():
            self._discard_body(min(length, self.server.max_request_bytes))
            self._reply(
                401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}, close=True
            )
            return
        if length > self.server.max_request_bytes:
            self._discard_body(length)
            self._reply(
                413,
                {
                    "error": f"request of {length} bytes exceeds the limit of {self.server.max_request_bytes}; "
                    "send fewer samples per request (batch_size)"
                },
                close=True,
            )
            return
        body = self.rfile.read(length)
        try:
            payloads = json.loads(body)
        except ValueError as err:
            self._reply(400, {"error": f"the request is not JSON: {err}"})
            return
        try:
            reply = score_payloads(self.server.reward, payloads)
        except RequestError as err:
            self._reply(400, {"error": str(err)})
            return
        except Exception as err:  # the reward itself crashed outside per-sample scoring
            self._reply(500, {"error": f"{type(err).__name__}: {' '.join(str(err).split())}"})
            return
        self._reply(200, reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        if self.server.log:
            super().log_message(format, *args)


def start_server(
    spec: str | dict | RewardSpec | RewardFunction,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    base_dir: Path | None = None,
    log: bool = False,
) -> tuple[RewardHTTPServer, str]:
    """Serve `spec` on a background thread; returns `(server, url)`. Stop with `server.stop()`.
    Port 0 picks a free port (the URL has the real one)."""
    from tunesmith.rewards.loading import load_reward

    reward = load_reward(spec, base_dir=base_dir, policy=False)
    try:
        server = RewardHTTPServer(
            (host, port), reward, token=token, max_request_bytes=max_request_bytes, log=log
        )
    except OSError as err:
        reward.close()
        raise UserError(
            f"reward serve: cannot listen on {host}:{port} ({err.strerror or err}) — pick another --port "
            "(0 = any free port) or --host"
        ) from None
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="reward-server", daemon=True)
    thread.start()
    return server, server.url


def serve_command(
    spec: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    token_env: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    log: bool = False,
) -> int:
    """The CLI: serve until Ctrl-C (or SIGTERM); prints the URL first."""
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UserError(
                f"reward serve: --token-env {token_env} is not set — export {token_env}=<a secret token>"
            )
    if max_request_bytes < 1:
        raise UserError("reward serve: --max-request-bytes must be at least 1")
    server, url = start_server(
        spec, host, port, token=token, max_request_bytes=max_request_bytes, base_dir=Path.cwd(), log=log
    )
    stop = threading.Event()

    def _terminate(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _terminate)
    auth = " (bearer token required)" if token else ""
    print(
        f"tunesmith: serving reward {server.reward.name} at {url}{auth} — POST a JSON list of samples; Ctrl-C stops",
        flush=True,
    )
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"tunesmith: warning: {host} is reachable from other machines and no token is set (--token-env)",
            file=sys.stderr,
            flush=True,
        )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    print("tunesmith: reward server stopped", flush=True)
    return 0
