"""The hostile corpus's harness on the pytest side: the runner process (runner.py) and its protocol, the
table of outcomes, small helpers shared by the case tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
OUTCOMES: list[tuple[str, int, str, str, bool, float]] = []  # name, class, expected, got, passed, seconds
TRACEBACK = "Traceback (most recent call last)"


class Runner:
    """The runner process (tests/hostile/runner.py) and its JSON-lines protocol."""

    def __init__(self) -> None:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",  # threads' malloc arenas: keep the address space close to the data
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        }
        env.pop("TUNESMITH_DEBUG", None)  # a traceback must never be the normal path
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "runner.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self.process.stdout.readline()
        assert ready and json.loads(ready) == {"ready": True}, "the hostile runner did not start"

    def request(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the hostile runner died"
        return json.loads(line)

    def run(
        self,
        argv: list[str],
        cwd: Path,
        *,
        env: dict | None = None,
        timeout_s: float = 20,
        stdin: str | None = None,
    ) -> dict:
        return self.request(
            op="run", argv=argv, cwd=str(cwd), env=env or {}, timeout_s=timeout_s, stdin=stdin
        )

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def copy_finished_run(finished: Path, into: Path) -> None:
    """The finished run's folder (recipe, data and runs/) copied into a case's folder."""
    shutil.copytree(finished, into, dirs_exist_ok=True, symlinks=True)


def record(name: str, klass: int, expected: str, got: str, passed: bool, seconds: float) -> None:
    OUTCOMES.append((name, klass, expected, got, passed, seconds))


def wait_for_text(path: Path, needle: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in {path}")
