"""`tunesmith reward serve SPEC`: any reward over the HTTP reward contract (Starlette + uvicorn).

POST (any path) a JSON list of samples -> 200 and the reply list. GET -> 200 `{"status": "ok", "reward"}`
(a health check). Errors are JSON `{"error": "..."}`: 400 malformed request (also JSON past the limits of
`tunesmith.bounded`: nested deeper than 128 levels, a number of over 4300 digits), 401 missing/wrong bearer
token (when one is set; compared in constant time), 408 body not received within the read timeout, 411 no
Content-Length, 413 request larger than `max_request_bytes`, 500 the reward crashed outside a sample. A
connection whose request head (request line and headers) does not arrive within the read timeout is closed,
so stalled or half-open clients hold no thread and no slot for long. The server keeps serving after every
error. Binds 127.0.0.1 by default: the reward runs your code, so expose it elsewhere only behind a token.
Rewards are scored on a thread pool, so a slow reward does not block other requests; the listen backlog
(2048) queues bursts of hundreds of clients.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from tunesmith.asgi import (
    DEFAULT_READ_TIMEOUT_S,
    DISCARD_LIMIT_BYTES,
    BackgroundServer,
    BodyError,
    drain,
    parse_json,
    read_body,
    serve_until_stopped,
    warn_if_exposed,
)
from tunesmith.errors import UserError
from tunesmith.rewards.base import RewardFunction
from tunesmith.rewards.config import RewardSpec
from tunesmith.rewards.contract import RequestError, dumps, score_payloads

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""16 MiB: ~thousands of long samples per request; ours (the contract sets no limit)."""


def _reply(status: int, body: Any, *, close: bool = False):
    from starlette.responses import Response

    headers = {"Connection": "close"} if close else None
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def reward_app(
    reward: RewardFunction,
    *,
    token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
):
    """The Starlette app serving `reward` over the reward contract (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route

    expected = f"Bearer {token}".encode() if token else None

    def authorized(request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return expected is None or hmac.compare_digest(given, expected)

    async def health(request):
        if not authorized(request):
            return _reply(401, {"error": "missing or wrong bearer token"})
        return _reply(200, {"status": "ok", "reward": reward.name})

    async def score(request):
        length = request.headers.get("content-length")
        if length is None or not length.strip().isdigit():
            await drain(request, DISCARD_LIMIT_BYTES, read_timeout_s)  # a chunked body: read, so no reset
            return _reply(411, {"error": "a Content-Length header is required"}, close=True)
        if not authorized(request):
            await drain(request, min(int(length), max_request_bytes), read_timeout_s)
            return _reply(
                401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}, close=True
            )
        try:
            payloads = parse_json(await read_body(request, max_request_bytes, read_timeout_s))
        except BodyError as err:
            if err.status == 413:
                message = f"{err.message}; send fewer samples per request (batch_size)"
                return _reply(413, {"error": message}, close=True)
            return _reply(err.status, {"error": err.message}, close=err.status == 408)
        try:
            reply = await run_in_threadpool(score_payloads, reward, payloads)
        except RequestError as err:
            return _reply(400, {"error": str(err)})
        except RecursionError:
            return _reply(400, {"error": "the request JSON is nested too deeply"})
        except Exception as err:  # the reward itself crashed outside per-sample scoring
            return _reply(500, {"error": f"{type(err).__name__}: {' '.join(str(err).split())}"})
        return _reply(200, reply)

    async def endpoint(request):
        return await (score(request) if request.method == "POST" else health(request))

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


class RewardServer(BackgroundServer):
    """The reward app on a background uvicorn thread; `stop()` shuts it down and closes the reward."""

    def __init__(
        self,
        address: tuple[str, int],
        reward: RewardFunction,
        *,
        log: bool = False,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        **app_options,
    ):
        self.reward = reward
        super().__init__(
            reward_app(reward, read_timeout_s=read_timeout_s, **app_options),
            *address,
            read_timeout_s=read_timeout_s,
            access_log=log,
            name="reward-server",
        )

    def stop(self) -> None:
        super().stop()
        self.reward.close()


def start_server(
    spec: str | dict | RewardSpec | RewardFunction,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    base_dir: Path | None = None,
    log: bool = False,
) -> tuple[RewardServer, str]:
    """Serve `spec` on a background thread; returns `(server, url)`. Stop with `server.stop()`.
    Port 0 picks a free port (the URL has the real one)."""
    from tunesmith.rewards.loading import load_reward

    reward = load_reward(spec, base_dir=base_dir, policy=False)
    try:
        server = RewardServer((host, port), reward, token=token, max_request_bytes=max_request_bytes, log=log)
    except OSError as err:
        reward.close()
        raise UserError(
            f"reward serve: cannot listen on {host}:{port} ({err.strerror or err}) — pick another --port "
            "(0 = any free port) or --host"
        ) from None
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
    auth = " (bearer token required)" if token else ""
    print(
        f"tunesmith: serving reward {server.reward.name} at {url}{auth} — POST a JSON list of samples; Ctrl-C stops",
        flush=True,
    )
    warn_if_exposed(host, bool(token), "--token-env")
    serve_until_stopped(server)
    print("tunesmith: reward server stopped", flush=True)
    return 0
