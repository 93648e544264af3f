"""Raw hostile HTTP to a real `tunesmith reward serve` (cases in http_cases.py): every request gets an
acceptable status (or a closed connection) within its time, the server keeps serving, and no traceback."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import TRACEBACK, Runner, record, wait_for_text
from http_cases import HTTP_CASES, VALID_BODY, HttpCase, post


@dataclass
class Server:
    port: int
    pid: int
    stderr_path: Path
    stderr_seen: int = 0

    def new_stderr(self) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        fresh, self.stderr_seen = text[self.stderr_seen :], len(text)
        return fresh


@pytest.fixture(scope="module")
def reward_server(runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hostile-http")
    started = runner.request(
        op="start", argv=["reward", "serve", "exact_match", "--port", "0"], cwd=str(folder), env={}
    )
    stdout = wait_for_text(Path(started["stdout_path"]), "serving reward", 60)
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)", stdout).group(1))
    server = Server(port, started["pid"], Path(started["stderr_path"]))
    yield server
    stopped = runner.request(op="stop", pid=started["pid"], timeout_s=20)
    ended_well = stopped["rc"] == 0 and not stopped["timed_out"] and TRACEBACK not in stopped["stderr"]
    got = f"rc={stopped['rc']} growth {stopped['growth_bytes'] / 2**20:.0f} MiB"
    record("reward-serve-stops-on-ctrl-c", 6, "ok", got, ended_well, stopped["seconds"])
    assert ended_well, stopped
    assert stopped["growth_bytes"] < 1 << 30, stopped


def exchange(port: int, case: HttpCase) -> int | None | str:
    """Send the request; the reply's status, None when the server closed without a reply, or 'open' when it
    neither replied nor closed within `case.wait_s`."""
    try:
        return _exchange(port, case)
    except OSError as err:  # refused, reset while connecting: the server failed this client
        return f"{type(err).__name__}"


def _exchange(port: int, case: HttpCase) -> int | None | str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(case.request)
        except (BrokenPipeError, ConnectionResetError):
            return None  # the server refused the rest: a closed connection
        if case.send_slowly_s:
            time.sleep(case.send_slowly_s)
        sock.settimeout(case.wait_s)
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            return "open"
        except ConnectionResetError:
            return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    return int(match.group(1)) if match else None


def still_serving(port: int) -> bool:
    probe = HttpCase("probe", post(VALID_BODY), (200,))
    return exchange(port, probe) == 200


@pytest.mark.parametrize("case", HTTP_CASES, ids=[case.name for case in HTTP_CASES])
def test_hostile_http(case: HttpCase, reward_server: Server) -> None:
    reward_server.new_stderr()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=case.concurrent) as pool:
        replies = list(pool.map(lambda _: exchange(reward_server.port, case), range(case.concurrent)))
    seconds = time.monotonic() - start
    wrong = sorted({str(reply) for reply in replies if reply not in case.statuses})
    alive = still_serving(reward_server.port)
    stderr = reward_server.new_stderr()
    passed = not wrong and alive and TRACEBACK not in stderr
    got = (
        f"{sorted({str(r) for r in replies})}"
        + ("" if alive else " then down")
        + (" traceback" if TRACEBACK in stderr else "")
    )
    record(f"http-{case.name}", 6, "/".join(str(s) for s in case.statuses), got, passed, seconds)
    assert passed, (
        f"{case.name}: replies {wrong} (allowed {case.statuses}), serving afterwards: {alive}\n{stderr[-2000:]}"
    )
