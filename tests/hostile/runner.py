"""The hostile corpus's runner: imports `tunesmith.cli` (and the heavy modules the commands use) once, then
runs every case in a forked child, so a case costs its own work, not the ~8 s of imports.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
- `{"op": "run", "argv": [...], "cwd": DIR, "env": {...}, "timeout_s": S}` runs `tunesmith.cli.main(argv)`
  in a child and replies `{"rc", "timed_out", "memory_exceeded", "seconds", "growth_bytes", "stdout",
  "stderr"}` once it ended or was killed (after `timeout_s`, or when its memory grew past the limit).
- `{"op": "start", ...}` forks the same child but replies at once with `{"pid", "stdout_path"}` (a server);
  `{"op": "stop", "pid": P, "timeout_s": S}` sends it SIGINT (Ctrl-C), kills it after S seconds, and replies
  like "run".

The child is the leader of its own process group (the whole group is killed), reads /dev/null (or the
request's `stdin` file) as stdin,
writes stdout and stderr to files, and has an address-space limit of the runner's size plus
`ADDRESS_SPACE_SLACK` (a hard net against a machine-wide out-of-memory; servers, whose threads reserve
address space freely, have none). Memory growth is the peak resident size (polled every 20 ms and the
kernel's `ru_maxrss`) minus the runner's resident size at fork.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback

# every command's module, imported before forking so each case pays only for its own work
WARM_MODULES = (
    "tunesmith.cli",
    "tunesmith.advisor.lint",
    "tunesmith.advisor.workflow",
    "tunesmith.data.inspect",
    "tunesmith.evaluation.probe",
    "tunesmith.evaluation.runner",
    "tunesmith.rewards.server",
    "tunesmith.serving.export",
    "tunesmith.training.pipeline",
)
MEMORY_LIMIT_BYTES = 1 << 30  # the acceptance bound: no case grows past 1 GiB
ADDRESS_SPACE_SLACK = 3 << 30
POLL_SECONDS = 0.02


def _status_kib(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _child(request: dict, out_path: str, err_path: str, limit_address_space: bool) -> None:
    """In the forked child: never returns."""
    code = 70
    try:
        os.setsid()
        os.chdir(request["cwd"])
        for key, value in request.get("env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        devnull = os.open(
            request.get("stdin") or os.devnull, os.O_RDONLY
        )  # a case's input file, else nothing
        os.dup2(devnull, 0)
        os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        if limit_address_space:
            size = _status_kib("self", "VmSize") * 1024 + ADDRESS_SPACE_SLACK
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from tunesmith.cli import main

        sys.argv = ["tunesmith", *request["argv"]]
        code = main(request["argv"])
    except SystemExit as exit_:  # argparse
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # escaped main(): the harness reports the traceback it finds on stderr
        traceback.print_exc()
        code = 71
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code) & 0xFF)


def _fork(request: dict, limit_address_space: bool) -> tuple[int, str, str, int]:
    folder = tempfile.mkdtemp(prefix="hostile-io-")
    out_path, err_path = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
    base_rss = _status_kib("self", "VmRSS") * 1024
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, out_path, err_path, limit_address_space)
    # the child's resident size right after fork: file-backed pages are not yet mapped in it
    base_rss = min(base_rss, _status_kib(pid, "VmRSS") * 1024 or base_rss)
    return pid, out_path, err_path, base_rss


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _read(path: str, limit: int = 200_000) -> str:
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", "replace")


def _wait(pid: int, timeout_s: float, base_rss: int, *, first_signal: int = signal.SIGKILL) -> dict:
    """Wait for the child, killing it past the timeout or the memory limit."""
    start = time.monotonic()
    peak = 0
    timed_out = memory_exceeded = False
    killed_at = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _status_kib(pid, "VmRSS") * 1024)
        now = time.monotonic()
        if killed_at is None and peak - base_rss > MEMORY_LIMIT_BYTES:
            memory_exceeded = True
            killed_at = now
            _kill_group(pid, signal.SIGKILL)
        elif killed_at is None and now - start > timeout_s:
            timed_out = True
            killed_at = now
            _kill_group(pid, first_signal)
        elif killed_at is not None and now - killed_at > 5:
            _kill_group(pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)
    _kill_group(pid, signal.SIGKILL)  # anything the child left in its group
    peak = max(peak, usage.ru_maxrss * 1024)
    rc = os.waitstatus_to_exitcode(status)
    return {
        "rc": rc,
        "timed_out": timed_out,
        "memory_exceeded": memory_exceeded,
        "seconds": round(time.monotonic() - start, 3),
        "growth_bytes": max(0, peak - base_rss),
    }


def _finish(result: dict, out_path: str, err_path: str) -> dict:
    result["stdout"] = _read(out_path)
    result["stderr"] = _read(err_path)
    for path in (out_path, err_path):
        os.unlink(path)
    os.rmdir(os.path.dirname(out_path))
    return result


def serve() -> None:
    from tunesmith.logs import quiet_libraries

    quiet_libraries()  # what `main` does first (no case passes --verbose), before the libraries load
    for name in WARM_MODULES:
        importlib.import_module(name)
    reply = sys.stdout
    started: dict[int, tuple[str, str, int]] = {}
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "run":
            pid, out_path, err_path, base_rss = _fork(request, True)
            result = _wait(pid, request["timeout_s"], base_rss)
            answer = _finish(result, out_path, err_path)
        elif op == "start":
            pid, out_path, err_path, base_rss = _fork(request, False)
            started[pid] = (out_path, err_path, base_rss)
            answer = {"pid": pid, "stdout_path": out_path, "stderr_path": err_path}
        elif op == "stop":
            pid = request["pid"]
            out_path, err_path, base_rss = started.pop(pid)
            _kill_group(pid, signal.SIGINT)
            result = _wait(pid, request["timeout_s"], base_rss)
            answer = _finish(result, out_path, err_path)
        else:
            answer = {"error": f"unknown op {op!r}"}
        print(json.dumps(answer), file=reply, flush=True)
    for pid in started:
        _kill_group(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve()
