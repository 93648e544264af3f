"""The HTTP plumbing shared by `tunesmith reward serve` and `tunesmith serve`: Starlette apps run by uvicorn.

A leaf module (it imports only `tunesmith.bounded`) so both the reward server (rewards/, low in the layering) and the model
server (serving/, high) use it. It holds what the stack leaves to the application: running uvicorn on a
background thread with a bound socket (port 0 = any free port, the real one known before serving), reading
a request body under a size limit and a read timeout (uvicorn has neither), dropping a connection whose
request head does not arrive within a timeout (uvicorn waits forever for the first request), and decoding
JSON under depth and number-size limits (a bad request, never a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
import time
from typing import Any

from tunesmith.bounded import LimitError, loads

DEFAULT_BACKLOG = 2048
"""Pending connections the kernel queues before accept (uvicorn's default): far above 200 concurrent
clients, so a burst is queued rather than refused."""
DEFAULT_READ_TIMEOUT_S = 30.0
"""A client that has not sent its whole body within this many seconds gets 408, one that has not sent a
complete request head (request line and headers) is disconnected (ours; slow or half-open client guard)."""
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
"""A refused body is drained up to this size so the client reads our reply instead of a connection reset."""


class BodyError(Exception):
    """A request body that cannot be accepted: HTTP `status` and a one-line `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: the longest a refused request's body is read and dropped before the 413 goes out
REFUSED_DRAIN_S = 1.0


async def read_body(request: Any, max_bytes: int, timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> bytes:
    """The body of a Starlette `request`, at most `max_bytes` (413 otherwise, also for chunked bodies that
    grow past it) and within `timeout_s` (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        # drain what is already on its way (closing on unread data resets the connection before the client
        # reads the 413), but never wait long for a body that size: the client may not be sending it at all
        await drain(request, int(declared), min(timeout_s, REFUSED_DRAIN_S))
        raise BodyError(413, f"request of {int(declared)} bytes exceeds the limit of {max_bytes}")

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise BodyError(
                    413, f"request of more than {max_bytes} bytes exceeds the limit of {max_bytes}"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except asyncio.TimeoutError:
        raise BodyError(408, f"the request body did not arrive within {timeout_s:g} s") from None


async def drain(request: Any, length: int, timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> None:
    """Read and drop up to `length` bytes (bounded by DISCARD_LIMIT_BYTES) of a refused request's body."""
    left = min(length, DISCARD_LIMIT_BYTES)

    async def consume() -> None:
        nonlocal left
        async for chunk in request.stream():
            left -= len(chunk)
            if left <= 0:
                break

    with contextlib.suppress(Exception):  # a refused body that also fails to arrive: nothing to do
        await asyncio.wait_for(consume(), timeout_s)


def parse_json(body: bytes) -> Any:
    """Decoded JSON; `BodyError(400)` for invalid JSON and for JSON past the depth or number-size limits
    (`tunesmith.bounded`)."""
    try:
        return loads(body)
    except LimitError as err:
        raise BodyError(400, f"the request JSON is refused: {err}") from None
    except ValueError as err:
        raise BodyError(400, f"the request is not JSON: {err}") from None


def head_timeout_protocol(read_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request head has not arrived `read_timeout_s`
    after it opened or after the previous response (uvicorn arms no timer before the first request, and
    any byte received cancels its keep-alive timer, so a client sending nothing, or a header a minute, is
    otherwise held forever)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self.cancel_head_timer()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a whole request head has arrived
                self.cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self.arm_head_timer()

        def arm_head_timer(self) -> None:
            self.cancel_head_timer()
            self.head_timer = self.loop.call_later(read_timeout_s, self.head_timed_out)

        def cancel_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def head_timed_out(self) -> None:
            self.head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol


class BackgroundServer:
    """A Starlette (ASGI) app served by uvicorn on a daemon thread; `stop()` shuts it down.

    The socket is bound here, before the thread starts, so `port=0` yields a known free port and a busy
    port fails in the caller (`OSError`). A connection whose request head does not arrive within
    `read_timeout_s` is closed (`head_timeout_protocol`)."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = DEFAULT_BACKLOG,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        access_log: bool = False,
        name: str = "asgi-server",
    ) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(backlog)
        except OSError:
            self.socket.close()
            raise
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=head_timeout_protocol(read_timeout_s),
            ws="none",
            backlog=backlog,
            access_log=access_log,
            log_level="info" if access_log else "warning",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name=name, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"the HTTP server on {host}:{self.port} did not start")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def warn_if_exposed(host: str, has_key: bool, option: str) -> None:
    """One warning line on stderr when a server without a key listens beyond this machine."""
    if not has_key and host not in LOOPBACK_HOSTS:
        print(
            f"tunesmith: warning: {host} is reachable from other machines and no key is set ({option})",
            file=sys.stderr,
            flush=True,
        )


def serve_until_stopped(server: BackgroundServer) -> None:
    """Block until Ctrl-C or SIGTERM, then stop `server` (the CLI commands' main loop)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
